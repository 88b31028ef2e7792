"""What every stage command shares: ``--params``, ``--stage``, the stage's wildcards, and the
job's context (its narrowed params, its MLflow run) from condi.pipeline's stage table."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condi.config import ConfigError
from condi.methods import METHODS

NO_DATASET = "all datasets"  # the MLflow experiment of a job that covers no dataset

WILDCARD_HELP = {
    "dataset": "dataset name (a key of params.yaml datasets)",
    "fold": "official split / fold",
    "teacher": "teacher name (a key of params.yaml teachers)",
    "student": "student name (a key of params.yaml students)",
    "method": "student objective (docs/method.md, section 3): " + " | ".join(METHODS),
    "protocol": "ablation: the training protocol (transfer | scratch)",
    "source": "ablation: Eq. 1 pseudo-label source (train | crossfit)",
    "detach": "ablation: detach z~ in Eq. 5's target (false | true)",
    "kd": "ablation: the KD reduction (class_mean | batchmean)",
    "seed": "ablation: the student's seed",
}


def add_clip_data(p: argparse.ArgumentParser, cache: bool = True) -> None:
    """``--index`` (and ``--cache``): the clip index and the decoded clips of a dataset."""
    p.add_argument("--index", required=True, type=Path, help="clip index (condi data index)")
    if cache:
        p.add_argument(
            "--cache",
            required=True,
            type=Path,
            help="the decoded clips: a clip cache file (condi data cache) or a resized store "
            "folder (condi data resize)",
        )


def add_table_outputs(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--out-csv`` and ``--out-md``: a table's long CSV and its Markdown (optional when
    not ``required``: the table is printed either way)."""
    opt = "" if required else " (optional: the table is printed either way)"
    p.add_argument("--out-csv", required=required, type=Path, help="the long CSV" + opt)
    p.add_argument("--out-md", required=required, type=Path, help="the Markdown table" + opt)


def with_job_columns(df, args: argparse.Namespace):
    """``df`` with the job's dataset, fold, teacher and student as its first columns."""
    for name in ("student", "teacher", "fold", "dataset"):
        value = getattr(args, name, None)
        df.insert(0, name, "-" if value is None and name == "student" else value)
    return df


def add_stage(p: argparse.ArgumentParser, command: str) -> None:
    """``--params``, ``--stage`` and the wildcards of the stages that ``command`` runs."""
    from condi.pipeline import DEFAULT_STAGE, STAGES

    stages = [s for s in STAGES.values() if s.command == command]
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    p.add_argument(
        "--stage",
        default=DEFAULT_STAGE[command],
        choices=[s.name for s in stages],
        help="the pipeline stage this job is (its params keys, wildcards and MLflow tags; "
        f"default {DEFAULT_STAGE[command]})",
    )
    names = dict.fromkeys(w for s in stages for w in s.wildcards)
    for name in names:
        p.add_argument(
            f"--{name}",
            type=int if name == "fold" else str,
            default=1 if name == "fold" else None,
            help=WILDCARD_HELP[name] + (" (default 1)" if name == "fold" else ""),
        )


@dataclass
class StageContext:
    """One job of a stage: its wildcards, the params it may read (and their values) and its
    inputs and outputs as given on the command line."""

    stage: Any  # condi.pipeline.Stage
    wildcards: dict[str, str]
    params: dict[str, Any]
    values: dict[str, Any]
    inputs: list[str]
    outputs: list[str]

    def run(self, *, params: dict[str, Any] | None = None, dataset: str | None = None):
        """The job's MLflow run (condi.tracking), named as DVC names the job
        (``train_student@synthetic-1-...``), tagged, with its params values logged. A job
        without a dataset wildcard (a table) gives ``dataset``: one run per dataset it covers,
        each in that dataset's experiment (``all datasets`` when it covers none)."""
        from condi.pipeline import job_name
        from condi.tracking import Run, stage_tags

        tags = {}
        try:
            tags.update(
                stage_tags(self.stage.name, self.wildcards, self.values, self.inputs, self.outputs)
            )
        except Exception as exc:  # tags are metadata: never fail the job for them
            import logging

            logging.getLogger(__name__).warning("could not derive the job's tags: %s", exc)
        experiment = dataset or self.wildcards.get("dataset") or NO_DATASET
        return Run(
            self.stage.name,
            experiment,
            params if params is not None else self.values,
            tags,
            name=job_name(self.stage.name, self.wildcards),
        )


# The columns that tell apart a long table's rows when they vary within a dataset, and how
# they read in an MLflow metric key (``top1/condi_sr/K1``, ``top1/fold2/condi_sr/K5/Ks3``).
VARYING = ("fold", "teacher", "student")
KEY_PREFIX = {"fold": "fold", "K": "K", "Ks": "Ks", "detach_confidence": "detach_"}


def table_metrics(df, keys: list[str], values: list[str] | None = None) -> dict[str, float]:
    """A long table's numbers as MLflow metrics ``<value>/<key>/<key>...``: one per row and
    value column (``values``, else every numeric column but the keys), keyed by the ``keys``
    columns and by fold, teacher and student where they vary (``top1/condi_sr/K1``)."""
    import pandas as pd

    def given(col):  # a column's values that say something ("-": a baseline's student)
        return df[col][~df[col].isin(["-", ""])].dropna()

    varying = [c for c in VARYING if c in df and c not in keys and given(c).nunique() > 1]
    names = [c for c in (*varying, *keys) if c in df]
    if values is None:
        skip = {*names, "dataset", *VARYING}
        values = [c for c in df if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    out: dict[str, float] = {}
    for _, row in df.iterrows():
        parts = []
        for c in names:
            v = row[c]
            if isinstance(v, str) and v in ("-", ""):
                continue
            if not isinstance(v, str) and pd.isna(v):  # None, NaN, pd.NA
                continue
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            parts.append(f"{KEY_PREFIX.get(c, '')}{v}")
        for value in values:
            x = row.get(value)
            if x is not None and not isinstance(x, str) and not pd.isna(x):
                out["/".join([value, *parts])] = float(x)
    return out


def table_runs(ctx, df, keys: list[str], values=None, artifacts=()) -> None:
    """The MLflow runs of a job that writes a table covering datasets: one per dataset of the
    table's ``dataset`` column (one in ``NO_DATASET`` without it), each with that dataset's
    rows as metrics (:func:`table_metrics`), the job's params and the table's files."""
    datasets = sorted(df["dataset"].dropna().unique()) if "dataset" in df else []
    for dataset in datasets or [None]:
        rows = df[df["dataset"] == dataset] if dataset is not None else df
        with ctx.run(dataset=dataset) as run:
            run.log_metrics(table_metrics(rows, keys, values))
            for path in artifacts:
                run.log_artifact(path)


def _roots_from_params_dir(params: dict[str, Any], path: Path) -> None:
    """Relative dataset roots and checkpoints are relative to the params file's folder (the
    project root): rewritten relative to the working directory, so a command run from
    elsewhere finds them (and one run from the project root sees them unchanged)."""
    import os

    base = path.resolve().parent
    if base == Path.cwd().resolve():
        return
    for ds in params["datasets"].values():
        if not Path(ds["root"]).is_absolute():
            ds["root"] = os.path.relpath(base / ds["root"])
    for t in params["teachers"].values():
        if t.get("checkpoint") and not Path(t["checkpoint"]).is_absolute():
            t["checkpoint"] = os.path.relpath(base / t["checkpoint"])


def _paths(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def stage_context(args: argparse.Namespace) -> StageContext:
    """Read params.yaml once for this job (condi.pipeline.stage_params) and check the job:
    every wildcard of its stage given, names that exist in params."""
    from condi.pipeline import STAGES, ParamPath, stage_params

    stage = STAGES[args.stage]
    missing = [w for w in stage.wildcards if getattr(args, w, None) is None]
    if missing:
        raise ConfigError(f"stage {stage.name}: give " + ", ".join(f"--{w}" for w in missing))
    wildcards = {w: str(getattr(args, w)) for w in stage.wildcards}
    from condi.config import load_params

    full = load_params(args.params)
    for w, section in (("dataset", "datasets"), ("teacher", "teachers"), ("student", "students")):
        if w in wildcards and wildcards[w] not in full[section]:
            raise ConfigError(f"{args.params}: {section}.{wildcards[w]}: no such entry")
    _roots_from_params_dir(full, Path(args.params))
    params, values = stage_params(full, stage, wildcards, str(args.params))
    inputs = [
        p
        for name, spec in stage.inputs.items()
        if not isinstance(spec, ParamPath)
        for p in _paths(getattr(args, name, None))
    ]
    outputs = [p for name in stage.outputs for p in _paths(getattr(args, name, None))]
    return StageContext(stage, wildcards, params, values, inputs, outputs)


def path_list(paths: list[Path]) -> list[Path]:
    """Paths given to an option that takes several (``--student-scores A B``)."""
    return [Path(p) for p in paths]


def dataset_root(params: dict[str, Any], dataset: str, base: Path | None = None) -> Path:
    """The dataset's root from params (relative to the working directory)."""
    root = Path(params["datasets"][dataset]["root"])
    return root if root.is_absolute() or base is None else base / root
