"""``condi data ...``: generate the synthetic benchmark, index a dataset, cache its clips or
resize its videos.

Further ``data`` subcommands (e.g. downloads) belong in their own modules: give them a
``register(data_subparsers)`` and call it at the end of :func:`register` below.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path

log = logging.getLogger(__name__)

SYNTH_HELP = textwrap.dedent(
    """\
    Generate the embedded default dataset: real MPEG-4/AVI videos in the UCF-101 layout (one
    fold), so that they take the same reader, index and decoder as UCF-101.

    Each video shows a bright blob doing one of C motions (move left, move right, up, down,
    circle, zig-zag, pulse, shake, ...; move left/right are a mirror pair, whose labels the
    training flip swaps (data.flip: swap), the others face either way) over a mildly varying
    background; size, speed and length vary per video (preset default: N = 3..30 clips of 16
    frames for test videos, 3..12 for training videos; 50 training and 125 test videos per
    class). Videos come in groups of 2-4 near-duplicates (v_<Class>_gGG_cCC, as UCF-101), never
    split. A per-video share of the clips (10-90%) is ambiguous, visibly:
      distractor  a second, full-contrast blob performs another class's motion over a faint
                  true actor; the other class is fixed per video
      occlusion   an opaque block covers most of the actor's path
      blur        heavy blur and noise
      static      no motion: a frozen frame
    Why: docs/method.md, section 9. Dense averaging only suffers, and clip selection can only help, when
    the teacher is confidently wrong on some clips in a consistent direction (the distractor
    kind), on enough clips per video, and the ambiguity is visible in the clip so that a
    student can learn to spot it. manifest.parquet records each clip's kind.
    Preset source (the transfer protocol's source dataset, docs/method.md, section 2.5): all 11
    motions, 50 short training videos per class, one video per group, 0-50% ambiguous clips
    and the colour palette (tinted backgrounds, saturated mid-tone actors), disjoint from the
    default's grey one.
    This benchmark can show whether a student learns to spot visibly ambiguous clips; it says
    nothing about accuracy on real videos.
    """
)


def cmd_synth(args: argparse.Namespace) -> int:
    from condi.cli.common import stage_context
    from condi.data.synthetic import generate

    ctx = stage_context(args)
    ds = ctx.params["datasets"][args.dataset]
    synth = dict(ds["synth"])
    overrides = synth.get("overrides") or {}
    with ctx.run() as run:
        manifest = generate(
            ds["root"],
            preset=synth.get("preset", "default"),
            seed=synth.get("seed", 0),
            **overrides,
        )
        run.log_artifact(manifest)
    print(manifest)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from condi.cli.common import stage_context
    from condi.data.index import build_index, write_index

    ctx = stage_context(args)
    p, ds = ctx.params, ctx.params["datasets"][args.dataset]
    with ctx.run() as run:
        df, skipped = build_index(
            ds["kind"],
            Path(ds["root"]),
            args.fold,
            clip_len=p["data"]["clip_len"],
            val_fraction=p["data"]["val_fraction"],
            seed=p["seed"],
            workers=args.workers,
            count=args.count,
            group_pattern=ds.get("group_pattern"),
        )
        meta = {**df.attrs["condi"], "dataset": args.dataset}
        write_index(df, args.out, meta, skipped=skipped)
        run.log_metrics(
            {"clips": len(df), "videos": df["video"].nunique(), "skipped_videos": len(skipped)}
        )
    print(args.out)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from condi.cli.common import stage_context
    from condi.data.clips import build_clip_cache
    from condi.data.index import read_index

    ctx = stage_context(args)
    df, meta = read_index(args.index)
    with ctx.run() as run:
        build_clip_cache(
            df,
            Path(ctx.params["datasets"][args.dataset]["root"]),
            args.out,
            meta["clip_len"],
            ctx.params["data"]["short_side"],
            workers=args.workers,
            thread_type=args.thread_type,
        )
        run.log_metrics({"clips": len(df), "cache_mb": Path(args.out).stat().st_size / 2**20})
    print(args.out)
    return 0


def cmd_resize(args: argparse.Namespace) -> int:
    from condi.cli.common import stage_context
    from condi.data.index import read_index
    from condi.data.resized import ResizeSettings, build_resized_store

    ctx = stage_context(args)
    indexes = [read_index(path)[0] for path in args.index]
    clip_lens = {int(df.attrs["condi"]["clip_len"]) for df in indexes}
    if len(clip_lens) != 1:
        raise ValueError(f"the indexes have different clip lengths {sorted(clip_lens)}")
    settings = ResizeSettings(
        short_side=ctx.params["data"]["short_side"],
        clip_len=clip_lens.pop(),
        crf=ctx.params["resize"]["crf"],
        preset=ctx.params["resize"]["preset"],
    )
    with ctx.run() as run:
        build_resized_store(
            indexes,
            Path(ctx.params["datasets"][args.dataset]["root"]),
            args.out,
            settings,
            workers=args.workers,
        )
        run.log_metrics({"videos": float(len({v for df in indexes for v in df["video"]}))})
    print(args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the ``data`` command group; returns its subparsers for other modules to extend."""
    data = subparsers.add_parser(
        "data", help="datasets: synthesize, index, cache clips, resize videos"
    )
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    from condi.cli.common import add_stage

    p = sub.add_parser(
        "synth",
        help="generate the synthetic benchmark (UCF-101 layout) of a params.yaml dataset",
        description=SYNTH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stage(p, "data synth")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "index",
        help="probe a dataset's videos and write its clip index (parquet)",
        description="Reader (datasets.<d>.kind), root, data.clip_len, data.val_fraction and "
        "seed come from the params file.",
    )
    add_stage(p, "data index")
    p.add_argument(
        "--out", type=Path, required=True, help="INDEX.parquet; skipped_videos.csv goes beside it"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="probing threads (default: CPUs, at most 8)"
    )
    p.add_argument(
        "--count",
        choices=["auto", "decode"],
        default="auto",
        help="frame counts: container count checked against the decoded tail (auto) or full decode",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "cache",
        help="decode every indexed clip once into a uint8 .npy memmap",
        description="Root (datasets.<d>.root) and data.short_side come from the params file.",
    )
    add_stage(p, "data cache")
    p.add_argument("--index", type=Path, required=True, help="clip index (condi data index)")
    p.add_argument("--out", type=Path, required=True, help="CACHE.npy")
    p.add_argument(
        "--workers", type=int, default=None, help="videos decoded concurrently (default 2)"
    )
    p.add_argument(
        "--thread-type",
        choices=["AUTO", "NONE", "FRAME", "SLICE"],
        default=None,
        help="decoder threading",
    )
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser(
        "resize",
        help="re-encode every indexed video once at the working size (storage: resized)",
        description="For datasets with datasets.<d>.storage: resized (condi.data.resized): "
        "every video of the given indexes (one dataset's folds) decoded as the clip cache "
        "would hold it (data.short_side, center crop) and written as H.264 (resize.crf, "
        "resize.preset) with a keyframe at every clip start, into one folder. Training and "
        "scoring then decode each clip in DataLoader workers. A killed run resumes.",
    )
    add_stage(p, "data resize")
    p.add_argument(
        "--index", type=Path, nargs="+", required=True, help="the dataset's clip indexes"
    )
    p.add_argument("--out", type=Path, required=True, help="the store's folder")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="videos re-encoded at once, one process each (default: CPUs, at most 8)",
    )
    p.set_defaults(func=cmd_resize)

    # download, ssv2 and table1 (real datasets and Table I)
    from condi.cli.data_sources import register_data_commands

    register_data_commands(sub)
    return sub
