"""Evaluation speed: does ConDi's saving in multiply-adds turn into wall-clock time, and how
long does the whole evaluation grid take on stored scores?

1. On the same test videos, end to end on decoded clips (``condi.evaluation.timing``, decoding
   excluded): the mean time per video of ``condi_sr`` at K (default 5) and of dense (the teacher
   over all clips), their ratio, the ratio of their multiply-adds per video, and
   ``time ratio / MAC ratio`` (target <= 1.15: the time saved should follow the MACs saved).
   Dense and ConDi-SR run interleaved per video in a seeded order, ``--repeats`` times each
   (median). With ``--layouts default channels_last`` (the default) both memory layouts are
   measured. The per-clip forward time of each model at the videos' mean N explains the gap:
   a small student can be slower per multiply-add than the teacher.
2. The full evaluation grid (``condi.evaluation.run.evaluate`` for the baselines and for every
   student) on the stored per-clip scores: seconds, best of ``--grid-repeats``.

Runs on the outputs of the default pipeline (paths as arguments), e.g.::

    python benchmarks/eval_speed.py --params params.yaml --dataset synthetic --fold 1 \\
        --index data/index/synthetic_fold1.parquet --cache data/cache/synthetic_fold1.npy \\
        --teacher-ckpt models/synthetic/fold1/teacher_resnext14.pt \\
        --student-ckpt models/synthetic/fold1/student_resnext14_shufflenet_condi_sr.pt \\
        --scores-dir results/scores/synthetic/fold1 --teacher resnext14 --student shufflenet
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--index", required=True, type=Path)
    p.add_argument("--cache", required=True, type=Path)
    p.add_argument("--teacher-ckpt", required=True, type=Path)
    p.add_argument("--student-ckpt", required=True, type=Path, help="the condi_sr student")
    p.add_argument("--scores-dir", type=Path, default=None, help="results/scores/<d>/fold<f>")
    p.add_argument("--teacher", default="resnext14", help="teacher name in the score file names")
    p.add_argument("--student", default="shufflenet", help="student name in the score files")
    p.add_argument("--root", type=Path, default=None, help="dataset root (manifest)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="default: params threads")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--layouts",
        nargs="+",
        default=["default", "channels_last"],
        choices=["default", "channels_last"],
    )
    p.add_argument("--grid-repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    return p.parse_args(argv)


def per_clip_ms(model, x: torch.Tensor, channels_last: bool, reps: int = 5) -> float:
    from condi.models import to_channels_last_3d

    if channels_last:
        x = to_channels_last_3d(x)
    with torch.inference_mode():
        model(x)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3 / len(x)


def time_ratio(args, params, data, device) -> list[dict]:
    from condi.data.dataset import ClipDataset
    from condi.evaluation.grid import Videos
    from condi.evaluation.timing import (
        Config,
        VideoRunner,
        clip_macs,
        sample_videos,
        subset,
        summarise,
        time_videos,
    )
    from condi.models.checkpoint import load_model

    rows = data.rows("test")
    test = data.index.iloc[rows].reset_index(drop=True)
    videos = Videos.from_index(test)
    picks = sample_videos(videos, args.max_videos, params["seed"])
    sub, positions = subset(videos, picks)
    dcfg = params["data"]
    ds = ClipDataset(
        data.cache_path,
        rows[positions],
        test["label"].to_numpy()[positions],
        dcfg["crop_size"],
        False,
        dcfg["mean"],
        dcfg["std"],
    )
    configs = [Config("dense"), Config("condi_sr", args.k)]
    n_mean = float(np.mean([s.stop - s.start for s in sub.slices]))
    out = []
    for layout in args.layouts:
        teacher, _ = load_model(args.teacher_ckpt, role="teacher")
        student, _ = load_model(args.student_ckpt, role="student")
        cl = layout == "channels_last"
        runner = VideoRunner(
            ds,
            teacher.to(device),
            {"condi_sr": student.to(device)},
            device,
            params["evaluation"]["batch_size"],
            channels_last=cl,
        )
        t_macs, s_macs = clip_macs(teacher, student, ds.clip_len, ds.crop_size)
        t0 = time.perf_counter()
        per_video = time_videos(runner, sub, configs, args.warmup, args.repeats, params["seed"])
        wall = time.perf_counter() - t0
        summ = summarise(per_video, t_macs, s_macs, configs).set_index("method")
        d, c = summ.loc["dense"], summ.loc["condi_sr"]
        x = torch.stack([ds[i][0] for i in range(min(int(round(n_mean)), len(ds)))]).to(device)
        t_ms = per_clip_ms(runner.teacher, x, cl)
        s_ms = per_clip_ms(runner.students["condi_sr"], x, cl)
        tr = c["time_s"] / d["time_s"]
        fr = c["gmacs_per_video"] / d["gmacs_per_video"]
        out.append(
            {
                "layout": layout,
                "n_videos": int(len(sub.slices)),
                "mean_clips_per_video": n_mean,
                "K": args.k,
                "dense_time_s": float(d["time_s"]),
                "condi_sr_time_s": float(c["time_s"]),
                "dense_gmacs": float(d["gmacs_per_video"]),
                "condi_sr_gmacs": float(c["gmacs_per_video"]),
                "dense_top1": float(d["top1"]),
                "condi_sr_top1": float(c["top1"]),
                "time_ratio": float(tr),
                "mac_ratio": float(fr),
                "time_ratio_over_mac_ratio": float(tr / fr),
                "teacher_ms_per_clip": t_ms,
                "student_ms_per_clip": s_ms,
                "teacher_gmacs_per_clip": t_macs / 1e9,
                "student_gmacs_per_clip": s_macs / 1e9,
                "student_time_per_mac_vs_teacher": (s_ms / max(s_macs, 1))
                / (t_ms / max(t_macs, 1)),
                "wall_s": wall,
            }
        )
    return out


def grid_time(args, params) -> dict:
    from condi.data.index import read_index
    from condi.evaluation.run import evaluate, load_manifest, load_scores

    d = args.scores_dir
    index, _ = read_index(args.index)
    root = args.root or Path(params["datasets"][args.dataset]["root"])
    manifest = load_manifest(root)
    teacher = load_scores(d / f"teacher_{args.teacher}.npz")
    students = {}
    for m in params["methods"]:
        p = d / f"student_{args.teacher}_{args.student}_{m}.npz"
        if p.is_file():
            students[m] = load_scores(p)
    times, n_rows = [], 0
    for _ in range(max(1, args.grid_repeats)):
        t0 = time.perf_counter()
        base = evaluate(params, index, teacher, None, manifest)
        stud = evaluate(params, index, teacher, students, manifest) if students else base[:0]
        times.append(time.perf_counter() - t0)
        n_rows = len(base) + len(stud)
    return {
        "grid_s": min(times),
        "grid_s_all": times,
        "grid_rows": n_rows,
        "students": sorted(students),
        "test_clips": int(len(teacher["rows"])),
        "manifest": manifest is not None,
    }


def main(argv: list[str] | None = None) -> int:
    from condi.config import load_params
    from condi.data.indexed import load_data
    from condi.evaluation.timing import device_name
    from condi.runtime import setup

    args = parse(argv)
    params = load_params(args.params)
    device = setup(params["seed"], args.threads or params["threads"], args.device)
    data = load_data(args.index, args.cache)
    print(
        f"device {device} ({device_name(device)}), {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__}; decoding excluded"
    )
    result: dict = {"device": device.type, "threads": torch.get_num_threads()}
    result["ratio"] = time_ratio(args, params, data, device)
    for r in result["ratio"]:
        print(
            f"[{r['layout']}] {r['n_videos']} videos, {r['mean_clips_per_video']:.1f} clips/video, "
            f"K={r['K']}: condi_sr {r['condi_sr_time_s'] * 1e3:.2f} ms ({r['condi_sr_gmacs']:.4f} "
            f"GMACs, top-1 {r['condi_sr_top1']:.2f}) vs dense {r['dense_time_s'] * 1e3:.2f} ms "
            f"({r['dense_gmacs']:.4f} GMACs, top-1 {r['dense_top1']:.2f})"
        )
        verdict = "ok" if r["time_ratio_over_mac_ratio"] <= 1.15 else "ABOVE target 1.15"
        print(
            f"[{r['layout']}] time ratio {r['time_ratio']:.3f}, MAC ratio {r['mac_ratio']:.3f}, "
            f"time ratio / MAC ratio {r['time_ratio_over_mac_ratio']:.3f} ({verdict})"
        )
        print(
            f"[{r['layout']}] per clip at batch {round(r['mean_clips_per_video'])}: teacher "
            f"{r['teacher_ms_per_clip']:.2f} ms ({r['teacher_gmacs_per_clip']:.4f} GMACs), student "
            f"{r['student_ms_per_clip']:.2f} ms ({r['student_gmacs_per_clip']:.4f} GMACs): the "
            f"student takes {r['student_time_per_mac_vs_teacher']:.2f}x the teacher's time per "
            f"multiply-add"
        )
    if args.scores_dir:
        g = grid_time(args, params)
        result["grid"] = g
        print(
            f"evaluation grid (baselines + {len(g['students'])} students: {', '.join(g['students'])}; "
            f"{g['test_clips']} test clips, {g['grid_rows']} rows): {g['grid_s']:.3f} s "
            f"(best of {len(g['grid_s_all'])})"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
