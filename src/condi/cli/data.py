"""``condi data ...``: generate the synthetic benchmark, index a dataset, cache its clips.

Further ``data`` subcommands (e.g. downloads) belong in their own modules: give them a
``register(data_subparsers)`` and call it at the end of :func:`register` below.
"""

from __future__ import annotations

import argparse
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SYNTH_HELP = textwrap.dedent(
    """\
    Generate the embedded default dataset: real MPEG-4/AVI videos in the UCF-101 layout (one
    fold), so that they take the same reader, index and decoder as UCF-101.

    Each video shows a bright blob doing one of C mirror-symmetric motions (move sideways, up,
    down, circle, zig-zag, pulse, shake, bob, ...; mirror-symmetric because training flips
    clips) over a mildly varying background; size, speed and length vary per video (N = 3..30
    clips of 16 frames by default). A per-video share of the clips (10-90%) is ambiguous,
    visibly:
      distractor  a second, full-contrast blob performs another class's motion over a faint
                  true actor; the other class is fixed per video
      occlusion   an opaque block covers most of the actor's path
      blur        heavy blur and noise
      static      no motion: a frozen frame
    Why: SPEC section 9. Dense averaging only suffers, and clip selection can only help, when
    the teacher is confidently wrong on some clips in a consistent direction (the distractor
    kind), on enough clips per video, and the ambiguity is visible in the clip so that a
    student can learn to spot it. manifest.parquet records each clip's kind.
    This benchmark can show whether a student learns to spot visibly ambiguous clips; it says
    nothing about accuracy on real videos.
    """
)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (value in JSON), got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


def cmd_synth(args: argparse.Namespace) -> int:
    from condi.data.synthetic import generate

    manifest = generate(args.out, preset=args.preset, seed=args.seed, **_parse_sets(args.set))
    print(manifest)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from condi.data.index import build_index, write_index

    df, skipped = build_index(
        args.kind,
        args.root,
        args.fold,
        clip_len=args.clip_len,
        val_fraction=args.val_fraction,
        seed=args.seed,
        workers=args.workers,
        count=args.count,
    )
    write_index(df, args.out, df.attrs["condi"], skipped=skipped)
    print(args.out)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from condi.data.clips import build_clip_cache
    from condi.data.index import read_index

    df, meta = read_index(args.index)
    root = args.root if args.root is not None else Path(meta["root"])
    build_clip_cache(
        df,
        root,
        args.out,
        meta["clip_len"],
        args.short_side,
        workers=args.workers,
        thread_type=args.thread_type,
    )
    print(args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the ``data`` command group; returns its subparsers for other modules to extend."""
    data = subparsers.add_parser("data", help="datasets: synthesize, index, cache clips")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser(
        "synth",
        help="generate the synthetic benchmark (UCF-101 layout)",
        description=SYNTH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (the dataset root)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="default", help="default | tiny")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a generator parameter, VALUE in JSON (e.g. num_classes=6, "
        "ambiguous_share=[0.3,0.8], kind_probs='{\"distractor\":1}'); see condi.data.synthetic.SynthConfig",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("index", help="probe a dataset's videos and write its clip index (parquet)")
    p.add_argument(
        "--kind", required=True, help="dataset reader: ucf101 | kinetics | ssv2 | folder"
    )
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--fold", type=int, default=1)
    p.add_argument(
        "--out", type=Path, required=True, help="INDEX.parquet; skipped_videos.csv goes beside it"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of training videos held out (per class)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    p.add_argument("--clip-len", type=int, default=16, help="L: frames per clip")
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

    p = sub.add_parser("cache", help="decode every indexed clip once into a uint8 .npy memmap")
    p.add_argument("--index", type=Path, required=True)
    p.add_argument(
        "--root", type=Path, default=None, help="dataset root (default: the one in the index)"
    )
    p.add_argument("--out", type=Path, required=True, help="CACHE.npy")
    p.add_argument(
        "--short-side",
        type=int,
        required=True,
        help="S: frames become S x S (resize short side, center crop)",
    )
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

    # download, ssv2 and table1 (real datasets and Table I)
    from condi.cli.data_sources import register_data_commands

    register_data_commands(sub)
    return sub
