"""``condi models``: Table II (model complexity) and a one-model summary.

``condi models table2 [--params params.yaml] [--index PATH ...] [--out-csv results/table2.csv
--out-md results/table2.md]`` prints (and writes, when asked) one row per model: the paper's four
backbones at the class counts of its Table II (and the public reference code's MACs beside
its figures), then every configured teacher and student of ``params.yaml`` with each dataset's
class count, at the paper's 1x3x16x112x112 clip (docs/method.md, section 6) and, when it differs, at the
pipeline's own clip (``data.clip_len`` x ``data.crop_size``^2). A dataset's class count is the
``num_classes`` of its clip index metadata (``--index PATH``, named by its dataset), else the
number of distinct labels of that index; without ``--index`` the configured models are left out
(their class count unknown), never guessed.

``condi models summary ARCH --num-classes N [--kwargs JSON] [--input 1,3,16,112,112]`` prints
params, multiply-adds, depth and the output shape of one model.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from condi.cli.common import add_stage, add_table_outputs, stage_context, table_runs

log = logging.getLogger(__name__)

DEFAULT_NUM_CLASSES = 101
INDEX_METADATA_KEY = b"condi"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model complexity (Table II) and summaries")
    s = p.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    t2 = s.add_parser(
        "table2",
        help="Table II: params, multiply-adds and depth per model",
        description="Table II on stdout (and in --out-csv / --out-md when given): the paper's "
        "four reference models, then every teacher and student of the params file at each "
        "dataset's class count, read from its clip index (--index; without one the "
        "configured models are left out, their class count unknown).",
    )
    add_stage(t2, "models table2")
    add_table_outputs(t2, required=False)
    t2.add_argument(
        "--index",
        nargs="*",
        default=[],
        type=Path,
        help="clip indexes (condi data index): each dataset's class count",
    )
    t2.add_argument(
        "--no-paper", action="store_true", help="leave out the paper's four reference models"
    )
    t2.set_defaults(func=cmd_table2)

    sm = s.add_parser("summary", help="params, multiply-adds, depth of one model")
    sm.add_argument("arch", help="a condi.models name, e.g. shufflenetv2, resnext101, tv:r3d_18")
    sm.add_argument("--num-classes", type=int, required=True, help="classes of the output layer")
    sm.add_argument("--kwargs", default="{}", help="constructor keyword arguments as JSON")
    sm.add_argument(
        "--input", default="1,3,16,112,112", help="input shape B,C,T,H,W (default 1,3,16,112,112)"
    )
    sm.add_argument(
        "--as-student",
        action="store_true",
        help="wrap it as a StudentModel (with the confidence head)",
    )
    # its old name: elsewhere --student names a params.yaml student
    sm.add_argument("--student", dest="as_student", action="store_true", help=argparse.SUPPRESS)
    sm.set_defaults(func=cmd_summary)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input: expected B,C,T,H,W integers, got {text!r}") from None
    if len(shape) != 5:
        raise ValueError(f"--input: expected 5 dimensions B,C,T,H,W, got {text!r}")
    return shape


def num_classes_of_index(path: str | Path) -> int:
    """A clip index's class count: metadata ``num_classes``, else its distinct labels."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: index not found")
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(INDEX_METADATA_KEY)
    if raw:
        meta = json.loads(raw)
        if meta.get("num_classes"):
            return int(meta["num_classes"])
        if meta.get("class_names"):
            return len(meta["class_names"])
    if "label" in schema.names:
        labels = pq.read_table(path, columns=["label"]).column("label").to_pylist()
        if labels:
            return len(set(labels))
    raise ValueError(f"{path}: index has no num_classes metadata and no labels")


def configured_rows(params: dict[str, Any], num_classes: dict[str, int]) -> list[dict[str, Any]]:
    """Table II configs for every (dataset, teacher/student) of ``params``."""
    from condi.models.complexity import DEFAULT_INPUT

    data = params.get("data", {})
    pipeline_input = (1, 3, int(data.get("clip_len", 16)), *(2 * [int(data.get("crop_size", 112))]))
    inputs = [DEFAULT_INPUT] + ([pipeline_input] if pipeline_input != DEFAULT_INPUT else [])
    configs = []
    for dataset in params["datasets"]:
        n = num_classes.get(dataset, DEFAULT_NUM_CLASSES)
        for role in ("teachers", "students"):
            for name, spec in params.get(role, {}).items():
                for shape in inputs:
                    configs.append(
                        {
                            "model": f"{role[:-1]} {name} ({dataset})",
                            "arch": spec["arch"],
                            "kwargs": spec.get("kwargs") or {},
                            "num_classes": n,
                            "input": shape,
                        }
                    )
    return configs


def table2_markdown(df) -> str:
    """The paper-shaped Table II: what we measure beside what the paper prints."""
    cols = [
        "model",
        "num_classes",
        "input",
        "params_M",
        "gmacs",
        "depth",
        "paper_params_M",
        "paper_gflops",
        "paper_depth",
        "ref_gmacs",
    ]
    note = (
        "\n\ngmacs = multiply-adds (torch FlopCounterMode total / 2) of one forward pass at "
        "`input`; paper_gflops is the paper's Table II figure as printed (it reproduces with no "
        "public code); ref_gmacs is the public reference code's multiply-adds "
        "(reference/models.md). depth = Conv/Linear layers on the longest path "
        "(R(2+1)D counts each (2+1)D conv as two layers).\n"
    )
    shown = df[cols].astype(object).where(df[cols].notna(), None)
    return shown.to_markdown(index=False, floatfmt=".4g", missingval="") + note


def cmd_table2(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.index import named_indexes
    from condi.io import write_csv, write_text
    from condi.models.complexity import PAPER_CONFIGS, table2_rows

    params = ctx.params
    # the configured models are listed per dataset whose index is given (its class count)
    indexes = named_indexes(args.index, per_fold=False)
    params = {**params, "datasets": dict.fromkeys(indexes)}
    num_classes = {name: num_classes_of_index(path) for name, path in indexes.items()}
    if not indexes:
        log.info("no --index: the configured models are left out (their class counts unknown)")
    configs = ([] if args.no_paper else list(PAPER_CONFIGS)) + configured_rows(params, num_classes)
    df = table2_rows(configs)
    md = table2_markdown(df)
    if args.out_csv:
        write_csv(df, args.out_csv)
    if args.out_md:
        write_text(args.out_md, md)
    artifacts = tuple(a for a in (args.out_csv, args.out_md) if a)
    table_runs(ctx, df, ["model", "num_classes"], artifacts=artifacts)
    print(md)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from condi.models import build_model, build_student
    from condi.models.complexity import count_params, depth, multiply_adds

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--kwargs: not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise ValueError("--kwargs: expected a JSON object")
    shape = _parse_shape(args.input)
    builder = build_student if args.as_student else build_model
    with torch.device("meta"):
        model = builder(args.arch, args.num_classes, **kwargs)
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(shape))
    outs = out if isinstance(out, tuple) else (out,)
    backbone = model.backbone if args.as_student else model
    summary = {
        "arch": args.arch,
        "kwargs": kwargs,
        "num_classes": args.num_classes,
        "input": list(shape),
        "output": [list(o.shape) for o in outs],
        "num_features": int(backbone.num_features),
        "params": count_params(model),
        "params_M": round(count_params(model) / 1e6, 3),
        "gmacs": round(multiply_adds(model, shape) / 1e9, 4),
        "depth": depth(model, shape),
    }
    for key, value in summary.items():
        print(f"{key}: {json.dumps(value)}")
    return 0
