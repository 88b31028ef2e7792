"""Teacher training (docs/method.md, section 2 conventions): SGD, step schedule, best-on-val checkpoint by
video-level validation accuracy; or adoption of a given checkpoint (post-training use)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed
import torch.nn.functional as F

from condi.data.indexed import IndexedData
from condi.models import load_pretrained
from condi.models.checkpoint import save_model, training_config
from condi.training.protocol import init_weights, recipe, val_metrics
from condi.training.schedule import teacher_lr, teacher_optimizer
from condi.training.trainer import prepare, train, validation

log = logging.getLogger(__name__)

__all__ = ["adopt_teacher", "train_teacher", "val_metrics"]


def train_teacher(
    params: dict[str, Any],
    teacher: str,
    data: IndexedData,
    out_path: str | Path,
    tracker=None,
    train_rows: np.ndarray | None = None,
    pretrained: str | Path | None = None,
) -> dict[str, Any]:
    """Train teacher ``teacher`` (a key of ``params['teachers']``) on ``data``'s train split (or
    ``train_rows``) and write its best-on-val weights to ``out_path``. Under ``protocol:
    transfer`` it is fine-tuned from ``pretrained`` (the pretrain stage's checkpoint; its
    classifier re-initialised) with :func:`condi.training.protocol.recipe`. With
    ``checkpoint:`` set the given weights are adopted instead (strict load) and only evaluated
    on val. Returns a summary."""
    if params["teachers"][teacher].get("checkpoint"):
        return adopt_teacher(params, teacher, data, out_path, tracker)
    init = init_weights(params, pretrained, f"teacher {teacher}")
    cfg = recipe(params, "teacher")
    train_rows = data.rows("train") if train_rows is None else np.asarray(train_rows)
    result = train(
        params,
        "teacher",
        teacher,
        data,
        out_path,
        step=lambda out, labels, _rows: (F.cross_entropy(out, labels), {}),
        optimizer=lambda model: teacher_optimizer(model, cfg),
        lrs=lambda epoch: teacher_lr(epoch, cfg),
        validate=lambda out, rows: val_metrics(data, out, rows),
        select="val_video_acc" if len(data.rows("val")) else None,
        resume_key=(teacher, len(train_rows), str(init)),
        desc=f"teacher {teacher}",
        train_rows=train_rows,
        tracker=tracker,
        cfg=cfg,
        init_from=init,
    )
    if result is None:  # another process of a torchrun job: rank 0 wrote the checkpoint
        return {"rank": torch.distributed.get_rank()}
    return {
        "best_epoch": result.best_epoch,
        "best_val_video_acc": result.best_metric,
        "resumed_from": result.resumed_from,
        "epochs": cfg["epochs"],
    }


def adopt_teacher(
    params: dict[str, Any], teacher: str, data: IndexedData, out_path: str | Path, tracker=None
) -> dict[str, Any]:
    """Write the weights of the teacher's ``checkpoint:`` (strict load) as its condi
    checkpoint, with their accuracy on val."""
    spec = params["teachers"][teacher]
    job = prepare(params, "teacher", teacher, data.num_classes)
    load_pretrained(job.model, spec["checkpoint"], arch=spec["arch"])
    job.model.to(job.device)
    metrics = validation(
        params, job.model, data, job.device, lambda out, rows: val_metrics(data, out, rows)
    )
    save_model(
        out_path,
        job.model,
        role="teacher",
        arch=spec["arch"],
        kwargs=spec.get("kwargs", {}),
        num_classes=data.num_classes,
        class_names=list(data.meta.get("class_names", [])),
        source=str(spec["checkpoint"]),
        val=metrics,
        config=training_config(params),
    )
    if tracker:
        tracker.log_metrics(metrics)
    return {"adopted": spec["checkpoint"], **metrics}
