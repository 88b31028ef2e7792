"""The student objectives of docs/method.md, sections 2-3 (paper Eq. 3-8 and the baselines of Table III).

Every loss takes raw logits and returns a scalar (the batch mean). Shapes: ``student_logits``
and ``teacher_logits`` (B, C); ``confidence_logit`` (B,); ``z`` (B,) in {0, 1} (Eq. 1);
``labels`` (B,) int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "bce_conf_loss",
    "condi_sr_loss",
    "condi_sr_target",
    "confidence_bce",
    "kd_kl",
    "maxprob_loss",
    "st_conf_loss",
    "StConfBeta",
    "st_ent_loss",
]


KD_REDUCTIONS = ("class_mean", "batchmean")


def kd_kl(
    target_probs: torch.Tensor,
    student_logits: torch.Tensor,
    tau: float,
    reduction: str = "class_mean",
) -> torch.Tensor:
    """L_KD of Eq. 7-8: ``tau^2 * KL(target || softmax(student / tau))``.

    ``reduction="class_mean"`` (Eq. 7 as written, the default): the sum over the C entries of
    the probability vectors carries 1/n with n = C, then the batch mean; what PyTorch's
    ``nn.KLDivLoss()`` computed with its default reduction at the paper's time.
    ``"batchmean"`` (Eq. 8, Hinton's convention): the KL summed over classes, batch mean.
    The two differ by a factor C in the weight of the KD term against L_conf
    (docs/method.md, section 2). ``0 * log 0`` terms count as 0.
    """
    if reduction not in KD_REDUCTIONS:
        raise ValueError(f"kd reduction: one of {KD_REDUCTIONS}, not {reduction!r}")
    log_ps = F.log_softmax(student_logits / tau, dim=1)
    kl = F.kl_div(log_ps, target_probs, reduction="none").sum(dim=1)
    if reduction == "class_mean":
        kl = kl / target_probs.shape[1]
    return tau**2 * kl.mean()


def condi_sr_target(
    teacher_logits: torch.Tensor,
    z_tilde: torch.Tensor,
    z: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """Eq. 5: the teacher's softened distribution mixed with the uniform vector U = 1/C.

    ``z = 1``: ``p^t = z~ p~t + (1 - z~) U``; ``z = 0``: ``p^t = (1 - z~) p~t + z~ U``,
    with ``p~t = softmax(s^t / tau)`` (Eq. 3-4). Gradients flow through ``z~`` unless the
    caller detaches it (``detach_confidence_in_target``, beyond the paper).
    """
    p_t = F.softmax(teacher_logits.float() / tau, dim=1)
    uniform = torch.full_like(p_t, 1.0 / p_t.shape[1])
    zt = z_tilde.unsqueeze(1)
    weight = torch.where(z.unsqueeze(1) > 0.5, zt, 1.0 - zt)
    return weight * p_t + (1.0 - weight) * uniform


def confidence_bce(confidence_logit: torch.Tensor, z: torch.Tensor, mu: float) -> torch.Tensor:
    """L_conf: binary cross-entropy of ``z~ = sigmoid(logit)`` against Eq. 1's ``z``, with
    positive-class weight ``mu`` (``pos_weight`` on the z = 1 term), batch mean."""
    pos_weight = torch.tensor(mu, dtype=confidence_logit.dtype, device=confidence_logit.device)
    return F.binary_cross_entropy_with_logits(
        confidence_logit, z.to(confidence_logit.dtype), pos_weight=pos_weight
    )


def condi_sr_loss(
    student_logits: torch.Tensor,
    confidence_logit: torch.Tensor,
    teacher_logits: torch.Tensor,
    z: torch.Tensor,
    tau: float = 0.9,
    lam: float = 1.5,
    mu: float = 1.5,
    detach_confidence_in_target: bool = False,
    kd_reduction: str = "class_mean",
) -> torch.Tensor:
    """ConDi-SR, Eq. 6: ``L = L_KD(p^t, p~s) + lambda * L_conf``.

    ``p^t`` is Eq. 5's confidence-modulated target (:func:`condi_sr_target`), ``L_KD`` Eq. 7-8
    (:func:`kd_kl`), ``L_conf`` the ``mu``-weighted BCE on Eq. 1's labels
    (:func:`confidence_bce`).
    """
    z_tilde = torch.sigmoid(confidence_logit.float())
    if detach_confidence_in_target:
        z_tilde = z_tilde.detach()
    target = condi_sr_target(teacher_logits, z_tilde, z, tau)
    return kd_kl(target, student_logits.float(), tau, kd_reduction) + lam * confidence_bce(
        confidence_logit.float(), z, mu
    )


def bce_conf_loss(
    student_logits: torch.Tensor,
    confidence_logit: torch.Tensor,
    labels: torch.Tensor,
    z: torch.Tensor,
    mu: float = 1.5,
) -> torch.Tensor:
    """``bce_conf`` (Table III): cross-entropy on y for the classification head plus the
    ``mu``-weighted BCE on Eq. 1's z for the confidence head, with no distillation."""
    return F.cross_entropy(student_logits.float(), labels) + confidence_bce(
        confidence_logit.float(), z, mu
    )


def st_ent_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 0.9,
    kd_reduction: str = "class_mean",
) -> torch.Tensor:
    """``st_ent`` (Table III): Hinton's soft-label KD, ``tau^2 KL(p~t || p~s) + CE(y)``, its
    KD term reduced as ConDi-SR's (``kd_reduction``, so that the two compare alike).

    At test time the student ranks clips by the lowest predictive entropy of its softmax.
    """
    p_t = F.softmax(teacher_logits.float() / tau, dim=1)
    kd = kd_kl(p_t, student_logits.float(), tau, kd_reduction)
    return kd + F.cross_entropy(student_logits.float(), labels)


def maxprob_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``maxprob`` (SCSampler-style, beyond the paper's table): plain cross-entropy on y;
    clips are ranked by the student's max-softmax."""
    return F.cross_entropy(student_logits.float(), labels)


@dataclass
class StConfBeta:
    """DeVries and Taylor's adaptive weight: ``beta_l`` starts at 0.1; after each step it is
    divided by 1.01 when ``budget > L_c`` and by 0.99 otherwise (docs/method.md, section 3)."""

    beta: float = 0.1
    budget: float = 0.3

    def update(self, confidence_loss: float) -> None:
        self.beta = self.beta / 1.01 if self.budget > confidence_loss else self.beta / 0.99


def st_conf_loss(
    student_logits: torch.Tensor,
    confidence_logit: torch.Tensor,
    labels: torch.Tensor,
    beta: float,
    hint_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``st_conf`` (DeVries and Taylor 2018, docs/method.md, section 3), on one-hot labels.

    ``c = sigmoid(conf)``; on the clips where ``hint_mask`` is true (a Bernoulli(0.5) half of
    the batch) the prediction gets hints, ``p' = c p + (1 - c) onehot(y)``; elsewhere ``p' = p``.
    ``L = NLL(log p') + beta * L_c`` with ``L_c = mean(-log c)``.
    Returns ``(L, L_c)``; the caller updates ``beta`` from ``L_c`` (:class:`StConfBeta`).
    """
    eps = 1e-12
    p = F.softmax(student_logits.float(), dim=1)
    c = torch.sigmoid(confidence_logit.float()).clamp(eps, 1.0 - eps)
    onehot = F.one_hot(labels, p.shape[1]).to(p.dtype)
    c_used = torch.where(hint_mask, c, torch.ones_like(c)).unsqueeze(1)
    p_prime = c_used * p + (1.0 - c_used) * onehot
    nll = F.nll_loss(torch.log(p_prime.clamp_min(eps)), labels)
    l_c = -torch.log(c).mean()
    return nll + beta * l_c, l_c
