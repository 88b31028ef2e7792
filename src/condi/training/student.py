"""Student distillation per (teacher, student, method): the objectives of docs/method.md, sections 2-3.

All students share one definition (``condi.models.build_student``: backbone, classification
head, one-logit confidence head) and the paper's two-group optimiser (IV-A): the base lr is
divided by ``lr_div`` (1.25) every epoch and the confidence branch's by ``conf_lr_div`` (5)
after every epoch from the second on. Students keep their last epoch's weights (the schedule
anneals both groups; the paper names no selection rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed

from condi import losses
from condi.data import flips
from condi.data.indexed import IndexedData
from condi.methods import get_method
from condi.metrics import auroc, softmax_np, video_accuracy
from condi.scores import ranking_score
from condi.training.protocol import init_weights, recipe
from condi.training.schedule import student_lrs, student_optimizer
from condi.training.trainer import train

log = logging.getLogger(__name__)

# (model output, labels, teacher logits, z) of one batch -> scalars to average over the epoch
BatchMetrics = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


def _lookup(n_rows: int, pl: dict[str, np.ndarray]) -> np.ndarray:
    pos = np.full(n_rows, -1, dtype=np.int64)
    pos[pl["rows"]] = np.arange(len(pl["rows"]))
    return pos


def make_step(
    method: str,
    params: dict[str, Any],
    teacher_logits: torch.Tensor,
    z: torch.Tensor,
    pos: torch.Tensor,
    extra_state: dict[str, Any],
    row_labels: torch.Tensor | None = None,
    mirror: torch.Tensor | None = None,
    batch_metrics: BatchMetrics | None = None,
):
    """The per-batch loss of ``method`` (a name of :mod:`condi.methods`' registry, else
    ``ValueError``); ``rows`` index the teacher's logits and z (Eq. 1) through ``pos`` (index
    row -> position in the pseudo-label arrays).

    Flips (``data.flip: swap``): a clip whose label differs from its index row's
    (``row_labels``) was flipped into its mirror class, so the teacher's logits, computed on the
    unflipped clip, are permuted by ``mirror`` (class -> mirror class,
    :func:`condi.data.flips.logit_permutation`) before they serve as its target; z is kept (the
    teacher is as right on the mirror image as on the clip).

    ``batch_metrics`` (a diagnostic hook, e.g. :func:`condi.training.diagnostics.batch_metrics`)
    is called on every batch with what the loss saw: ``(model output, labels, teacher logits,
    z)``, the teacher's logits already mirrored for flipped clips. The scalars it returns join
    the step's extras, which :func:`condi.training.trainer.run_epoch` averages over the
    epoch's clips (weighted by batch size) into the history as ``train_<name>``. It must not
    change the model, its gradients or any random state: training is the same with or without.
    """
    get_method(method)
    c = params["condi"]
    tau, lam, mu = c["tau"], c["lam"], c["mu"]

    def targets(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor):
        """The batch's teacher logits (mirrored for flipped clips) and Eq. 1 labels z."""
        idx = pos[rows]
        t_logits = teacher_logits[idx].to(logits.device, torch.float32)
        if mirror is not None and row_labels is not None:
            flipped = (labels.cpu() != row_labels[rows]).to(logits.device)
            t_logits = torch.where(
                flipped[:, None], t_logits[:, mirror.to(logits.device)], t_logits
            )
        return t_logits, z[idx].to(logits.device, torch.float32)

    def objective(logits, conf, labels, t_logits, zz):
        if method == "condi_sr":
            return losses.condi_sr_loss(
                logits,
                conf,
                t_logits,
                zz,
                tau,
                lam,
                mu,
                c["detach_confidence_in_target"],
                c["kd_reduction"],
            ), {}
        if method == "bce_conf":
            return losses.bce_conf_loss(logits, conf, labels, zz, mu), {}
        if method == "st_ent":
            return losses.st_ent_loss(logits, t_logits, labels, tau, c["kd_reduction"]), {}
        if method == "maxprob":
            return losses.maxprob_loss(logits, labels), {}
        if method == "st_conf":
            beta = losses.StConfBeta(extra_state["beta"], params["st_conf"]["budget"])
            hint = torch.rand(labels.shape[0], device=logits.device) < 0.5
            loss, l_c = losses.st_conf_loss(logits, conf, labels, beta.beta, hint)
            beta.update(float(l_c.detach()))
            extra_state["beta"] = beta.beta
            return loss, {"conf_loss": float(l_c.detach()), "beta": beta.beta}
        raise ValueError(f"method {method!r} is registered but has no training objective here")

    def step(out, labels, rows):
        logits, conf = out
        t_logits, zz = targets(logits, labels, rows)
        loss, extras = objective(logits, conf, labels, t_logits, zz)
        if batch_metrics is not None:
            extras = {**extras, **batch_metrics(out, labels, t_logits, zz)}
        return loss, extras

    return step


def train_student(
    params: dict[str, Any],
    student: str,
    method: str,
    data: IndexedData,
    pseudo_labels: dict[str, np.ndarray],
    out_path: str | Path,
    tracker=None,
    batch_metrics: BatchMetrics | None = None,
    pretrained: str | Path | None = None,
) -> dict[str, Any]:
    """Distil student ``student`` with objective ``method`` from the teacher whose Eq. 1 labels
    and logits are ``pseudo_labels``; writes the last epoch's weights to ``out_path``.

    ``batch_metrics``: a diagnostic hook on every training batch (:func:`make_step`); its
    per-epoch averages are in the checkpoint's ``history`` as ``train_<name>``.

    Under ``protocol: transfer`` the student starts from ``pretrained`` (the pre-trained
    student: backbone loaded, classifier re-initialised, confidence head fresh; the same
    weights for every method, docs/method.md section 2.5) and trains with
    :func:`condi.training.protocol.recipe` (α = ``lr`` for the base group, ``conf_lr`` for the
    confidence branch when set)."""
    get_method(method)  # a registered method (ValueError naming the known ones otherwise)
    init = init_weights(params, pretrained, f"student {student} ({method})")
    cfg = recipe(params, "student")
    c = params["condi"]
    train_rows = data.rows("train")
    pos = torch.from_numpy(_lookup(len(data.index), pseudo_labels))
    if (pos[torch.from_numpy(train_rows)] < 0).any():
        raise ValueError(
            "pseudo-labels do not cover every training clip of the index (stale file?)"
        )
    teacher_logits = torch.from_numpy(pseudo_labels["logits"].astype(np.float32))
    z = torch.from_numpy(pseudo_labels["z"].astype(np.float32))
    extra_state: dict[str, Any] = {"beta": params["st_conf"]["beta"]}
    mirror = flips.logit_permutation(flips.table_for(params["data"], data.meta))
    step = make_step(
        method,
        params,
        teacher_logits,
        z,
        pos,
        extra_state,
        row_labels=torch.tensor(data.index["label"].to_numpy()),
        mirror=torch.from_numpy(mirror),
        batch_metrics=batch_metrics,
    )

    def validate(out: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
        probs = softmax_np(out["logits"])
        score = ranking_score(method, out["logits"], out.get("confidence_logit"))
        z_val = pseudo_labels["z"][pos[torch.from_numpy(rows)].numpy()]
        return {
            "val_video_acc": video_accuracy(probs, data.video_ids(rows), data.labels(rows)),
            "val_auroc_teacher_correct": auroc(score, z_val),
        }

    def lrs(epoch: int) -> dict[str, float]:
        base, conf = student_lrs(
            epoch, cfg["lr"], c["lr_div"], c["conf_lr_div"], cfg.get("conf_lr")
        )
        return {"base": base, "confidence": conf}

    result = train(
        params,
        "student",
        student,
        data,
        out_path,
        step=step,
        optimizer=lambda model: student_optimizer(model, cfg),
        lrs=lrs,
        validate=validate,
        select=None,
        resume_key=(student, method, len(train_rows), float(pseudo_labels["z"].mean()), str(init)),
        desc=f"{method} {student}",
        train_rows=train_rows,
        extra_state=extra_state,
        tracker=tracker,
        method=method,
        cfg=cfg,
        init_from=init,
    )
    if result is None:  # another process of a torchrun job: rank 0 wrote the checkpoint
        return {"rank": torch.distributed.get_rank()}
    last = result.history[-1] if result.history else {}
    return {
        "resumed_from": result.resumed_from,
        **{k: v for k, v in last.items() if k.startswith("val_")},
    }
