"""Training diagnostics (docs/method.md, section 9.3; ``benchmarks/diagnose_condi.py``): each
clip's gradient of ConDi-SR's two loss terms on its confidence logit and their opposition, on
hand-made logits whose derivatives are worked out by hand below; the per-batch hook of
``make_step`` averaged by the real epoch loop into exact per-epoch shares; and a student trained
with the hook is the same as one trained without it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from condi.data.indexed import load_data
from condi.metrics import eq1_labels
from condi.models.checkpoint import load_model
from condi.training import diagnostics
from condi.training.student import make_step, train_student
from condi.training.trainer import run_epoch
from tests.conftest import tiny_params

LN3, LN9 = math.log(3.0), math.log(9.0)
LAM, MU = 2.0, 1.5  # not equal, not 1: a swapped or dropped weight would show


def condi(reduction="class_mean", detach=False):
    return {
        "tau": 1.0,
        "lam": LAM,
        "mu": MU,
        "kd_reduction": reduction,
        "detach_confidence_in_target": detach,
    }


# C = 2, tau = 1, U = (.5, .5). Teacher logits (ln 3, 0): p~t = (.75, .25), p~t - U = (.25, -.25).
# Student logits (0, 0): q = (.5, .5) ("flat"); (ln 9, 0): q = (.9, .1) ("sharp").
# With w the weight of p~t in Eq. 5's target (w = z~ for z = 1, 1 - z~ for z = 0),
# d KL(p^t || q) / dw = sum_j (p~t_j - U_j) (log p^t_j - log q_j)   (the "+1" terms sum to 0),
# dw/dc = +-sigma'(c) = +-z~(1 - z~); class_mean divides the KD term by C = 2.
# BCE: d(lam L_conf)/dc = lam mu (z~ - 1) for z = 1, lam z~ for z = 0.
TEACHER = [LN3, 0.0]
FLAT, SHARP = [0.0, 0.0], [LN9, 0.0]
CASES = [
    # (student logits, confidence logit c, z, d KL / dw at the target, sigma'(c), BCE grad)
    # c = 0: z~ = .5, p^t = (.625, .375)
    (FLAT, 0.0, 1, 0.25 * math.log(0.625 / 0.375), 0.25, LAM * MU * -0.5),  # opposed
    (FLAT, 0.0, 0, 0.25 * math.log(0.625 / 0.375), 0.25, LAM * 0.5),  # opposed
    (SHARP, 0.0, 1, 0.25 * math.log((0.625 / 0.9) / (0.375 / 0.1)), 0.25, LAM * MU * -0.5),
    (SHARP, 0.0, 0, 0.25 * math.log((0.625 / 0.9) / (0.375 / 0.1)), 0.25, LAM * 0.5),
    # c = ln 3: z~ = .75, sigma' = .1875; z = 1: p^t = .75 p~t + .25 U = (.6875, .3125)
    (FLAT, LN3, 1, 0.25 * math.log(0.6875 / 0.3125), 0.1875, LAM * MU * -0.25),  # opposed
    (SHARP, LN3, 1, 0.25 * math.log((0.6875 / 0.9) / (0.3125 / 0.1)), 0.1875, LAM * MU * -0.25),
]
OPPOSED = [True, True, False, False, True, False]


def batch(cases=CASES):
    s = torch.tensor([c[0] for c in cases])
    conf = torch.tensor([c[1] for c in cases])
    z = torch.tensor([float(c[2]) for c in cases])
    return s, conf, torch.tensor([TEACHER] * len(cases)), z


def expected_kd(reduction="class_mean"):
    per_class = 2.0 if reduction == "class_mean" else 1.0
    return [(1 if z == 1 else -1) * dkl_dw * dsig / per_class for _, _, z, dkl_dw, dsig, _ in CASES]


@pytest.mark.parametrize("reduction", ["class_mean", "batchmean"])
def test_each_clips_gradients_on_its_confidence_logit(reduction):
    g_kd, g_conf = diagnostics.confidence_gradients(*batch(), condi(reduction))
    np.testing.assert_allclose(g_kd.numpy(), expected_kd(reduction), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_conf.numpy(), [c[5] for c in CASES], rtol=1e-6)
    assert diagnostics.opposition(g_kd, g_conf).tolist() == OPPOSED


def test_a_clips_gradients_do_not_depend_on_its_batch():
    """Per-clip, not batch-mean, gradients: one clip alone gives what it gives in the batch."""
    together = diagnostics.confidence_gradients(*batch(), condi())
    for i in range(len(CASES)):
        alone = diagnostics.confidence_gradients(*batch(CASES[i : i + 1]), condi())
        assert float(alone[0][0]) == pytest.approx(float(together[0][i]), rel=1e-5, abs=1e-8)
        assert float(alone[1][0]) == pytest.approx(float(together[1][i]), rel=1e-6)


def test_a_detached_target_sends_no_distillation_gradient_to_the_confidence():
    g_kd, g_conf = diagnostics.confidence_gradients(*batch(), condi(detach=True))
    assert g_kd.abs().max() == 0
    np.testing.assert_allclose(g_conf.numpy(), [c[5] for c in CASES], rtol=1e-6)
    assert not diagnostics.opposition(g_kd, g_conf).any()


def test_gradients_leave_the_inputs_untouched():
    s, conf, t, z = batch()
    conf.requires_grad_(True)
    diagnostics.confidence_gradients(s, conf, t, z, condi())
    assert conf.grad is None


def test_entropy_fraction():
    h_sharp = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    got = diagnostics.entropy_fraction(torch.tensor([FLAT, SHARP]))
    np.testing.assert_allclose(got.numpy(), [1.0, h_sharp], rtol=1e-6)


class Echo(nn.Module):
    """A 'student' whose outputs are written in its input: clip = (class logits, conf logit)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x[:, :2] * self.scale, x[:, 2] * self.scale


def test_the_epoch_loop_averages_the_hook_into_exact_per_epoch_shares():
    """Batches of 2 and 3 clips: the per-epoch shares are over the epoch's clips, not a mean of
    the batches' shares. Clips (index rows 0-4): CASES 0, 1 (first batch), CASES 2, 3, 3
    (second batch), so z = 1: rows 0 (opposed, z~ .5) and 2 (not, z~ .5); z = 0: rows 1
    (opposed) and 3, 4 (not)."""
    picked = [CASES[i] for i in (0, 1, 2, 3, 3)]
    s, conf, t, z = batch(picked)
    clips = torch.cat([s, conf[:, None]], dim=1)
    rows = torch.arange(5)
    labels = torch.zeros(5, dtype=torch.long)
    loader = [(clips[:2], labels[:2], rows[:2]), (clips[2:], labels[2:], rows[2:])]
    params = {"condi": condi(), "st_conf": {"beta": 0.1, "budget": 0.3}}
    hook = diagnostics.batch_metrics("condi_sr", params["condi"])
    step = make_step("condi_sr", params, t, z, rows, {}, batch_metrics=hook)
    model = Echo()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    metrics = run_epoch(model, loader, opt, step, torch.device("cpu"), "test")
    (summ,) = diagnostics.epoch_summary([{"epoch": 0, **metrics}])
    assert summ["opposed_z1"] == pytest.approx(1 / 2)
    assert summ["opposed_z0"] == pytest.approx(1 / 3)  # batch shares 1/1 and 0/2 average 1/2
    assert summ["ztilde_z1"] == pytest.approx(0.5)
    assert summ["ztilde_z0"] == pytest.approx(0.5)
    h_sharp = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert summ["entropy"] == pytest.approx((2 * 1.0 + 3 * h_sharp) / 5, rel=1e-6)


def test_methods_without_the_kd_term_on_the_confidence_record_no_opposition():
    s, conf, t, z = batch()
    out = (s, conf)
    bce = diagnostics.batch_metrics("bce_conf", condi())(out, None, t, z)
    assert set(bce) == {"diag_entropy", "diag_z1", "diag_ztilde_z1", "diag_ztilde_z0"}
    assert bce["diag_z1"] == pytest.approx(4 / 6)
    # z = 1 clips: z~ .5, .5, .75, .75; z = 0: .5, .5
    assert bce["diag_ztilde_z1"] == pytest.approx((0.5 + 0.5 + 0.75 + 0.75) / 6)
    assert bce["diag_ztilde_z0"] == pytest.approx((0.5 + 0.5) / 6)
    assert set(diagnostics.batch_metrics("st_ent", condi())(out, None, t, z)) == {"diag_entropy"}
    (summ,) = diagnostics.epoch_summary([{"epoch": 0, "train_diag_entropy": 0.5}])
    assert summ["entropy"] == 0.5 and math.isnan(summ["opposed_z1"])


def test_a_student_trains_the_same_with_the_hook(tiny_data, tmp_path):
    _, index, cache = tiny_data
    data = load_data(index, cache)
    rows = np.concatenate([data.rows("train"), data.rows("val")])
    logits = np.random.default_rng(0).normal(size=(len(rows), data.num_classes))
    pl = {
        "rows": rows,
        "logits": logits.astype(np.float16),
        "z": eq1_labels(logits, data.labels(rows)),
        "split": np.array(["train"] * len(data.rows("train")) + ["val"] * len(data.rows("val"))),
    }
    params = tiny_params()
    hook = diagnostics.batch_metrics("condi_sr", params["condi"])
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train_student(params, "resnext14half", "condi_sr", data, pl, a)
    train_student(params, "resnext14half", "condi_sr", data, pl, b, batch_metrics=hook)
    wa, wb = load_model(a)[1], load_model(b)[1]
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    ha, hb = wa["history"][-1], wb["history"][-1]
    assert ha["train_loss"] == hb["train_loss"]
    assert "train_diag_entropy" not in ha
    (summ,) = diagnostics.epoch_summary(wb["history"])
    for key in ("entropy", "ztilde_z1", "ztilde_z0", "opposed_z1", "opposed_z0"):
        assert 0.0 <= summ[key] <= 1.0, key
