"""``predict_clips`` (condi predict's core, docs/method.md, section 4): on hand-made models whose outputs per clip
are fixed tables, the teacher runs only on the clips it classifies and the video's probability
vector is the weighted mean worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from condi.evaluation.predict import predict_clips

LN3 = math.log(3.0)
# per clip (N = 4, C = 2): the student's class logits and confidence logit
S_LOGITS = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
S_CONF = torch.tensor([0.0, 2.0, 1.0, -1.0])
T_LOGITS = torch.tensor([[0.0, 5.0], [0.0, LN3], [LN3, 0.0], [2.0, 0.0]])


def clip_ids(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0, 0, 0, 0].round().long()


class Table(nn.Module):
    """Outputs row ``i`` of its tables for the clip whose pixels all equal ``i``; records the
    clips it saw."""

    def __init__(self, logits, conf=None):
        super().__init__()
        self.logits, self.conf, self.seen = logits, conf, []

    def forward(self, x):
        ids = clip_ids(x)
        self.seen += ids.tolist()
        return self.logits[ids] if self.conf is None else (self.logits[ids], self.conf[ids])


def clips(n=4):
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 3, 2, 4, 4)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def entropy(p):
    return -sum(q * math.log(q) for q in p)


def softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


@pytest.mark.parametrize("batch_size", [1, 64])
def test_split_inference_by_hand(batch_size):
    teacher, student = Table(T_LOGITS), Table(S_LOGITS, S_CONF)
    probs, s_used, t_used, z = predict_clips(
        clips(), teacher, student, k=3, ks=1, batch_size=batch_size
    )
    assert z.tolist() == pytest.approx([sigmoid(v) for v in S_CONF.tolist()])
    assert sorted(student.seen) == [0, 1, 2, 3]  # the student skims every clip
    # clip 1 has the lowest student entropy (and the highest z~): the student classifies it;
    # of clips 0, 2, 3 the two with the highest z~ (2: 0.73, 0: 0.5) go to the teacher, which
    # sees nothing else
    assert s_used.tolist() == [1] and t_used.tolist() == [2, 0]
    assert sorted(teacher.seen) == [0, 2]
    ps = softmax([3.0, 0.0])
    w_s = 1 - entropy(ps) / math.log(2)
    z0, z2 = sigmoid(0.0), sigmoid(1.0)
    t0, t2 = softmax([0.0, 5.0]), softmax([LN3, 0.0])
    norm = z0 + z2 + w_s
    want = [(z0 * t0[c] + z2 * t2[c] + w_s * ps[c]) / norm for c in range(2)]
    assert probs.tolist() == pytest.approx(want, rel=1e-6)


def test_inference_b_and_dense():
    teacher, student = Table(T_LOGITS), Table(S_LOGITS, S_CONF)
    probs, s_used, t_used, _ = predict_clips(clips(), teacher, student, k=1, ks=0)
    assert s_used.tolist() == [] and t_used.tolist() == [1] and teacher.seen == [1]
    assert probs.tolist() == pytest.approx([0.25, 0.75])  # the teacher's clip 1 alone
    teacher = Table(T_LOGITS)
    probs, s_used, t_used, _ = predict_clips(clips(), teacher, Table(S_LOGITS, S_CONF), k=9)
    assert sorted(teacher.seen) == [0, 1, 2, 3] and t_used.tolist() == [0, 1, 2, 3]
    dense = np.mean([softmax(r) for r in T_LOGITS.tolist()], axis=0)
    assert probs.tolist() == pytest.approx(dense.tolist(), rel=1e-6)


def test_defaults_are_inference_b():
    teacher = Table(T_LOGITS)
    probs, s_used, t_used, _ = predict_clips(clips(), teacher, Table(S_LOGITS, S_CONF), k=2)
    assert s_used.tolist() == [] and t_used.tolist() == [1, 2]
    z1, z2 = sigmoid(2.0), sigmoid(1.0)
    want = [(z1 * 0.25 + z2 * 0.75) / (z1 + z2), (z1 * 0.75 + z2 * 0.25) / (z1 + z2)]
    assert probs.tolist() == pytest.approx(want, rel=1e-6)


# -- every student method ranks with its own score (condi.methods) ---------------------------


def neg_entropy(row):
    return -entropy(softmax(row))


@pytest.mark.parametrize(
    ("method", "score"),
    [
        ("bce_conf", lambda i: sigmoid(S_CONF[i].item())),  # z~
        ("st_conf", lambda i: sigmoid(S_CONF[i].item())),  # its own confidence c
        ("st_ent", lambda i: neg_entropy(S_LOGITS[i].tolist())),  # the lowest entropy first
        ("maxprob", lambda i: max(softmax(S_LOGITS[i].tolist()))),
    ],
)
def test_each_method_ranks_by_its_own_score(method, score):
    want_scores = [score(i) for i in range(4)]
    top2 = sorted(sorted(range(4), key=lambda i: -want_scores[i])[:2])
    teacher = Table(T_LOGITS)
    probs, s_used, t_used, got = predict_clips(clips(), teacher, Table(S_LOGITS, S_CONF), k=2,
                                               method=method)  # fmt: skip
    assert got.tolist() == pytest.approx(want_scores)
    assert sorted(t_used.tolist()) == top2 and sorted(teacher.seen) == top2
    assert s_used.tolist() == []
    # clip positions, integers even when there are none (a float array cannot index clips)
    assert s_used.dtype == t_used.dtype == np.int64
    assert clips()[torch.from_numpy(s_used)].shape == (0, 3, 2, 4, 4)
    # the teacher's probabilities of its clips, plainly averaged (as the evaluation grid does)
    mean = np.mean([softmax(T_LOGITS[i].tolist()) for i in top2], axis=0)
    assert probs.tolist() == pytest.approx(mean.tolist(), rel=1e-6)


def test_st_ent_never_reads_the_confidence_head():
    # clip 3 has the highest "confidence" but a uniform (maximum-entropy) prediction
    conf = torch.tensor([-5.0, -5.0, -5.0, 9.0])
    _, _, t_used, _ = predict_clips(clips(), Table(T_LOGITS), Table(S_LOGITS, conf), k=1,
                                    method="st_ent")  # fmt: skip
    assert t_used.tolist() == [1]  # logits (3, 0): the most certain clip


def test_only_condi_sr_splits_k():
    with pytest.raises(ValueError, match="--ks 1: the student share Ks is ConDi-SR's"):
        predict_clips(clips(), Table(T_LOGITS), Table(S_LOGITS, S_CONF), k=2, ks=1,
                      method="st_ent")  # fmt: skip


def test_a_student_without_a_method_it_can_rank_with_is_refused():
    from condi.evaluation.predict import student_method

    assert student_method({"method": "st_ent"}).ranking == "neg_entropy"
    with pytest.raises(ValueError, match="s.pt: the student checkpoint names no method"):
        student_method({}, "s.pt")
    with pytest.raises(ValueError, match="s.pt: trained with method 'mystery'.*known: condi_sr"):
        student_method({"method": "mystery"}, "s.pt")


class DeviceRecorder(nn.Module):
    """Records the device of every batch it is given; its outputs are fixed CPU tables."""

    def __init__(self, logits, conf=None):
        super().__init__()
        self.logits, self.conf, self.devices = logits, conf, []

    def forward(self, x):
        self.devices.append(x.device.type)
        n = len(x)
        return self.logits[:n] if self.conf is None else (self.logits[:n], self.conf[:n])


def test_both_models_get_their_clips_on_the_device_asked_for():
    """The meta device (no data, on every machine) stands in for a GPU."""
    teacher, student = DeviceRecorder(T_LOGITS), DeviceRecorder(S_LOGITS, S_CONF)
    predict_clips(clips(), teacher, student, k=2, device=torch.device("meta"))
    assert student.devices == ["meta"] and teacher.devices == ["meta"]
    teacher, student = DeviceRecorder(T_LOGITS), DeviceRecorder(S_LOGITS, S_CONF)
    predict_clips(clips(), teacher, student, k=2)  # default: the CPU
    assert student.devices == ["cpu"] and teacher.devices == ["cpu"]


def test_auto_batch_sizes_are_measured_per_model_on_the_device_for_these_clips(monkeypatch):
    """``batch_size="auto"``: each model's batch profile is the one of that model, on the device
    asked for, for clips of this video's shape (3, L, crop, crop); recorded here instead of
    measured (a measurement takes seconds), and the batches follow the profiles returned."""
    from condi.batching import BatchProfile
    from condi.evaluation import predict

    asked = []

    def profile(model, device, clip_shape, setting):
        asked.append((model, device, clip_shape, setting))
        return BatchProfile.fixed_size(3 if model is teacher else 1)

    monkeypatch.setattr(predict, "batch_profile", profile)
    meta = torch.device("meta")
    teacher, student = DeviceRecorder(T_LOGITS), DeviceRecorder(S_LOGITS, S_CONF)
    predict_clips(clips(), teacher, student, k=3, batch_size="auto", device=meta)
    assert asked == [(teacher, meta, (3, 2, 4, 4), "auto"), (student, meta, (3, 2, 4, 4), "auto")]
    # the student skims the 4 clips one at a time, the teacher gets its 3 in one batch
    assert student.devices == ["meta"] * 4 and teacher.devices == ["meta"]
