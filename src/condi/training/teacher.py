"""Teacher training (SPEC section 2 conventions): SGD, step schedule, best-on-val checkpoint by
video-level validation accuracy; or adoption of a given checkpoint (post-training use)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from condi.data.indexed import IndexedData
from condi.inference import forward_rows
from condi.metrics import softmax_np, video_accuracy
from condi.models import build_model, load_pretrained
from condi.models.checkpoint import load_model, save_model
from condi.runtime import setup
from condi.training.common import run_epoch, save_trained, train_loader
from condi.training.distributed import device_for, init_distributed, wrap
from condi.training.loop import fit, params_hash, state_path_for
from condi.training.schedule import set_lrs, teacher_lr, teacher_optimizer

log = logging.getLogger(__name__)


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
    spec = params["teachers"][teacher]
    cfg = params["training"]["teacher"]
    device = setup(params["seed"], params["threads"], params["device"])
    dist = init_distributed(device)
    device = device_for(device, dist)
    model = build_model(spec["arch"], data.num_classes, **spec.get("kwargs", {}))
    train_rows = data.rows("train") if train_rows is None else np.asarray(train_rows)
    val_rows = data.rows("val")

    def evaluate(_epoch: int = 0) -> dict[str, float]:
        if len(val_rows) == 0:
            return {}
        out = forward_rows(
            model,
            data.cache_path,
            val_rows,
            data.labels(val_rows),
            params["data"],
            params["evaluation"]["batch_size"],
            device,
        )
        probs = softmax_np(out["logits"])
        return {
            "val_video_acc": video_accuracy(probs, data.video_ids(val_rows), data.labels(val_rows)),
            "val_clip_acc": float((probs.argmax(1) == data.labels(val_rows)).mean() * 100.0),
        }

    if spec.get("checkpoint"):
        load_pretrained(model, spec["checkpoint"], arch=spec["arch"])
        model.to(device)
        metrics = evaluate()
        save_model(
            out_path,
            model,
            role="teacher",
            arch=spec["arch"],
            kwargs=spec.get("kwargs", {}),
            num_classes=data.num_classes,
            class_names=list(data.meta.get("class_names", [])),
            source=str(spec["checkpoint"]),
            val=metrics,
        )
        if tracker:
            tracker.log_metrics(metrics)
        return {"adopted": spec["checkpoint"], **metrics}

    if spec.get("pretrained"):
        load_pretrained(model, spec["pretrained"], arch=spec["arch"], strict=False)
    model.to(device)
    trained = wrap(model, dist, device)  # DDP when launched with torchrun
    optimizer = teacher_optimizer(model, cfg)

    def train_one_epoch(epoch: int) -> dict[str, float]:
        loader = train_loader(
            data,
            train_rows,
            params["data"],
            cfg["batch_size"],
            params["seed"],
            epoch,
            dist=dist,
            accumulate=cfg["accumulate"],
        )

        def step(out, labels, _rows):
            return F.cross_entropy(out, labels), {}

        return run_epoch(
            trained,
            loader,
            optimizer,
            step,
            device,
            accumulate=cfg["accumulate"],
            desc=f"teacher {teacher} e{epoch + 1}",
        )

    result = fit(
        model=model,
        optimizer=optimizer,
        epochs=cfg["epochs"],
        seed=params["seed"],
        state_path=state_path_for(out_path),
        cfg_hash=params_hash(params, teacher, len(train_rows)),
        set_epoch_lr=lambda e: set_lrs(optimizer, teacher_lr(e, cfg)),
        train_one_epoch=train_one_epoch,
        evaluate=evaluate,
        select="val_video_acc" if len(val_rows) else None,
        on_epoch_end=(lambda e, m: tracker.log_metrics(m, step=e))
        if tracker and dist.is_main
        else None,
        is_main=dist.is_main,
    )
    if not dist.is_main:
        return {"rank": dist.rank}
    save_trained(out_path, result, spec, data, "teacher", best_epoch=result.best_epoch)
    return {
        "best_epoch": result.best_epoch,
        "best_val_video_acc": result.best_metric,
        "resumed_from": result.resumed_from,
        "epochs": cfg["epochs"],
    }


def load_teacher(path: str | Path):
    model, ckpt = load_model(path, role="teacher")
    return model, ckpt
