"""Diagnostics of a student's training (docs/method.md, section 9.3): how uniform its classifier
stays, how well its confidence head separates its own Eq. 1 labels, and whether the two terms of
ConDi-SR's loss (Eq. 6) pull the confidence logit the same way.

**Gradient opposition.** For clip i with confidence logit ``c_i`` (``z~_i = sigmoid(c_i)``), the
two terms of Eq. 6 act on ``c_i``:

* ``g_KD_i = dL_KD / dc_i``, with ``L_KD = kd_kl(condi_sr_target(s^t, z~, z, tau), s, tau)``
  (Eq. 5, 7-8, the configured ``kd_reduction``): the distillation term reaches ``c_i`` only
  through ``z~_i`` in Eq. 5's target (the student's class logits are held fixed). With
  ``detach_confidence_in_target`` it is 0, as in training;
* ``g_conf_i = d(lambda L_conf) / dc_i``, the mu-weighted BCE against Eq. 1's ``z_i``:
  ``lambda mu (z~_i - 1)`` for ``z_i = 1`` and ``lambda z~_i`` for ``z_i = 0``, so it always
  pushes ``z~_i`` towards ``z_i``.

Both terms are batch means of per-clip terms, and clip i's term depends on ``c_i`` only, so
``dL/dc_i = (1/B) dl_i/dc_i``: one ``torch.autograd.grad`` of each batch loss with respect to
the (B,) logit vector, times B, gives every clip's own gradient ``dl_i/dc_i``
(:func:`confidence_gradients`). Clip i is *opposed* when ``g_KD_i * g_conf_i < 0``: the
distillation term pushes z~ away from the label the BCE term pulls it to (a zero gradient
opposes nothing). The computation uses detached copies of the outputs, so it changes neither
the model, its gradients, nor any random state.

**Per-epoch averages** (:func:`batch_metrics`, the hook of
:func:`condi.training.student.make_step`): :func:`condi.training.trainer.run_epoch` averages a
step's extras over the epoch's clips, weighting each batch by its size. So the hook returns
per-batch *sums divided by the batch size* (``diag_z1``: the share of z = 1 clips;
``diag_opposed_z1``: the opposed z = 1 clips / B, ...), whose epoch averages are the epoch's
totals over its number of clips, and :func:`epoch_summary` divides them to get exact per-epoch
shares and means over all the epoch's clips.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from condi import losses
from condi.methods import get_method

__all__ = [
    "batch_metrics",
    "confidence_gradients",
    "entropy_fraction",
    "epoch_summary",
    "opposition",
]


def entropy_fraction(logits: torch.Tensor) -> torch.Tensor:
    """(B,): the entropy of ``softmax(logits)`` as a fraction of its maximum ``log C``
    (1: uniform, 0: one-hot)."""
    logp = torch.log_softmax(logits.detach().double(), dim=1)
    h = -(logp.exp() * logp).sum(dim=1)
    return (h / math.log(logits.shape[1])).float()


def confidence_gradients(
    student_logits: torch.Tensor,
    confidence_logit: torch.Tensor,
    teacher_logits: torch.Tensor,
    z: torch.Tensor,
    condi: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_KD, g_conf)``, each (B,): every clip's gradient of ConDi-SR's distillation term and
    of its weighted BCE term with respect to its own confidence logit (module docstring).
    ``condi`` is params ``condi`` (tau, lam, mu, kd_reduction, detach_confidence_in_target)."""
    s = student_logits.detach().float()
    t = teacher_logits.detach().float()
    zz = z.detach().float()
    b = s.shape[0]
    with torch.enable_grad():
        c = confidence_logit.detach().float().clone().requires_grad_(True)
        z_tilde = torch.sigmoid(c)
        if condi["detach_confidence_in_target"]:
            z_tilde = z_tilde.detach()
        target = losses.condi_sr_target(t, z_tilde, zz, condi["tau"])
        kd = losses.kd_kl(target, s, condi["tau"], condi["kd_reduction"])
        if kd.requires_grad:
            (g_kd,) = torch.autograd.grad(kd, c)
        else:
            g_kd = torch.zeros_like(c)
        conf = condi["lam"] * losses.confidence_bce(c, zz, condi["mu"])
        (g_conf,) = torch.autograd.grad(conf, c)
    return g_kd.detach() * b, g_conf.detach() * b


def opposition(g_kd: torch.Tensor, g_conf: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the two gradients on the confidence logit have opposite signs."""
    return (g_kd * g_conf) < 0


def batch_metrics(method: str, condi: dict[str, Any]):
    """The per-batch hook of :func:`condi.training.student.make_step` for ``method`` trained
    with params ``condi``: ``diag_entropy`` (mean entropy fraction of the batch); for a method
    that trains the confidence head, ``diag_z1`` (share of z = 1 clips) and ``diag_ztilde_z1``
    / ``diag_ztilde_z0`` (sum of z~ over the z = 1 / z = 0 clips, over B); for ``condi_sr``,
    ``diag_opposed_z1`` / ``diag_opposed_z0`` (opposed clips with z = 1 / z = 0, over B).
    :func:`epoch_summary` turns their epoch averages into shares and means."""
    m = get_method(method)

    def hook(out, labels, teacher_logits, z) -> dict[str, float]:
        logits, conf = out
        b = logits.shape[0]
        res = {"diag_entropy": float(entropy_fraction(logits).mean())}
        if not m.trains_confidence:
            return res
        z1 = z.detach() > 0.5
        zt = torch.sigmoid(conf.detach().float())
        res["diag_z1"] = float(z1.sum()) / b
        res["diag_ztilde_z1"] = float(zt[z1].sum()) / b
        res["diag_ztilde_z0"] = float(zt[~z1].sum()) / b
        if method == "condi_sr":
            opp = opposition(*confidence_gradients(logits, conf, teacher_logits, z, condi))
            res["diag_opposed_z1"] = float((opp & z1).sum()) / b
            res["diag_opposed_z0"] = float((opp & ~z1).sum()) / b
        return res

    return hook


def _ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None or not den > 0:
        return math.nan
    return float(num / den)


def epoch_summary(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """Per epoch, from a checkpoint's ``history`` written with :func:`batch_metrics`:
    ``entropy`` (mean entropy fraction over the epoch's training clips), ``ztilde_z1`` /
    ``ztilde_z0`` (mean z~ over its z = 1 / z = 0 clips), ``opposed_z1`` / ``opposed_z0``
    (share of its z = 1 / z = 0 clips whose two gradients are opposed); NaN where the hook did
    not record it."""
    out = []
    for h in history:
        z1 = h.get("train_diag_z1")
        z0 = None if z1 is None else 1.0 - z1
        out.append(
            {
                "epoch": int(h.get("epoch", len(out))),
                "entropy": float(h.get("train_diag_entropy", np.nan)),
                "ztilde_z1": _ratio(h.get("train_diag_ztilde_z1"), z1),
                "ztilde_z0": _ratio(h.get("train_diag_ztilde_z0"), z0),
                "opposed_z1": _ratio(h.get("train_diag_opposed_z1"), z1),
                "opposed_z0": _ratio(h.get("train_diag_opposed_z0"), z0),
            }
        )
    return out
