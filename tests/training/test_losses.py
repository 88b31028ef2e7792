"""The objectives of docs/method.md, sections 2-3 against values worked out by hand on tiny tensors."""

import math

import pytest
import torch

from condi import losses
from condi.training.schedule import student_lrs, teacher_lr

LN3 = math.log(3.0)


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


@pytest.mark.parametrize(
    ("z", "target"),
    [
        # z = 1: p^t = z~ p~t + (1 - z~) U with z~ = 0.75, p~t = [0.75, 0.25], U = [0.5, 0.5]
        (1.0, [0.75 * 0.75 + 0.25 * 0.5, 0.75 * 0.25 + 0.25 * 0.5]),
        # z = 0: p^t = (1 - z~) p~t + z~ U
        (0.0, [0.25 * 0.75 + 0.75 * 0.5, 0.25 * 0.25 + 0.75 * 0.5]),
    ],
)
def test_eq5_target_both_branches(z, target):
    out = losses.condi_sr_target(t(LN3, 0.0)[None], t(LN3).sigmoid(), t(z), tau=1.0)
    assert out[0].tolist() == pytest.approx(target, abs=1e-6)
    assert float(out.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("reduction", ["class_mean", "batchmean"])
@pytest.mark.parametrize(("z", "bce"), [(1.0, -1.5 * math.log(0.75)), (0.0, -math.log(0.25))])
def test_condi_sr_loss_by_hand(z, bce, reduction):
    # student logits [0, 0] -> p~s = [0.5, 0.5]; tau = 1; lambda = 2, mu = 1.5
    zt = 0.75
    target = (
        [zt * 0.75 + (1 - zt) * 0.5, zt * 0.25 + (1 - zt) * 0.5]
        if z
        else [(1 - zt) * 0.75 + zt * 0.5, (1 - zt) * 0.25 + zt * 0.5]
    )
    # Eq. 7 as written: the KL's sum over the C = 2 entries carries 1/C (class_mean)
    per_class = 2 if reduction == "class_mean" else 1
    expected = kl(target, [0.5, 0.5]) / per_class + 2.0 * bce
    loss = losses.condi_sr_loss(
        t(0.0, 0.0)[None],
        t(LN3),
        t(LN3, 0.0)[None],
        t(z),
        tau=1.0,
        lam=2.0,
        mu=1.5,
        kd_reduction=reduction,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_condi_sr_tau_squared_and_batch_mean():
    s = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]])
    te = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    conf, z, tau = t(0.3, -0.7), t(1.0, 0.0), 0.9
    got = losses.condi_sr_loss(s, conf, te, z, tau=tau, lam=0.0, mu=1.5, kd_reduction="batchmean")
    by_class = losses.condi_sr_loss(s, conf, te, z, tau=tau, lam=0.0, mu=1.5)
    zt = conf.sigmoid()
    per = []
    for i in range(2):
        pt = torch.softmax(te[i] / tau, 0)
        w = zt[i] if z[i] == 1 else 1 - zt[i]
        target = (w * pt + (1 - w) / 3).tolist()
        ps = torch.softmax(s[i] / tau, 0).tolist()
        per.append(tau**2 * kl(target, ps))
    assert float(got) == pytest.approx(sum(per) / 2, rel=1e-5)
    assert float(by_class) == pytest.approx(sum(per) / 2 / 3, rel=1e-5)  # C = 3


def test_pos_weight_applies_to_z1_term_only():
    logit = t(0.0)
    assert float(losses.confidence_bce(logit, t(1.0), mu=1.5)) == pytest.approx(1.5 * math.log(2))
    assert float(losses.confidence_bce(logit, t(0.0), mu=1.5)) == pytest.approx(math.log(2))


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_reaches_z_tilde_through_the_target(detach):
    conf = t(0.4).requires_grad_()
    loss = losses.condi_sr_loss(
        t(2.0, 0.0)[None],
        conf,
        t(0.0, 3.0)[None],
        t(1.0),
        tau=0.9,
        lam=0.0,
        mu=1.5,
        detach_confidence_in_target=detach,
    )
    loss.backward()
    if detach:
        assert conf.grad is None or float(conf.grad) == 0.0
    else:
        # raising z~ moves the target towards the teacher (class 1) and away from the
        # student (class 0): the KD loss grows, so the gradient is positive
        assert float(conf.grad) > 1e-3


@pytest.mark.parametrize(("reduction", "per_class"), [("class_mean", 2), ("batchmean", 1)])
def test_st_ent_is_hinton_kd_plus_ce(reduction, per_class):
    loss = losses.st_ent_loss(
        t(0.0, 0.0)[None], t(LN3, 0.0)[None], torch.tensor([0]), tau=1.0, kd_reduction=reduction
    )
    expected = kl([0.75, 0.25], [0.5, 0.5]) / per_class + math.log(2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_an_unknown_kd_reduction_is_refused():
    with pytest.raises(ValueError, match="kd reduction"):
        losses.kd_kl(t(0.5, 0.5)[None], t(0.0, 0.0)[None], 1.0, "sum")


def test_bce_conf_is_ce_plus_weighted_bce():
    loss = losses.bce_conf_loss(t(0.0, 0.0)[None], t(0.0), torch.tensor([1]), t(1.0), mu=1.5)
    assert float(loss) == pytest.approx(math.log(2) + 1.5 * math.log(2), rel=1e-6)


def test_st_conf_hints_and_budget():
    logits, conf, y = t(0.0, 0.0)[None], t(0.0), torch.tensor([0])
    with_hint, l_c = losses.st_conf_loss(logits, conf, y, beta=0.1, hint_mask=torch.tensor([True]))
    # p' = 0.5 [0.5, 0.5] + 0.5 [1, 0] = [0.75, 0.25]
    assert float(with_hint) == pytest.approx(-math.log(0.75) + 0.1 * math.log(2), rel=1e-5)
    assert float(l_c) == pytest.approx(math.log(2))
    without, _ = losses.st_conf_loss(logits, conf, y, beta=0.1, hint_mask=torch.tensor([False]))
    assert float(without) == pytest.approx(math.log(2) + 0.1 * math.log(2), rel=1e-5)
    beta = losses.StConfBeta(0.1, budget=0.3)
    beta.update(0.2)  # budget > L_c: beta / 1.01
    assert beta.beta == pytest.approx(0.1 / 1.01)
    beta.update(0.5)  # else beta / 0.99
    assert beta.beta == pytest.approx(0.1 / 1.01 / 0.99)


def test_student_learning_rates_per_epoch():
    got = [student_lrs(e, 0.1) for e in range(4)]
    expected = [(0.1, 0.1), (0.08, 0.1), (0.064, 0.02), (0.0512, 0.004)]
    for (b, c), (eb, ec) in zip(got, expected, strict=True):
        assert b == pytest.approx(eb)
        assert c == pytest.approx(ec)


def test_teacher_step_schedule():
    cfg = {"lr": 0.1, "lr_step": 0.1, "lr_milestones": [2, 4]}
    assert [teacher_lr(e, cfg) for e in range(5)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_defaults_are_the_papers():
    """tau 0.9, lambda 1.5, mu 1.5, no detach (docs/method.md, section 2): the defaults equal explicit values."""
    s = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]])
    te = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    conf, z, y = t(0.3, -0.7), t(1.0, 0.0), torch.tensor([0, 2])
    explicit = losses.condi_sr_loss(s, conf, te, z, 0.9, 1.5, 1.5, False)
    assert float(losses.condi_sr_loss(s, conf, te, z)) == pytest.approx(float(explicit))
    c = conf.clone().requires_grad_()
    losses.condi_sr_loss(s, c, te, z).backward()
    assert float(c.grad.abs().sum()) > 0
    c2 = conf.clone().requires_grad_()
    losses.condi_sr_loss(s, c2, te, z, 0.9, 1.5, 1.5, True).backward()
    assert not torch.allclose(c.grad, c2.grad)  # the default lets gradients through z~
    assert float(losses.bce_conf_loss(s, conf, y, z)) == pytest.approx(
        float(losses.bce_conf_loss(s, conf, y, z, 1.5))
    )
    assert float(losses.st_ent_loss(s, te, y)) == pytest.approx(
        float(losses.st_ent_loss(s, te, y, 0.9))
    )


def test_st_ent_softens_the_teacher_by_tau():
    # tau = 0.5: p~t = softmax([ln 3, 0] / 0.5) = [0.9, 0.1]; p~s = [0.5, 0.5]
    loss = losses.st_ent_loss(
        t(0.0, 0.0)[None], t(LN3, 0.0)[None], torch.tensor([0]), tau=0.5, kd_reduction="batchmean"
    )
    assert float(loss) == pytest.approx(0.25 * kl([0.9, 0.1], [0.5, 0.5]) + math.log(2), rel=1e-5)


def test_st_conf_beta_at_the_budget_is_divided_by_099():
    beta = losses.StConfBeta(0.1, budget=0.25)
    beta.update(0.25)  # not budget > L_c
    assert beta.beta == pytest.approx(0.1 / 0.99)


def test_st_conf_hint_on_a_later_class_and_saturated_confidence():
    # 3 classes, label 1, hint: p' = 0.5 [1/3] * 3 + 0.5 onehot(1) -> p'[1] = 1/6 + 1/2
    logits, conf, y = torch.zeros(1, 3), t(0.0), torch.tensor([1])
    loss, _ = losses.st_conf_loss(logits, conf, y, beta=0.0, hint_mask=torch.tensor([True]))
    assert float(loss) == pytest.approx(-math.log(1 / 6 + 1 / 2), rel=1e-6)
    # c = sigmoid(-200) underflows to 0 in float32: L_c is -log(1e-12), not infinite
    loss, l_c = losses.st_conf_loss(logits, t(-200.0), y, beta=1.0, hint_mask=torch.tensor([False]))
    assert float(l_c) == pytest.approx(-math.log(1e-12), rel=1e-4)
    assert math.isfinite(float(loss))


def test_kd_reduction_default_is_eq7():
    """Eq. 7 as written (1/C inside the KL) unless asked otherwise (docs/method.md, section 2)."""
    target = torch.tensor([[0.75, 0.25, 0.0]])
    s = torch.zeros(1, 3)
    default = float(losses.kd_kl(target, s, 1.0))
    assert default == pytest.approx(float(losses.kd_kl(target, s, 1.0, "class_mean")))
    assert default == pytest.approx(kl([0.75, 0.25], [1 / 3, 1 / 3]) / 3, rel=1e-6)


def test_st_conf_gradients_by_hand():
    """Training follows the gradient, so it is checked too. Two clips, C = 2, uniform class
    probabilities p = [.5, .5], c = sigmoid(0) = .5, beta = .1; clip 0 (label 0) gets hints,
    clip 1 (label 1) does not. Per clip, divided by the batch size 2:
    clip 0: L = -log(c p_0 + 1 - c) = -log .75; dL/dconf = -(p_0 - 1) c (1 - c) / .75 = 1/6,
    dL/dlogits = -c p_0 (onehot - p) / .75 = [-1/6, 1/6];
    clip 1: L = -log p_1, dL/dlogits = p - onehot = [.5, -.5], nothing through c;
    beta L_c = -beta log c on each: dL/dconf = -beta (1 - c) = -.05."""
    logits = torch.zeros(2, 2, requires_grad=True)
    conf = torch.zeros(2, requires_grad=True)
    hint = torch.tensor([True, False])
    loss, _ = losses.st_conf_loss(logits, conf, torch.tensor([0, 1]), beta=0.1, hint_mask=hint)
    loss.backward()
    assert conf.grad.tolist() == pytest.approx([(1 / 6 - 0.05) / 2, -0.05 / 2], abs=1e-7)
    assert logits.grad.flatten().tolist() == pytest.approx([-1 / 12, 1 / 12, 0.25, -0.25], abs=1e-7)


@pytest.mark.parametrize("z_dtype", [torch.float32, torch.uint8])
def test_confidence_bce_keeps_the_logits_precision(z_dtype):
    """In float64, mu = 0.1 (not a float32 number) and z given as float32 or as stored (uint8):
    BCE(sigmoid(0), 1) = log 2 weighted by mu, and log 2 for z = 0, to double precision."""
    logit = torch.zeros(2, dtype=torch.float64)
    z = torch.tensor([1, 0], dtype=z_dtype)
    loss = losses.confidence_bce(logit, z, mu=0.1)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx((0.1 * math.log(2) + math.log(2)) / 2, rel=1e-14)
