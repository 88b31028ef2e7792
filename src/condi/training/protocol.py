"""The training protocol (docs/method.md, section 2.5): pre-training on a source dataset and
fine-tuning on the target (``protocol: transfer``, the paper's IV-A for UCF-101 and SSv2), or
training on the target only (``protocol: scratch``).

Under ``transfer``:

* :func:`pretrain` trains teacher and student from scratch on the source dataset
  (``pretrain.dataset``, Kinetics' role) with cross-entropy on its labels and the recipe
  ``pretrain.<role>`` (α = 0.1 for the student, the paper's from-scratch value), keeping the
  best epoch by validation video accuracy. The student is pre-trained as a plain classifier (its
  backbone): the paper's students come pre-trained on Kinetics as classifiers, and one
  pre-trained student serves every method alike.
* On the target, teacher and every student start from those weights except the classifier,
  which is re-initialised (the class count changes; :func:`condi.models.checkpoint.load_backbone`)
  and the student's confidence head, which is new; they train with :func:`recipe`:
  ``training.<role>`` with ``training.finetune.<role>``'s keys replacing it (α = 0.01 for the
  student's classification branch).

Under ``scratch`` nothing is pre-trained and :func:`recipe` is ``training.<role>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from condi.data.indexed import IndexedData
from condi.metrics import softmax_np, video_accuracy
from condi.training.schedule import teacher_lr, teacher_optimizer
from condi.training.trainer import ROLES, train

log = logging.getLogger(__name__)

PROTOCOLS = ("transfer", "scratch")


def recipe(params: dict[str, Any], role: str) -> dict[str, Any]:
    """The optimisation recipe of ``role`` (teacher | student) on the target: ``training.<role>``,
    with ``training.finetune.<role>`` applied under ``protocol: transfer``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    cfg = dict(params["training"][role])
    if params.get("protocol", "scratch") == "transfer":
        finetune = (params["training"].get("finetune") or {}).get(role) or {}
        cfg.update(finetune)
    return cfg


def init_weights(params: dict[str, Any], pretrained: str | Path | None, what: str) -> Path | None:
    """The pre-trained checkpoint a target model starts from: required under ``transfer``,
    refused under ``scratch`` (a clear error before any training)."""
    protocol = params.get("protocol", "scratch")
    if protocol == "transfer" and pretrained is None:
        raise ValueError(
            f"{what}: protocol transfer needs the pre-trained checkpoint (--pretrained, the "
            "pretrain stage's output)"
        )
    if protocol == "scratch" and pretrained is not None:
        raise ValueError(
            f"{what}: protocol scratch trains from scratch; got --pretrained {pretrained}"
        )
    if pretrained is not None and not Path(pretrained).is_file():
        raise FileNotFoundError(f"{what}: pre-trained checkpoint {pretrained} not found")
    return Path(pretrained) if pretrained is not None else None


def val_metrics(
    data: IndexedData, out: dict[str, np.ndarray], rows: np.ndarray
) -> dict[str, float]:
    """Video and clip accuracy (percent) of a classifier on the val clips ``rows``."""
    probs = softmax_np(out["logits"])
    return {
        "val_video_acc": video_accuracy(probs, data.video_ids(rows), data.labels(rows)),
        "val_clip_acc": float((probs.argmax(1) == data.labels(rows)).mean() * 100.0),
    }


def pretrain(
    params: dict[str, Any],
    role: str,
    name: str,
    data: IndexedData,
    out_path: str | Path,
    tracker=None,
) -> dict[str, Any]:
    """Pre-train model ``name`` of ``params['<role>s']`` from scratch on the source dataset
    ``data`` with cross-entropy and the recipe ``pretrain.<role>`` (SGD with the step schedule
    ``lr · lr_step^(milestones passed)``); keeps the best epoch by validation video accuracy
    (the last without a val split) and writes it with role ``pretrained``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    cfg = params["pretrain"][role]
    train_rows = data.rows("train")
    result = train(
        params,
        role,
        name,
        data,
        out_path,
        step=lambda out, labels, _rows: (F.cross_entropy(out, labels), {}),
        optimizer=lambda model: teacher_optimizer(model, cfg),
        lrs=lambda epoch: teacher_lr(epoch, cfg),
        validate=lambda out, rows: val_metrics(data, out, rows),
        select="val_video_acc" if len(data.rows("val")) else None,
        resume_key=("pretrain", role, name, len(train_rows)),
        desc=f"pretrain {role} {name}",
        train_rows=train_rows,
        tracker=tracker,
        cfg=cfg,
        pretraining=True,
    )
    if result is None:  # another process of a torchrun job: rank 0 wrote the checkpoint
        return {}
    return {
        "best_epoch": result.best_epoch,
        "best_val_video_acc": result.best_metric,
        "resumed_from": result.resumed_from,
        "epochs": cfg["epochs"],
    }
