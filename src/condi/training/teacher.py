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
from condi.metrics import softmax_np, video_accuracy
from condi.models import load_pretrained
from condi.models.checkpoint import save_model, training_config
from condi.training.schedule import teacher_lr, teacher_optimizer
from condi.training.trainer import prepare, train, validation

log = logging.getLogger(__name__)


def val_metrics(
    data: IndexedData, out: dict[str, np.ndarray], rows: np.ndarray
) -> dict[str, float]:
    """The teacher's video and clip accuracy on the val clips ``rows`` (percent)."""
    probs = softmax_np(out["logits"])
    return {
        "val_video_acc": video_accuracy(probs, data.video_ids(rows), data.labels(rows)),
        "val_clip_acc": float((probs.argmax(1) == data.labels(rows)).mean() * 100.0),
    }


def train_teacher(
    params: dict[str, Any],
    teacher: str,
    data: IndexedData,
    out_path: str | Path,
    tracker=None,
    train_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train teacher ``teacher`` (a key of ``params['teachers']``) on ``data``'s train split (or
    ``train_rows``) and write its best-on-val weights to ``out_path``. With ``checkpoint:`` set
    the given weights are adopted instead (strict load) and only evaluated on val. Returns a
    summary."""
    if params["teachers"][teacher].get("checkpoint"):
        return adopt_teacher(params, teacher, data, out_path, tracker)
    cfg = params["training"]["teacher"]
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
        resume_key=(teacher, len(train_rows)),
        desc=f"teacher {teacher}",
        train_rows=train_rows,
        tracker=tracker,
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
