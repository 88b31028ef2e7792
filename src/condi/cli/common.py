"""Arguments shared by the stage commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from condi.config import load_params


def add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params value (dotted key, YAML value), e.g. --set condi.lam=0.5",
    )


def add_dataset(p: argparse.ArgumentParser, index: bool = True, cache: bool = True) -> None:
    p.add_argument("--dataset", required=True, help="dataset name (a key of params.yaml datasets)")
    p.add_argument("--fold", type=int, default=1, help="official split / fold (default 1)")
    if index:
        p.add_argument(
            "--index", required=True, type=Path, help="clip index parquet (condi data index)"
        )
    if cache:
        p.add_argument(
            "--cache", required=True, type=Path, help="clip cache .npy (condi data cache)"
        )


def params_of(args: argparse.Namespace) -> dict:
    params = load_params(args.params, overrides=getattr(args, "overrides", None))
    if getattr(args, "dataset", None) is not None and args.dataset not in params["datasets"]:
        raise SystemExit(f"condi: error: {args.params}: datasets.{args.dataset}: no such dataset")
    return params


def tags(args: argparse.Namespace, **extra) -> dict:
    out = {
        k: getattr(args, k)
        for k in ("fold", "teacher", "student", "method")
        if getattr(args, k, None) is not None
    }
    out.update(extra)
    return out
