"""``make_step``: the per-batch loss each student objective is trained with, on hand-made
batches whose values are worked out by hand (issue 16.3): the right z and the right teacher
logits reach the loss for each clip (through the row -> pseudo-label position map), and a clip
flipped into its mirror class distils the mirrored teacher logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from condi.methods import METHODS
from condi.training.student import _lookup, make_step

LN3 = math.log(3.0)
MU, LAM, BUDGET = 2.0, 2.0, 0.25  # not the defaults: a dropped argument would show


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def params(detach=False, reduction="batchmean"):
    # batchmean: the KD term is the plain per-clip KL (class_mean divides it by C)
    return {
        "condi": {
            "tau": 1.0,
            "lam": LAM,
            "mu": MU,
            "detach_confidence_in_target": detach,
            "kd_reduction": reduction,
        },
        "st_conf": {"beta": 0.1, "budget": BUDGET},
    }


# Pseudo-label arrays (positions 0, 1) for index rows 2 and 5: row 2 -> position 0 (teacher
# favours class 1, z = 0), row 5 -> position 1 (teacher favours class 0, z = 1).
TEACHER = torch.tensor([[0.0, LN3], [LN3, 0.0]])  # softmax: [.25, .75] and [.75, .25]
Z = torch.tensor([0.0, 1.0])
POS = torch.tensor([-1, -1, 0, -1, -1, 1])
ROW_LABELS = torch.tensor([0, 0, 1, 0, 0, 0])
ROWS = torch.tensor([5, 2])  # the batch: row 5 first
LABELS = torch.tensor([0, 1])


def student_out():
    # uniform class probabilities; z~ = sigmoid(ln 3) = 0.75 on both clips
    return torch.zeros(2, 2), torch.full((2,), LN3)


def step_for(method, **kw):
    return make_step(method, params(**kw.pop("p", {})), TEACHER, Z, POS, {"beta": 0.1}, **kw)


def test_condi_sr_step_gets_each_clips_z_and_teacher():
    loss, extra = step_for("condi_sr")(student_out(), LABELS, ROWS)
    # row 5: z = 1, p~t = [.75, .25]: p^t = .75 p~t + .25 U = [.6875, .3125]; BCE -mu log .75
    # row 2: z = 0, p~t = [.25, .75]: p^t = .25 p~t + .75 U = [.4375, .5625]; BCE -log .25
    kd = (kl([0.6875, 0.3125], [0.5, 0.5]) + kl([0.4375, 0.5625], [0.5, 0.5])) / 2
    bce = (-MU * math.log(0.75) - math.log(0.25)) / 2
    assert float(loss) == pytest.approx(kd + LAM * bce, rel=1e-6)
    assert extra == {}


@pytest.mark.parametrize("method", ["condi_sr", "st_ent"])
def test_the_step_follows_kd_reduction(method):
    """class_mean (Eq. 7 as written) divides each KD term by C = 2; the rest is unchanged."""
    batch = step_for(method)(student_out(), LABELS, ROWS)[0]
    by_class = step_for(method, p={"reduction": "class_mean"})(student_out(), LABELS, ROWS)[0]
    no_kd = step_for("bce_conf" if method == "condi_sr" else "maxprob")(
        student_out(), LABELS, ROWS
    )[0]
    # the non-KD part: lambda x the confidence BCE (condi_sr), the CE on y (st_ent)
    rest = LAM * (float(no_kd) - math.log(2)) if method == "condi_sr" else float(no_kd)
    assert float(by_class) - rest == pytest.approx((float(batch) - rest) / 2, rel=1e-6)


def test_bce_conf_step():
    loss, _ = step_for("bce_conf")(student_out(), LABELS, ROWS)
    bce = (-MU * math.log(0.75) - math.log(0.25)) / 2
    assert float(loss) == pytest.approx(math.log(2) + bce, rel=1e-6)


def test_st_ent_and_maxprob_steps():
    loss, _ = step_for("st_ent")(student_out(), LABELS, ROWS)
    kd = (kl([0.75, 0.25], [0.5, 0.5]) + kl([0.25, 0.75], [0.5, 0.5])) / 2
    assert float(loss) == pytest.approx(kd + math.log(2), rel=1e-6)
    # a student that agrees with row 5's teacher and not with row 2's: the KD term is
    # per-clip, so swapping the rows' teachers would change it
    logits = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    loss, _ = step_for("st_ent")((logits, torch.zeros(2)), LABELS, ROWS)
    kd = (0.0 + kl([0.25, 0.75], [0.75, 0.25])) / 2
    ce = (-math.log(0.75) - math.log(0.25)) / 2
    assert float(loss) == pytest.approx(kd + ce, rel=1e-6)
    loss, _ = step_for("maxprob")((logits, torch.zeros(2)), LABELS, ROWS)
    assert float(loss) == pytest.approx(ce, rel=1e-6)


def test_st_conf_step_updates_beta():
    state = {"beta": 0.1}
    step = make_step("st_conf", params(), TEACHER, Z, POS, state)
    torch.manual_seed(0)
    loss, extra = step(student_out(), LABELS, ROWS)
    # L_c = -log .75 = 0.288 > budget 0.25: beta / 0.99
    assert extra["conf_loss"] == pytest.approx(-math.log(0.75), rel=1e-6)
    assert state["beta"] == extra["beta"] == pytest.approx(0.1 / 0.99)
    # hints: p' = .75 [.5, .5] + .25 onehot(y): NLL -log .625; without: -log .5
    torch.manual_seed(0)
    hint = (torch.rand(2) < 0.5).tolist()
    nll = sum(-math.log(0.625) if h else -math.log(0.5) for h in hint) / 2
    assert float(loss) == pytest.approx(nll + 0.1 * -math.log(0.75), rel=1e-6)


def test_flipped_clip_distils_the_mirrored_teacher():
    """Row 5 (class 0) arrives labelled 1: it was flipped into its mirror class, so its teacher
    logits [ln 3, 0] are read as [0, ln 3]; row 2 keeps its own."""
    mirror = torch.tensor([1, 0])
    step = step_for("st_ent", row_labels=ROW_LABELS, mirror=mirror)
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]])
    loss, _ = step((logits, torch.zeros(2)), torch.tensor([1, 1]), ROWS)
    ce = -math.log(0.75)
    assert float(loss) == pytest.approx(0.0 + ce, abs=1e-6)  # both targets now equal the student
    # without the mirror map the flipped clip would distil the unflipped teacher
    plain, _ = step_for("st_ent")((logits, torch.zeros(2)), torch.tensor([1, 1]), ROWS)
    assert float(plain) == pytest.approx(kl([0.75, 0.25], [0.25, 0.75]) / 2 + ce, rel=1e-6)


def test_unknown_method():
    assert set(METHODS) == {"condi_sr", "bce_conf", "st_ent", "st_conf", "maxprob"}
    with pytest.raises(ValueError, match="unknown method"):
        step_for("nope")(student_out(), LABELS, ROWS)


def test_lookup_maps_index_rows_to_pseudo_label_positions():
    pos = _lookup(6, {"rows": np.array([5, 2])})
    assert pos.tolist() == [-1, -1, 1, -1, -1, 0] and pos.dtype == np.int64


def test_condi_sr_step_follows_the_detach_switch():
    grads = []
    for detach in (False, True):
        conf = torch.full((2,), LN3, requires_grad=True)
        step = step_for("condi_sr", p={"detach": detach})
        loss, _ = step((torch.tensor([[2.0, 0.0], [0.0, 1.0]]), conf), LABELS, ROWS)
        loss.backward()
        grads.append(conf.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_mirror_without_row_labels_changes_nothing():
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]])
    a, _ = step_for("st_ent", mirror=torch.tensor([1, 0]))((logits, torch.zeros(2)), LABELS, ROWS)
    b, _ = step_for("st_ent")((logits, torch.zeros(2)), LABELS, ROWS)
    assert float(a) == float(b)


@pytest.mark.parametrize("method", ["condi_sr", "bce_conf", "st_ent", "maxprob"])
def test_the_step_moves_teacher_logits_and_z_to_the_students_device(method):
    """The pseudo-label arrays live on the CPU; the step brings the batch's rows to the device
    the student computes on. The meta device (tensors without data, on every machine) stands
    in for a GPU: mixing it with CPU tensors raises, as CUDA does."""
    meta = torch.device("meta")
    out = (torch.zeros(2, 2, device=meta), torch.zeros(2, device=meta))
    loss, _ = step_for(method)(out, LABELS.to(meta), ROWS)
    assert loss.device == meta and loss.shape == ()


def test_the_mirror_mask_is_moved_to_the_students_device():
    meta = torch.device("meta")
    out = (torch.zeros(2, 2, device=meta), torch.zeros(2, device=meta))
    step = step_for("condi_sr", row_labels=ROW_LABELS, mirror=torch.tensor([1, 0]))
    # labels on the CPU: the step compares them with the index's labels there
    loss, _ = step(out, torch.tensor([1, 1]), ROWS)
    assert loss.device == meta


@pytest.mark.parametrize("method", ["st_ent", "st_conf"])
def test_the_batch_metrics_hook_sees_what_the_loss_saw_and_joins_the_extras(method):
    """The hook gets the model's output, the labels, the batch's teacher logits (row 5 arrives
    flipped: its [ln 3, 0] read as [0, ln 3]) and z; its scalars join the objective's own
    extras, and the loss is the same with or without it."""
    seen = []

    def hook(out, labels, t_logits, z):
        seen.append((out, labels, t_logits, z))
        return {"diag_seen": 1.5}

    out, labels = student_out(), torch.tensor([1, 1])
    flips = {"row_labels": ROW_LABELS, "mirror": torch.tensor([1, 0])}
    torch.manual_seed(0)  # st_conf draws its hints
    loss, extra = step_for(method, batch_metrics=hook, **flips)(out, labels, ROWS)
    torch.manual_seed(0)
    plain_loss, plain_extra = step_for(method, **flips)(out, labels, ROWS)
    assert len(seen) == 1
    got_out, got_labels, got_t, got_z = seen[0]
    assert got_out is out and got_labels.tolist() == [1, 1]
    assert got_t.flatten().tolist() == pytest.approx([0.0, LN3, 0.0, LN3])
    assert got_z.tolist() == [1.0, 0.0]  # rows 5 and 2
    assert extra == {**plain_extra, "diag_seen": 1.5}
    assert float(loss) == float(plain_loss)
