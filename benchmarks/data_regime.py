"""Does the synthetic benchmark put a teacher in the regime docs/method.md, section 9 asks for?

    PYTHONPATH=src python benchmarks/data_regime.py [--root DIR] [--epochs N] [--params params.yaml]

Generates the default preset (unless ``--root`` names one with a ``manifest.parquet``),
indexes and caches it, trains the pipeline's teacher from ``params.yaml`` (plain SGD with the
teacher's schedule, a stand-alone loop, not ``condi train``) and reports on the test clips:

* per clip kind: the teacher's accuracy, how often it predicts the video's distractor class,
  and its mean max-softmax (is it *confidently* wrong?);
* per video: top-1 of dense averaging (softmax mean over all clips), of averaging only the
  clean clips, of one random clip (expectation), and of the oracle clip (highest p(y)).

The regime is there when distractor clips are predicted as the distractor class at about the
confidence of clean clips, and clean-only averaging clearly beats dense averaging.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from condi.config import load_params
from condi.data.clips import build_clip_cache
from condi.data.dataset import ClipDataset, make_loader
from condi.data.index import build_index
from condi.data.synthetic import generate
from condi.models import build_model


def train_teacher(
    params: dict, cache: Path, df: pd.DataFrame, num_classes: int, epochs: int, seed: int
):
    torch.manual_seed(seed)
    spec = next(iter(params["teachers"].values()))
    opt_cfg = params["training"]["teacher"]
    d = params["data"]
    model = build_model(spec["arch"], num_classes, **spec.get("kwargs", {}))
    rows = np.flatnonzero(df["split"].isin(["train", "val"]).to_numpy())
    ds = ClipDataset(
        cache, rows, df["label"].to_numpy()[rows], d["crop_size"], True, d["mean"], d["std"]
    )
    loader = make_loader(ds, opt_cfg["batch_size"], shuffle=True, seed=seed)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=opt_cfg["lr"],
        momentum=opt_cfg["momentum"],
        weight_decay=opt_cfg["weight_decay"],
    )
    milestones = [m for m in opt_cfg.get("lr_milestones", []) if m < epochs]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=opt_cfg.get("lr_step", 0.1))
    for epoch in range(epochs):
        model.train()
        t, total, correct = time.perf_counter(), 0.0, 0
        for x, y, _ in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
        sched.step()
        print(
            f"  epoch {epoch + 1}: loss {total / len(ds):.3f} train clip acc {correct / len(ds):.3f} ({time.perf_counter() - t:.0f} s)"
        )
    return model


@torch.no_grad()
def test_probs(model, params: dict, cache: Path, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    d = params["data"]
    rows = np.flatnonzero((df["split"] == "test").to_numpy())
    ds = ClipDataset(
        cache, rows, df["label"].to_numpy()[rows], d["crop_size"], False, d["mean"], d["std"]
    )
    model.eval()
    probs = [F.softmax(model(x), dim=1) for x, _, _ in make_loader(ds, 64, shuffle=False, seed=0)]
    return rows, torch.cat(probs).numpy()


def report(df: pd.DataFrame, manifest: pd.DataFrame, rows: np.ndarray, probs: np.ndarray) -> None:
    clips = df.iloc[rows][["video", "clip_index", "label"]].reset_index(drop=True)
    clips = clips.merge(
        manifest[["video", "clip_index", "kind", "distractor_class"]], on=["video", "clip_index"]
    )
    video_distractor = (
        manifest[manifest["distractor_class"] >= 0].groupby("video")["distractor_class"].first()
    )
    clips["pred"] = probs.argmax(1)
    clips["conf"] = probs.max(1)
    clips["p_true"] = probs[np.arange(len(probs)), clips["label"]]
    clips["correct"] = clips["pred"] == clips["label"]
    clips["to_distractor"] = clips["pred"] == clips["video"].map(video_distractor).fillna(
        -1
    ).astype(int)
    print("\nper clip kind (test):")
    per_kind = clips.groupby("kind").agg(
        clips=("correct", "size"),
        accuracy=("correct", "mean"),
        to_distractor_class=("to_distractor", "mean"),
        max_softmax=("conf", "mean"),
    )
    print(per_kind.round(3).to_string())
    clean = clips[clips["kind"] == "clean"]
    print(
        "\nclean-clip accuracy per class:",
        clean.groupby("label")["correct"].mean().round(2).to_dict(),
    )
    confusion = pd.crosstab(clean["label"], clean["pred"])
    print(confusion.to_string())
    videos = []
    for _, g in clips.groupby("video"):
        p = probs[g.index]
        y = int(g["label"].iloc[0])
        clean = g["kind"].to_numpy() == "clean"
        videos.append(
            {
                "dense": p.mean(0).argmax() == y,
                "clean_only": p[clean].mean(0).argmax() == y,
                "random_1": g["correct"].mean(),
                "oracle_1": p[g["p_true"].to_numpy().argmax()].argmax() == y,
                "distractor_share": (g["kind"] == "distractor").mean(),
            }
        )
    v = pd.DataFrame(videos)
    print(f"\nvideo top-1 over {len(v)} test videos (percent):")
    for col in ("random_1", "dense", "clean_only", "oracle_1"):
        print(f"  {col:<11} {100 * v[col].mean():5.1f}")
    hi = v["distractor_share"] >= 0.3
    print(
        f"  dense on videos with >= 30% distractor clips ({hi.sum()}): {100 * v.loc[hi, 'dense'].mean():.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, help="a generated synthetic dataset (default: generate one)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=None, help="default: training.teacher.epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="generator override"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "synthetic"
            t = time.perf_counter()
            overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
            generate(root, preset="default", seed=args.seed, **overrides)
            print(f"generated the default preset in {time.perf_counter() - t:.1f} s")
        df, _ = build_index(
            "ucf101", root, 1, clip_len=params["data"]["clip_len"], val_fraction=0.0
        )
        cache = build_clip_cache(
            df,
            root,
            Path(tmp) / "clips.npy",
            params["data"]["clip_len"],
            params["data"]["short_side"],
            progress=False,
        )
        num_classes = df.attrs["condi"]["num_classes"]
        epochs = args.epochs or params["training"]["teacher"]["epochs"]
        print(
            f"{df['video'].nunique()} videos, {len(df)} clips; training the teacher for {epochs} epochs"
        )
        model = train_teacher(params, cache, df, num_classes, epochs, args.seed)
        rows, probs = test_probs(model, params, cache, df)
        report(df, pd.read_parquet(root / "manifest.parquet"), rows, probs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
