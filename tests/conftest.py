"""Shared fixtures: the repository root and a copy of the workflow in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


# pytest-xdist (pyproject: `-n auto --dist loadgroup`): a worker runs whole groups. The tests that
# share an expensive session fixture form one group (the fixture is built once), every other
# test module is a group of its own (its module fixtures are built once). The groups holding
# end-to-end (``slow``) tests are queued first, most first, so that the longest ones start at
# once instead of ending the run on one worker. The shared pipeline run is built once for all
# workers (tests/orchestration/conftest.py): each test that copies its repositories
# (``pristine_pipelines``) is a group of its own, queued last, so that the workers share them
# once they are done with everything else, instead of waiting for the run. The heavy ones
# (``@pytest.mark.cost(s)``: about ``s`` CPU seconds here) go first, heaviest first, each followed
# by two light ones: xdist hands a worker the next group whenever it has fewer than three tests
# pending, so a worker finishing a module of small tests takes three groups at once; this way
# it takes one heavy one, not three, and the workers end together.
SHARED_FIXTURES = ("pipelines", "reference_run")
COPIES = "pristine_pipelines"


def _group(item: pytest.Item) -> str:
    fixtures = set(getattr(item, "fixturenames", ()))
    if COPIES in fixtures:
        return f"{COPIES}:{item.nodeid}"
    return next((f for f in SHARED_FIXTURES if f in fixtures), item.nodeid.split("::")[0])


def pytest_itemcollected(item):
    # marked as collected: before any pytest_collection_modifyitems (xdist's reads the mark)
    item.add_marker(pytest.mark.xdist_group(_group(item)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    slow: dict[str, int] = {}
    cost: dict[str, float] = {}
    for item in items:
        group = _group(item)
        slow[group] = slow.get(group, 0) + (item.get_closest_marker("slow") is not None)
        mark = item.get_closest_marker("cost")
        cost[group] = cost.get(group, 0) + (mark.args[0] if mark else 0)

    def order(item: pytest.Item) -> tuple[bool, float, int]:
        group = _group(item)
        return group.startswith(COPIES), -cost[group], -slow[group]

    items.sort(key=order)  # stable: the order within a group
    copies = [item for item in items if _group(item).startswith(COPIES)]
    heavy = [item for item in copies if cost[_group(item)] > 0]
    light = [item for item in copies if cost[_group(item)] == 0]
    spread = []
    for item in heavy:
        spread += [item, *light[:2]]
        light = light[2:]
    items[len(items) - len(copies) :] = spread + light


@pytest.fixture(autouse=True, scope="session")
def _isolated_batch_cache(tmp_path_factory):
    """Measured batch sizes (condi.batching) go to a cache of this session (inherited by the
    commands tests run), never the user's ~/.cache/condi."""
    old = os.environ.get("CONDI_CACHE_DIR")
    os.environ["CONDI_CACHE_DIR"] = str(tmp_path_factory.mktemp("condi_cache"))
    yield
    if old is None:
        os.environ.pop("CONDI_CACHE_DIR", None)
    else:
        os.environ["CONDI_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path_factory, monkeypatch):
    """Each test logs to its own MLflow store (never the repository's mlflow.db)."""
    if "MLFLOW_TRACKING_URI" not in os.environ or os.environ.get("CONDI_TEST_KEEP_URI") != "1":
        db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")


@pytest.fixture
def repo() -> Path:
    return REPO


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def workflow_copy(dest: Path, params: dict | None = None) -> Path:
    """Copy the Snakefile, workflow/ and params.yaml (optionally replaced) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflow", dest / "workflow", dirs_exist_ok=True)
    text = (
        yaml.safe_dump(params, sort_keys=False)
        if params is not None
        else (REPO / "params.yaml").read_text()
    )
    (dest / "params.yaml").write_text(text)
    return dest


TINY_SHORT_SIDE = 36


def cached_input(name: str, dest: Path, make) -> Path:
    """``make(dest)`` writes test input files into ``dest``. With ``$CONDI_TEST_INPUT_CACHE``
    set (``benchmarks/mutation.py`` sets it: every mutant's test process would otherwise build
    the same inputs again), a copy built once under that folder is reused instead. Only for
    inputs no code under test writes (generated videos, not indexes or caches)."""
    cache = os.environ.get("CONDI_TEST_INPUT_CACHE")
    dest.mkdir(parents=True, exist_ok=True)
    if not cache:
        make(dest)
        return dest
    src = Path(cache) / name
    if not src.is_dir():
        Path(cache).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}."))
        make(tmp)
        try:
            tmp.rename(src)
        except OSError:  # another process was first
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def tiny_synthetic(dest: Path) -> Path:
    """The ``tiny`` synthetic dataset (seed 0) at ``dest``."""
    from condi.data.synthetic import GENERATOR_VERSION, generate

    return cached_input(
        f"synth-tiny-0-v{GENERATOR_VERSION}", dest, lambda d: generate(d, preset="tiny", seed=0)
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The ``tiny`` synthetic dataset indexed and cached once per session:
    ``(root, index_path, cache_path)``."""
    from condi.data.clips import build_clip_cache
    from condi.data.index import build_index, write_index

    root = tiny_synthetic(tmp_path_factory.mktemp("tiny_root"))
    df, skipped = build_index("ucf101", root, 1, clip_len=16, val_fraction=0.1, seed=0)
    work = tmp_path_factory.mktemp("tiny_work")
    index = work / "index.parquet"
    write_index(df, index, skipped=skipped)
    cache = build_clip_cache(
        df, root, work / "clips.npy", 16, TINY_SHORT_SIDE, workers=1, progress=False
    )
    return root, index, cache


def tiny_params(**overrides) -> dict:
    """The repository's params with a fast training setup for tests; ``protocol: scratch``
    (the models train on the tiny dataset alone) unless overridden."""
    from condi.config import apply_overrides, validate

    p = load_yaml(REPO / "params.yaml")
    p["protocol"] = "scratch"
    p["training"]["teacher"].update(epochs=2, batch_size=16, lr_milestones=[])
    p["training"]["student"].update(epochs=1, batch_size=16)
    p["threads"] = 1
    p["device"] = "cpu"
    apply_overrides(p, [f"{k}={v}" for k, v in overrides.items()], "tests")
    return validate(p)


def dataset_params(dest: Path, root: Path, kind: str = "ucf101", **synth) -> Path:
    """A params file (at ``dest``) whose dataset ``synthetic`` is ``root``: what a stage
    command (``condi data index|cache|synth --dataset synthetic``) reads its values from.
    With ``synth`` (preset, seed, overrides) the dataset is generated there."""
    p = load_yaml(REPO / "params.yaml")
    ds = {"kind": kind, "root": str(root), "folds": [1]}
    if synth:
        ds["synth"] = synth
    p["datasets"] = {"synthetic": ds}
    p["protocol"] = "scratch"  # the one dataset: no source to pre-train on
    p.pop("pretrain", None)
    dest.write_text(yaml.safe_dump(p))
    return dest


# A Kinetics-format dataset (the CVDF CSVs, flat train/ and label-nested validate/ MP4s):
# labels with spaces, commas and parentheses, landscape and portrait frames, NTSC and integer
# rates, videos of 1-4 clips (a padded last clip) and two clips of one YouTube video.
KINETICS_CLASSES = ("abseiling", "passing American football (in game)", "tying tie, bow")
# (label index, youtube id, start, frames, (width, height), fps)
KINETICS_TRAIN = [
    (0, "aaaaaaaaaa0", 0, 40, (64, 48), (30000, 1001)),
    (0, "aaaaaaaaaa0", 20, 33, (64, 48), (30000, 1001)),
    (0, "aaaaaaaaaa1", 5, 48, (48, 64), (25, 1)),
    (0, "aaaaaaaaaa2", 7, 20, (80, 48), (24, 1)),
    (1, "bbbbbbbbbb0", 17, 36, (64, 48), (15, 1)),
    (1, "bbbbbbbbbb1", 3, 50, (48, 64), (30000, 1001)),
    (1, "-f_-f_-f_-f", 40, 24, (64, 48), (25, 1)),
    (2, "cccccccccc0", 1, 44, (80, 48), (25, 1)),
    (2, "cccccccccc1", 9, 16, (64, 48), (24, 1)),
    (2, "cccccccccc2", 12, 38, (48, 64), (30000, 1001)),
]
KINETICS_VAL = [
    (0, "vvvvvvvvvv0", 0, 34, (64, 48), (25, 1)),
    (1, "vvvvvvvvvv1", 2, 41, (48, 64), (30000, 1001)),
    (2, "vvvvvvvvvv2", 4, 29, (80, 48), (24, 1)),
    (0, "vvvvvvvvvv3", 6, 18, (64, 48), (15, 1)),
]


def _kinetics_frames(n: int, size: tuple[int, int], label: int, seed: int) -> np.ndarray:
    """Smooth moving content (a shaded background and a soft blob whose motion depends on the
    label), as a camera would see it: what a video codec is made for, unlike pixel noise."""
    import numpy as np

    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            96 + 60 * np.sin(x / width * np.pi * rng.uniform(1, 3) + rng.uniform(0, 6)),
            96 + 60 * np.cos(y / height * np.pi * rng.uniform(1, 3) + rng.uniform(0, 6)),
            np.full_like(x, rng.uniform(60, 160)),
        ],
        axis=-1,
    )
    frames = np.empty((n, height, width, 3), np.uint8)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    vx, vy = [(1.5, 0.0), (0.0, 1.5), (1.0, 1.0)][label]
    for t in range(n):
        px, py = (cx + vx * t) % width, (cy + vy * t) % height
        blob = np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * (0.12 * min(size)) ** 2))
        frames[t] = np.clip(base + blob[..., None] * np.array([120.0, -60.0, 40.0]), 0, 255)
    return frames


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int | Fraction = 25,
    codec: str = "mpeg4",
    fmt: str = "mp4",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames; by default MPEG-4 part 2 in MP4 (the moov atom is written last, so
    truncation loses it)."""
    import av

    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def write_kinetics_video(path: Path, frames: np.ndarray, fps: tuple[int, int]) -> Path:
    """H.264 in MP4, as YouTube's Kinetics clips are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(
        path, frames, fps=Fraction(*fps), codec="libx264", options={"preset": "ultrafast"}
    )


def _write_kinetics(root: Path) -> None:
    import csv

    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, rows, folder in (
        ("train", KINETICS_TRAIN, "train"),
        ("validate", KINETICS_VAL, "validate"),
    ):
        with open(root / "annotations" / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for i, (label, ytid, start, n, size, fps) in enumerate(rows):
                name = KINETICS_CLASSES[label]
                w.writerow([name, ytid, start, start + 10, "train" if split == "train" else "val"])
                sub = Path(folder) if split == "train" else Path(folder) / name
                clip = f"{ytid}_{start:06d}_{start + 10:06d}.mp4"
                frames = _kinetics_frames(n, size, label, seed=(0 if split == "train" else 100) + i)
                write_kinetics_video(root / sub / clip, frames, fps)


def kinetics_dataset(dest: Path) -> Path:
    """The Kinetics-format fixture (:data:`KINETICS_TRAIN`, :data:`KINETICS_VAL`) at ``dest``."""
    return cached_input("kinetics-fixture-v1", dest, _write_kinetics)
