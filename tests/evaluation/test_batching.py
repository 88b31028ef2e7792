"""Each model's fastest batch size (condi.batching): the plan that cuts N clips into batches is
the cheapest composition of measured sizes (checked against brute force), the measurement
stops where the issue's rules say (on a fake clock: no wall-clock assertions), leaves the
global RNG and the model's mode alone, and is cached per (model, device, threads, shape)."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from condi import batching
from condi.batching import AUTO, BatchProfile, batch_profile, measure, parse_setting, profile_key


def compositions(n: int, sizes: list[int]):
    """Every ordered way of writing n as a sum of ``sizes``."""
    if n == 0:
        yield []
        return
    for b in sizes:
        if b <= n:
            for rest in compositions(n - b, sizes):
                yield [b, *rest]


@pytest.mark.parametrize(
    "seconds",
    [
        {1: 1.0, 2: 1.6, 3: 3.0, 4: 3.0},  # 3 is bad per clip, 2 and 4 are good
        {1: 0.045, 2: 0.2, 4: 0.45, 8: 0.9},  # batching is slower per clip (MobileNetV2 on CPU)
        {1: 1.0, 2: 1.0, 3: 1.0, 8: 1.0},  # a GPU: any batch costs the same
    ],
)
def test_plan_is_the_cheapest_composition(seconds):
    profile = BatchProfile(seconds)
    sizes = sorted(seconds)
    for n in range(1, 13):
        plan = profile.plan(n)
        assert sum(plan) == n and set(plan) <= set(sizes)
        assert plan == sorted(plan, reverse=True)
        cheapest = min(sum(seconds[b] for b in c) for c in compositions(n, sizes))
        assert sum(seconds[b] for b in plan) == pytest.approx(cheapest, abs=1e-12)
    assert profile.plan(0) == []


def test_plan_by_hand_and_slices():
    profile = BatchProfile({1: 1.0, 2: 1.6, 3: 3.0, 4: 3.0})
    assert profile.plan(3) == [2, 1]  # 2.6 beats 3.0
    assert profile.plan(5) == [4, 1]  # 4.0 beats 2+2+1 = 4.2
    assert profile.plan(6) == [4, 2]  # 4.6 beats 2+2+2 = 4.8
    assert profile.best() == 4 and profile.label() == "auto:4"  # 0.75 s per clip
    assert profile.slices(5) == [slice(0, 4), slice(4, 5)]
    # ties per clip: the smaller size
    assert BatchProfile({1: 1.0, 2: 2.0}).best() == 1


def test_long_streams_use_whole_batches_of_the_best_size():
    profile = BatchProfile({1: 1.0, 2: 1.6, 4: 4.0})
    plan = profile.plan(1001)
    assert sum(plan) == 1001
    assert plan.count(2) == 500 and plan.count(1) == 1


def test_fixed_size():
    profile = BatchProfile.fixed_size(4)
    assert profile.plan(11) == [4, 4, 3] and profile.best() == 4 and profile.label() == "4"
    with pytest.raises(ValueError):
        BatchProfile.fixed_size(0)


def test_parse_setting():
    assert parse_setting("auto") == AUTO and parse_setting(" Auto ") == AUTO
    assert parse_setting(3) == 3 and parse_setting("7") == 7
    for bad in (0, -1, "x", True, 2.5, None):
        with pytest.raises(ValueError):
            parse_setting(bad)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Costly(nn.Module):
    """A model whose forward pass advances a fake clock by ``cost[batch size]`` seconds."""

    def __init__(self, clock: FakeClock, cost: dict[int, float]):
        super().__init__()
        self.clock, self.cost, self.calls = clock, cost, []
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        self.calls.append(len(x))
        self.clock.now += self.cost[len(x)]
        return x.flatten(1)[:, :2]


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(batching, "_now", c)
    monkeypatch.setattr(batching, "_cpu_now", c)
    return c


def test_measure_stops_after_two_worse_sizes(clock):
    # per clip: 1.0, 0.5, 0.58 (worse than 0.5 x 1.1), 0.625 (worse again): stop after 4
    cost = {1: 1.0, 2: 1.0, 3: 1.75, 4: 2.5, 5: 0.5}
    model = Costly(clock, cost)
    profile = measure(model, torch.device("cpu"), (2, 1, 1, 1), budget_s=1e9)
    assert profile.seconds == {1: 1.0, 2: 1.0, 3: 1.75, 4: 2.5}
    assert profile.best() == 2
    # one untimed pass, then timed passes until 0.2 s (each costs more): 2 calls per size
    assert model.calls == [1, 1, 2, 2, 3, 3, 4, 4]


def test_measure_keeps_going_while_sizes_pay_off_and_respects_the_cap(clock):
    cost = {b: 0.3 + 0.01 * b for b in batching.CANDIDATES}
    profile = measure(
        Costly(clock, cost), torch.device("cpu"), (2, 1, 1, 1), max_batch=16, budget_s=1e9
    )
    assert sorted(profile.seconds) == [1, 2, 3, 4, 5, 6, 7, 8, 12, 16]
    assert profile.best() == 16


def test_measure_stops_before_the_budget(clock):
    # 1 s per clip at every size: sizes 1, 2, 3 cost 2 + 4 + 6 = 12 s; 4 would need 8 more
    cost = {b: float(b) for b in batching.CANDIDATES}
    profile = measure(Costly(clock, cost), torch.device("cpu"), (2, 1, 1, 1), budget_s=15.0)
    assert sorted(profile.seconds) == [1, 2, 3]


def test_one_cpu_thread_is_timed_by_cpu_time(monkeypatch):
    """On a busy machine the wall clock also counts other processes' turns on the core: with
    one torch thread the thread's CPU time decides; with several threads, the wall clock."""
    wall, cpu = FakeClock(), FakeClock()
    monkeypatch.setattr(batching, "_now", wall)
    monkeypatch.setattr(batching, "_cpu_now", cpu)

    class Shared(Costly):
        def forward(self, x):
            wall.now += 3 * self.cost[len(x)]  # waits for the CPU two thirds of the time
            return super().forward(x)

    cost = {1: 1.0, 2: 1.0, 3: 3.5, 4: 5.0}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = measure(Shared(cpu, cost), torch.device("cpu"), (2, 1, 1, 1), budget_s=1e9)
        torch.set_num_threads(2)
        two = measure(Shared(cpu, cost), torch.device("cpu"), (2, 1, 1, 1), budget_s=1e9)
    finally:
        torch.set_num_threads(threads)
    assert one.seconds == {1: 1.0, 2: 1.0, 3: 3.5, 4: 5.0}
    assert two.seconds == {1: 3.0, 2: 3.0, 3: 10.5, 4: 15.0}


def test_measure_leaves_rng_and_mode_alone():
    model = nn.Sequential(nn.Conv3d(3, 4, 3), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 4, 6, 6))
    model.train()
    state = torch.get_rng_state()
    profile = measure(model, torch.device("cpu"), (3, 4, 6, 6), max_batch=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training
    assert sorted(profile.seconds)[:1] == [1] and max(profile.seconds) <= 3


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 2 * 4 * 4, 2))


def test_profiles_are_cached_per_key(tmp_path, monkeypatch):
    cache = tmp_path / "batch_sizes.json"
    calls = []

    def fake_measure(model, device, shape, channels_last=False, amp=False):
        calls.append((tuple(shape), torch.get_num_threads()))
        return BatchProfile({1: 1.0, 2: 1.5})

    monkeypatch.setattr(batching, "measure", fake_measure)
    monkeypatch.setattr(batching, "_MEMORY", {})
    model, cpu = tiny(), torch.device("cpu")
    assert batch_profile(model, cpu, (3, 4, 6, 6), "auto", cache=cache).best() == 2
    assert len(calls) == 1
    stored = json.loads(cache.read_text())
    (key,) = stored["profiles"]
    assert key == profile_key(model, cpu, (3, 4, 6, 6))
    assert stored["profiles"][key]["seconds"] == {"1": 1.0, "2": 1.5}
    # a new process (empty memory) reads the file: no new measurement
    monkeypatch.setattr(batching, "_MEMORY", {})
    assert batch_profile(tiny(), cpu, (3, 4, 6, 6), "auto", cache=cache).seconds == {1: 1.0, 2: 1.5}
    assert len(calls) == 1
    # another input shape, another thread count, another layout: measured again
    batch_profile(model, cpu, (3, 4, 8, 8), "auto", cache=cache)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        batch_profile(model, cpu, (3, 4, 6, 6), "auto", cache=cache)
    finally:
        torch.set_num_threads(threads)
    batch_profile(model, cpu, (3, 4, 6, 6), "auto", channels_last=True, cache=cache)
    assert len(calls) == 4 and len(json.loads(cache.read_text())["profiles"]) == 4
    # a fixed setting never measures
    assert batch_profile(model, cpu, (3, 4, 6, 6), 5, cache=cache).plan(7) == [5, 2]
    assert len(calls) == 4


def test_a_different_architecture_is_another_key():
    cpu = torch.device("cpu")
    a, b = tiny(), nn.Sequential(nn.Conv3d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 2 * 4 * 4, 2))
    assert profile_key(a, cpu, (3, 4, 6, 6)) == profile_key(tiny(), cpu, (3, 4, 6, 6))
    assert profile_key(a, cpu, (3, 4, 6, 6)) != profile_key(b, cpu, (3, 4, 6, 6))


def test_a_broken_cache_file_is_measured_again(tmp_path, monkeypatch):
    cache = tmp_path / "batch_sizes.json"
    cache.write_text("{not json")
    monkeypatch.setattr(batching, "_MEMORY", {})
    monkeypatch.setattr(batching, "measure", lambda *a, **k: BatchProfile({1: 2.0, 2: 3.0}))
    assert batch_profile(tiny(), torch.device("cpu"), (3, 4, 6, 6), cache=cache).best() == 2
    assert json.loads(cache.read_text())["version"] == batching.CACHE_VERSION
    # an entry without batch size 1, or with a bad time, is not trusted
    assert batching._profile_from({"seconds": {"2": 1.0}}) is None
    assert batching._profile_from({"seconds": {"1": -1.0}}) is None
    assert batching._profile_from({"seconds": "x"}) is None


@pytest.mark.parametrize("setting", [1, 3, "auto"])
def test_batched_outputs_match_one_pass(setting):
    from condi.batching import run_batched

    model = tiny().eval()
    x = torch.randn(7, 3, 4, 6, 6)
    profile = batch_profile(model, torch.device("cpu"), (3, 4, 6, 6), setting)
    with torch.inference_mode():
        got = torch.cat(run_batched(model, x, profile, torch.device("cpu")))
        want = model(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert list(itertools.accumulate(profile.plan(7)))[-1] == 7
