"""The pipeline's stages as data: one command template per stage, shared by the Snakemake rules
(``workflow/rules/*.smk``) and the generated ``dvc.yaml`` so the two DAGs cannot drift apart.

Templates use Snakemake's placeholders (``{input.x}``, ``{output.x}``, ``{params.x}``,
``{wildcards.x}``). :func:`jobs` fills them per job (what Snakemake runs); :func:`dvc_yaml`
fills them with DVC's ``${item.x}`` and groups the jobs of a stage into one ``matrix:`` stage
(when they are the full product of their wildcards and need nothing but the wildcards),
else one ``foreach:`` stage, else one stage per job.

The stages of Snakemake's rule ``all`` go to ``dvc.yaml``; the ablation's (``ablation_*``, the
target ``ablation`` in Snakemake) to ``ablation/dvc.yaml``, so that a plain ``dvc repro`` leaves
them out as ``snakemake`` does.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from types import SimpleNamespace
from typing import Any

P = "--params params.yaml"
# An ablation variant's switches (wildcards source, detach, seed) as params overrides.
ABLATION_SET = (
    "--set pseudo_labels.source={wildcards.source} "
    "--set condi.detach_confidence_in_target={wildcards.detach} --set seed={wildcards.seed}"
)

COMMANDS: dict[str, str] = {
    "synth": (
        "condi data synth --out {params.root} --preset {params.preset} --seed {params.seed}"
        "{params.overrides}"
    ),
    "index": (
        "condi data index --kind {params.kind} --root {params.root} --fold {wildcards.fold} "
        "--clip-len {params.clip_len} --val-fraction {params.val_fraction} --seed {params.seed} "
        "--out {output.index}"
    ),
    "cache": (
        "condi data cache --index {input.index} --root {params.root} --short-side {params.short_side} "
        "--out {output.cache}"
    ),
    "train_teacher": (
        f"condi train teacher {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --cache {input.cache} --out {output.model}"
    ),
    "pseudo_labels": (
        f"condi train pseudo-labels {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --cache {input.cache} "
        "--checkpoint {input.teacher} --out {output.labels}"
    ),
    "train_student": (
        f"condi train student {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --student {wildcards.student} --method {wildcards.method} "
        "--index {input.index} --cache {input.cache} --pseudo-labels {input.labels} --out {output.model}"
    ),
    "teacher_scores": (
        f"condi evaluate scores {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.model} --out {output.scores}"
    ),
    "student_scores": (
        f"condi evaluate scores {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.model} --out {output.scores}"
    ),
    "evaluate_baselines": (
        f"condi evaluate grid {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --index {input.index} --root {params.root} "
        "--teacher-scores {input.teacher} --out {output.table}"
    ),
    "evaluate_students": (
        f"condi evaluate grid {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--teacher {wildcards.teacher} --student {wildcards.student} --index {input.index} "
        "--root {params.root} --teacher-scores {input.teacher} --student-scores {params.students} "
        "--out {output.table}"
    ),
    "table3": f"condi tables table3 {P} --eval {{input}} --out-csv {{output.csv}} --out-md {{output.md}}",
    "metrics": (
        "condi pipeline metrics --table3 {input.table3} --out {output.metrics} "
        "--plots {output.plots} --figure {output.figure}"
    ),
    "table1": "condi data table1 {params.indexes} --out-csv {output.csv} --out-md {output.md}",
    "table2": (
        f"condi models table2 {P} {{params.indexes}} --out-csv {{output.csv}} --out-md {{output.md}}"
    ),
    # Tables IV/V: one job at a time (the rule takes every core), torch threads from params
    "timing": (
        f"condi report timing {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --teacher {wildcards.teacher} "
        "--student {wildcards.student} --teacher-ckpt {input.teacher} "
        "--teacher-scores {input.teacher_scores}{params.students}{params.options} "
        "--channels-last --out {output.timing}"
    ),
    "table4": "condi report table4 --timing {input.timing} --out-csv {output.csv} --out-md {output.md}",
    "table5": "condi report table5 --timing {input.timing} --out-csv {output.csv} --out-md {output.md}",
    "ambiguity": (
        f"condi report ambiguity {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --teacher {wildcards.teacher} --student {wildcards.student} "
        "--teacher-scores {input.teacher} --student-scores {params.students} "
        "--root {params.root} --out {output.table}"
    ),
    "ambiguity_table": (
        "condi report ambiguity-table --inputs {input.tables} --out-csv {output.csv} "
        "--out-md {output.md}"
    ),
    # accuracy vs K (from table3) and vs cost (from the timing CSVs), per (dataset, teacher,
    # student); the z~ timeline is drawn per (dataset, fold, teacher, student) by `timeline`
    "figures": (
        f"condi report figures {P} --out-dir {{params.out_dir}} --table3 {{input.table3}} "
        "--timing {input.timing}"
    ),
    "timeline": (
        f"condi report figures {P} --out-dir {{params.out_dir}} --dataset {{wildcards.dataset}} "
        "--index {input.index} --root {params.root} --teacher-scores {input.teacher} "
        "--student-scores {input.student} --timeline-stem {params.stem}"
    ),
    # The ablation (SPEC 9, issue 9.3): not in the default target (`snakemake ablation`; DVC:
    # ablation/dvc.yaml). Students of each variant, with the variant's switches as overrides.
    "ablation_pseudo_labels": (
        f"condi train pseudo-labels {P} --set pseudo_labels.source={{wildcards.source}} "
        "--dataset {wildcards.dataset} --fold {wildcards.fold} --teacher {wildcards.teacher} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.teacher} "
        "--out {output.labels}"
    ),
    "ablation_train_student": (
        f"condi train student {P} {ABLATION_SET} --dataset {{wildcards.dataset}} "
        "--fold {wildcards.fold} --teacher {wildcards.teacher} --student {wildcards.student} "
        "--method {wildcards.method} --index {input.index} --cache {input.cache} "
        "--pseudo-labels {input.labels} --out {output.model}"
    ),
    "ablation_student_scores": (
        f"condi evaluate scores {P} --dataset {{wildcards.dataset}} --fold {{wildcards.fold}} "
        "--index {input.index} --cache {input.cache} --checkpoint {input.model} --out {output.scores}"
    ),
    "ablation_evaluate": (
        f"condi evaluate grid {P} {ABLATION_SET} --dataset {{wildcards.dataset}} "
        "--fold {wildcards.fold} --teacher {wildcards.teacher} --student {wildcards.student} "
        "--index {input.index} --root {params.root} --teacher-scores {input.teacher} "
        "--student-scores {wildcards.method}={input.student} --out {output.table}"
    ),
    "ablation_table": (
        "condi tables ablation --students {input.students} --baselines {input.baselines} "
        "--K {params.K} --out-csv {output.csv} --out-md {output.md}"
    ),
}

# params.yaml keys each stage reads: DVC's ``params:`` and the Snakemake rules' ``params.config``
# (so that both re-run a stage exactly when one of these values changes). ``threads`` is left
# out on purpose: it is a scheduling choice (Snakemake's ``threads:``), not a result parameter.
PARAM_KEYS: dict[str, list[str]] = {
    "synth": ["datasets.{dataset}.synth"],
    "index": [
        "datasets.{dataset}.kind",
        "datasets.{dataset}.root",
        "data.clip_len",
        "data.val_fraction",
        "seed",
    ],
    "cache": ["data.short_side"],
    "train_teacher": [
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "pseudo_labels": [
        "pseudo_labels",
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "train_student": [
        "students.{student}",
        "training.student",
        "condi",
        "st_conf",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "teacher_scores": ["data", "evaluation.batch_size", "seed", "device"],
    "student_scores": ["data", "evaluation.batch_size", "seed", "device"],
    "evaluate_baselines": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "evaluate_students": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "table3": ["tables"],
    "metrics": [],
    "table1": [],
    "table2": ["teachers", "students", "data.clip_len", "data.crop_size"],
    # threads is a result parameter here: the time per video depends on it
    "timing": ["timing", "evaluation", "data", "seed", "device", "threads"],
    "table4": [],
    "table5": [],
    # the grid at K = 1, 3, 5 of its own (evaluation.K is not read)
    "ambiguity": ["evaluation.Ks", "evaluation.Ks_K", "evaluation.random_seeds"],
    "ambiguity_table": [],
    "figures": [],
    "timeline": [],
    # the keys a variant overrides (pseudo_labels.source, condi.detach_confidence_in_target,
    # seed) come from the wildcards, in the command
    "ablation_pseudo_labels": [
        "pseudo_labels.crossfit_folds",
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "evaluation.batch_size",
        "seed",
        "device",
    ],
    "ablation_train_student": [
        "students.{student}",
        "training.student",
        "condi",
        "st_conf",
        "data",
        "evaluation.batch_size",
        "device",
    ],
    "ablation_student_scores": ["data", "evaluation.batch_size", "seed", "device"],
    "ablation_evaluate": ["evaluation"],
    "ablation_table": ["ablation.K"],
}


# Paths (Snakemake patterns); wildcards: dataset, fold, teacher, student, method.
INDEX = "data/index/{dataset}_fold{fold}.parquet"
CACHE = "data/cache/{dataset}_fold{fold}.npy"
TEACHER = "models/{dataset}/fold{fold}/teacher_{teacher}.pt"
LABELS = "data/pseudo_labels/{dataset}/fold{fold}/{teacher}.npz"
STUDENT = "models/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.pt"
TEACHER_SCORES = "results/scores/{dataset}/fold{fold}/teacher_{teacher}.npz"
STUDENT_SCORES = "results/scores/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.npz"
EVAL_BASELINES = "results/eval/{dataset}/fold{fold}/baselines_{teacher}.csv"
EVAL_STUDENTS = "results/eval/{dataset}/fold{fold}/students_{teacher}_{student}.csv"
TABLE3_CSV = "results/table3.csv"
TABLE3_MD = "results/table3.md"
TABLE3_PAPER_CSV = "results/table3_paper.csv"  # written beside TABLE3_CSV by `condi tables table3`
# Companions of table3 for DVC (`dvc metrics show`, `dvc plots show`) and the Snakemake report.
METRICS_JSON = "results/metrics.json"
PLOT_CSV = "results/plots/accuracy_vs_k.csv"
PLOT_PNG = "results/plots/accuracy_vs_k.png"
# The DVC plot template (in .dvc/plots/): one line per method, one panel per dataset.
PLOT_TEMPLATE = "accuracy_vs_k"
TABLE1_CSV = "results/table1.csv"
TABLE1_MD = "results/table1.md"
TABLE2_CSV = "results/table2.csv"
TABLE2_MD = "results/table2.md"
TIMING = "results/timing/{dataset}_fold{fold}_{teacher}_{student}.csv"
TABLE4_CSV = "results/table4.csv"
TABLE4_MD = "results/table4.md"
TABLE5_CSV = "results/table5.csv"
TABLE5_MD = "results/table5.md"
AMBIGUITY = "results/ambiguity/{dataset}_fold{fold}_{teacher}_{student}.csv"
AMBIGUITY_CSV = "results/ambiguity.csv"
AMBIGUITY_MD = "results/ambiguity.md"
FIGURES = "results/figures"
# `condi report figures` names: <stem>.png and <stem>.svg
ACCURACY_VS_K = "accuracy_vs_k_{dataset}_{teacher}_{student}"
ACCURACY_VS_COST = "accuracy_vs_cost_{dataset}_{teacher}_{student}"
TIMELINE = "ztilde_timeline_{dataset}_fold{fold}_{teacher}_{student}"
FIGURE_FORMATS = ("png", "svg")
# Students timed for Table IV (condi.evaluation.timing), those of them in params `methods`.
TIMING_METHODS = ("condi_sr", "bce_conf", "st_ent")

# The ablation (extra wildcards: source, detach, seed; a variant is (method, source, detach,
# seed)). Its DVC stages live in their own dvc.yaml, so that `dvc repro` leaves them out.
ABLATION_DVC = "ablation/dvc.yaml"
VARIANT = "{teacher}_{student}_{method}_{source}_detach{detach}_seed{seed}"
ABL_LABELS = "data/pseudo_labels/{dataset}/fold{fold}/{teacher}_{source}.npz"
ABL_STUDENT = "models/{dataset}/fold{fold}/ablation/student_" + VARIANT + ".pt"
ABL_SCORES = "results/scores/{dataset}/fold{fold}/ablation/student_" + VARIANT + ".npz"
ABL_EVAL = "results/eval/{dataset}/fold{fold}/ablation/students_" + VARIANT + ".csv"
ABLATION_CSV = "results/ablation.csv"
ABLATION_MD = "results/ablation.md"
ABLATION_SOURCES = ("train", "crossfit")
ABLATION_DEFAULTS: dict[str, Any] = {
    "sources": ["train", "crossfit"],
    "detach": [False, True],
    "methods": ["st_ent", "bce_conf", "maxprob"],
    "seeds": [0, 1, 2],
    "K": [1, 3, 5],
}

VARIANT_WILDCARDS = (
    "dataset",
    "fold",
    "teacher",
    "student",
    "method",
    "source",
    "detach",
    "seed",
)
# Wildcards of each stage, in the order that names its jobs (``train_student@synthetic-1-...``).
WILDCARDS: dict[str, tuple[str, ...]] = {
    "synth": ("dataset",),
    "index": ("dataset", "fold"),
    "cache": ("dataset", "fold"),
    "train_teacher": ("dataset", "fold", "teacher"),
    "pseudo_labels": ("dataset", "fold", "teacher"),
    "teacher_scores": ("dataset", "fold", "teacher"),
    "evaluate_baselines": ("dataset", "fold", "teacher"),
    "train_student": ("dataset", "fold", "teacher", "student", "method"),
    "student_scores": ("dataset", "fold", "teacher", "student", "method"),
    "evaluate_students": ("dataset", "fold", "teacher", "student"),
    "table3": (),
    "metrics": (),
    "table1": (),
    "table2": (),
    "timing": ("dataset", "fold", "teacher", "student"),
    "table4": (),
    "table5": (),
    "ambiguity": ("dataset", "fold", "teacher", "student"),
    "ambiguity_table": (),
    "figures": (),
    "timeline": ("dataset", "fold", "teacher", "student"),
    "ablation_pseudo_labels": ("dataset", "fold", "teacher", "source"),
    "ablation_train_student": VARIANT_WILDCARDS,
    "ablation_student_scores": VARIANT_WILDCARDS,
    "ablation_evaluate": VARIANT_WILDCARDS,
    "ablation_table": (),
}
ABLATION_STAGES = tuple(n for n in WILDCARDS if n.startswith("ablation_"))


def synth_marker(root: str) -> str:
    return f"{root}/manifest.parquet"


def synth_overrides(synth: dict[str, Any]) -> str:
    """``condi data synth --set KEY=VALUE`` arguments for ``datasets.<d>.synth.overrides``."""
    items = sorted((synth or {}).get("overrides", {}).items())
    return "".join(f" --set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in items)


def student_scores_arg(
    dataset: str, fold: Any, teacher: str, student: str, methods: list[str]
) -> str:
    return " ".join(
        f"{m}={STUDENT_SCORES.format(dataset=dataset, fold=fold, teacher=teacher, student=student, method=m)}"
        for m in methods
    )


def eval_csvs(config: dict[str, Any]) -> list[str]:
    """Every evaluation CSV table3 assembles, in a stable order."""
    out = []
    for d, ds in config["datasets"].items():
        for f in ds.get("folds", [1]):
            for t in config["teachers"]:
                out.append(EVAL_BASELINES.format(dataset=d, fold=f, teacher=t))
                out += [
                    EVAL_STUDENTS.format(dataset=d, fold=f, teacher=t, student=s)
                    for s in config["students"]
                ]
    return out


def _folds(config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for d, ds in config["datasets"].items():
        for f in ds.get("folds", [1]):
            yield d, f


def _pairs(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``{dataset, fold, teacher, student}`` of every job that serves one model pair."""
    for d, f in _folds(config):
        for t in config["teachers"]:
            for s in config["students"]:
                yield {"dataset": d, "fold": f, "teacher": t, "student": s}


def table1_indexes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Table I's ``(name, index)``: every dataset's fold (named ``<d>_fold<f>`` when the
    dataset has several)."""
    out = []
    for d, ds in config["datasets"].items():
        folds = ds.get("folds", [1])
        for f in folds:
            out.append((d if len(folds) == 1 else f"{d}_fold{f}", INDEX.format(dataset=d, fold=f)))
    return out


def table2_indexes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Table II's ``(dataset, index)`` (the class count): each dataset's first fold."""
    return [
        (d, INDEX.format(dataset=d, fold=ds.get("folds", [1])[0]))
        for d, ds in config["datasets"].items()
    ]


def index_args(indexes: list[tuple[str, str]]) -> str:
    return " ".join(f"--index {name}={path}" for name, path in indexes)


def timing_methods(config: dict[str, Any]) -> list[str]:
    return [m for m in TIMING_METHODS if m in config["methods"]]


def timing_students(config: dict[str, Any], w: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The (checkpoints, scores) of the students a timing job times."""
    ms = timing_methods(config)
    return (
        [STUDENT.format(**w, method=m) for m in ms],
        [STUDENT_SCORES.format(**w, method=m) for m in ms],
    )


def timing_students_arg(config: dict[str, Any], w: dict[str, Any]) -> str:
    """`` --student-ckpt M=PATH ... --student-scores M=PATH ...`` (empty without students)."""
    ms = timing_methods(config)
    if not ms:
        return ""
    ckpts, scores = timing_students(config, w)
    pairs = lambda paths: " ".join(f"{m}={p}" for m, p in zip(ms, paths, strict=True))  # noqa: E731
    return f" --student-ckpt {pairs(ckpts)} --student-scores {pairs(scores)}"


def timing_options(config: dict[str, Any]) -> str:
    """The timing command's options from params ``timing``."""
    t = config.get("timing") or {}
    out = f" --warmup {t.get('warmup', 2)} --repeats {t.get('repeats', 1)}"
    if t.get("max_videos"):
        out += f" --max-videos {t['max_videos']}"
    return out


def timing_csvs(config: dict[str, Any]) -> list[str]:
    return [TIMING.format(**w) for w in _pairs(config)]


def ambiguity_csvs(config: dict[str, Any]) -> list[str]:
    return [AMBIGUITY.format(**w) for w in _pairs(config)]


def has_split(config: dict[str, Any]) -> bool:
    """condi_sr is trained: Table V (its Ks split) and the z~ timelines exist."""
    return "condi_sr" in config["methods"]


def _figure_files(stem: str) -> list[str]:
    return [f"{FIGURES}/{stem}.{fmt}" for fmt in FIGURE_FORMATS]


def figure_outputs(config: dict[str, Any]) -> list[str]:
    """What the figures job draws: accuracy vs K and vs cost per (dataset, teacher, student)."""
    out = []
    for stem in (ACCURACY_VS_K, ACCURACY_VS_COST):
        for d in config["datasets"]:
            for t in config["teachers"]:
                for s in config["students"]:
                    out += _figure_files(stem.format(dataset=d, teacher=t, student=s))
    return out


def timeline_outputs(config: dict[str, Any], w: dict[str, Any]) -> list[str]:
    return _figure_files(TIMELINE.format(**w))


def report_outputs(config: dict[str, Any]) -> list[str]:
    """The final results beyond Table III (rule ``all``): Tables I, II, IV, V, ambiguity and
    figures."""
    out = [TABLE1_CSV, TABLE1_MD, TABLE2_CSV, TABLE2_MD, TABLE4_CSV, TABLE4_MD]
    if has_split(config):
        out += [TABLE5_CSV, TABLE5_MD]
    out += [AMBIGUITY_CSV, AMBIGUITY_MD, *figure_outputs(config)]
    if has_split(config):
        out += [f for w in _pairs(config) for f in timeline_outputs(config, w)]
    return out


def ablation_params(config: dict[str, Any]) -> dict[str, Any]:
    return {**ABLATION_DEFAULTS, **(config.get("ablation") or {})}


def ablation_variants(config: dict[str, Any]) -> list[dict[str, Any]]:
    """``{method, source, detach, seed}`` of every ablation student: condi_sr under every
    (pseudo-label source, detach) of params ``ablation``, and ``ablation.methods`` with the
    paper's switches (train, no detach), each for every seed. ``detach`` is "false" | "true"."""
    ab = ablation_params(config)
    out = [
        {"method": "condi_sr", "source": src, "detach": json.dumps(bool(det)), "seed": seed}
        for src in ab["sources"]
        for det in ab["detach"]
        for seed in ab["seeds"]
    ]
    out += [
        {"method": m, "source": "train", "detach": "false", "seed": seed}
        for m in ab["methods"]
        for seed in ab["seeds"]
    ]
    return out


def ablation_ks(config: dict[str, Any]) -> str:
    """The ablation table's K values (``--K``)."""
    return " ".join(str(k) for k in ablation_params(config)["K"])


def ablation_sources(config: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(v["source"] for v in ablation_variants(config)))


def ablation_evals(config: dict[str, Any]) -> list[str]:
    return [ABL_EVAL.format(**w, **v) for w in _pairs(config) for v in ablation_variants(config)]


def baseline_csvs(config: dict[str, Any]) -> list[str]:
    return [
        EVAL_BASELINES.format(dataset=d, fold=f, teacher=t)
        for d, f in _folds(config)
        for t in config["teachers"]
    ]


@dataclass
class Stage:
    """One job: the command Snakemake runs for it and DVC's view of it (deps, outs, params)."""

    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    params: list[str] = field(default_factory=list)
    wildcards: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)  # outs that are DVC metrics (not cached)
    plots: list[str] = field(default_factory=list)  # outs that are DVC plots (not cached)


def _fill(template: str, **ns: Any) -> str:
    return template.format(
        **{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in ns.items()}
    )


def teacher_checkpoint(config: dict[str, Any], teacher: str) -> list[str]:
    """``[teachers.<t>.checkpoint]`` when that teacher is adopted rather than trained, else []:
    the checkpoint file is then an input of train_teacher."""
    ckpt = config["teachers"][teacher].get("checkpoint")
    return [str(ckpt)] if ckpt else []


def _job_values(config: dict[str, Any], w: dict[str, Any]) -> dict[str, Any]:
    """Values of a job that come from ``datasets.<d>`` and ``teachers.<t>`` (not expressible by
    the wildcards)."""
    out = _dataset_values(config, w["dataset"]) if "dataset" in w else {}
    if "teacher" in w:
        out["teacher_checkpoint"] = " ".join(teacher_checkpoint(config, w["teacher"]))
    return out


def _dataset_values(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    ds = config["datasets"][dataset]
    sy = ds.get("synth")
    return {
        "root": ds["root"],
        "kind": ds["kind"],
        "preset": (sy or {}).get("preset", "default"),
        "synth_seed": (sy or {}).get("seed", 0),
        "overrides": synth_overrides(sy or {}),
        "synthetic": sy is not None,
    }


def _wildcard_sets(config: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    if name == "synth":
        yield from ({"dataset": d} for d, ds in config["datasets"].items() if "synth" in ds)
        return
    if name in ("table5", "timeline") and not has_split(config):
        return
    keys = WILDCARDS[name]
    if not keys:
        yield {}
        return
    for d, f in _folds(config):
        yield from _expand(config, keys[2:], {"dataset": d, "fold": f})


def _expand(config: dict[str, Any], keys: tuple[str, ...], w: dict[str, Any]) -> Iterator[dict]:
    if not keys:
        yield w
        return
    if keys == VARIANT_WILDCARDS[4:]:
        for v in ablation_variants(config):
            yield {**w, **v}
        return
    values = {
        "teacher": config["teachers"],
        "student": config["students"],
        "method": config["methods"],
        "source": ablation_sources(config),
    }[keys[0]]
    for x in values:
        yield from _expand(config, keys[1:], {**w, keys[0]: x})


def _render(name: str, config: dict[str, Any], w: dict[str, Any], v: dict[str, Any]) -> Stage:
    """The job of stage ``name`` for wildcards ``w`` and dataset values ``v``. Both may hold
    placeholders (DVC's ``${item.x}``) instead of values; the result is then a template."""
    data = config["data"]
    root = v.get("root")
    wn = SimpleNamespace(**w)
    idx = INDEX.format(**w) if "fold" in w else None
    cache = CACHE.format(**w) if "fold" in w else None
    manifest = [synth_marker(root)] if v.get("synthetic") else []
    keys = [k.format(**w) for k in PARAM_KEYS[name]]

    def stage(cmd_ns: dict[str, Any], deps: list[str], outs: list[str], **kw: Any) -> Stage:
        return Stage(name, _fill(COMMANDS[name], wildcards=w, **cmd_ns), deps, outs, keys, w, **kw)

    if name == "synth":
        p = {
            "root": root,
            "preset": v["preset"],
            "seed": v["synth_seed"],
            "overrides": v["overrides"],
        }
        return stage({"params": p}, [], [root])
    if name == "index":
        p = {
            "kind": v["kind"],
            "root": root,
            "clip_len": data["clip_len"],
            "val_fraction": data.get("val_fraction", 0.1),
            "seed": config.get("seed", 0),
        }
        return stage({"params": p, "output": {"index": idx}}, [root], [idx])
    if name == "cache":
        p = {"root": root, "short_side": data["short_side"]}
        io = {"params": p, "input": {"index": idx}, "output": {"cache": cache}}
        return stage(io, [idx, root], [cache])
    if name in ("train_teacher", "pseudo_labels", "teacher_scores", "evaluate_baselines"):
        teacher, tscores = TEACHER.format(**w), TEACHER_SCORES.format(**w)
        io = {"index": idx, "cache": cache}
        if name == "train_teacher":
            ckpt = [v["teacher_checkpoint"]] if v.get("teacher_checkpoint") else []
            ns = {"input": io, "output": {"model": teacher}}
            return stage(ns, [idx, cache, *ckpt], [teacher])
        if name == "pseudo_labels":
            labels = LABELS.format(**w)
            ns = {"input": {**io, "teacher": teacher}, "output": {"labels": labels}}
            return stage(ns, [idx, cache, teacher], [labels])
        if name == "teacher_scores":
            ns = {"input": {**io, "model": teacher}, "output": {"scores": tscores}}
            return stage(ns, [idx, cache, teacher], [tscores])
        base = EVAL_BASELINES.format(**w)
        ns = {
            "params": {"root": root},
            "input": {"index": idx, "teacher": tscores},
            "output": {"table": base},
        }
        return stage(ns, [idx, tscores, *manifest], [base])
    if name in ("train_student", "student_scores"):
        model = STUDENT.format(**w)
        io = {"index": idx, "cache": cache}
        if name == "train_student":
            labels = LABELS.format(**w)
            ns = {"input": {**io, "labels": labels}, "output": {"model": model}}
            return stage(ns, [idx, cache, labels], [model])
        sc = STUDENT_SCORES.format(**w)
        ns = {"input": {**io, "model": model}, "output": {"scores": sc}}
        return stage(ns, [idx, cache, model], [sc])
    if name == "evaluate_students":
        tscores, ev = TEACHER_SCORES.format(**w), EVAL_STUDENTS.format(**w)
        methods = config["methods"]
        sscores = [STUDENT_SCORES.format(**w, method=m) for m in methods]
        p = {
            "root": root,
            "students": student_scores_arg(wn.dataset, wn.fold, wn.teacher, wn.student, methods),
        }
        ns = {"params": p, "input": {"index": idx, "teacher": tscores}, "output": {"table": ev}}
        return stage(ns, [idx, tscores, *sscores, *manifest], [ev])
    if name == "table3":
        evals = eval_csvs(config)
        ns = {"input": " ".join(evals), "output": {"csv": TABLE3_CSV, "md": TABLE3_MD}}
        return stage(ns, evals, [TABLE3_CSV, TABLE3_MD, TABLE3_PAPER_CSV])
    if name == "metrics":
        ns = {
            "input": {"table3": TABLE3_CSV},
            "output": {"metrics": METRICS_JSON, "plots": PLOT_CSV, "figure": PLOT_PNG},
        }
        return stage(
            ns,
            [TABLE3_CSV],
            [],
            metrics=[METRICS_JSON],
            plots=[PLOT_CSV, PLOT_PNG],
        )
    if name in ("table1", "table2"):
        indexes = table1_indexes(config) if name == "table1" else table2_indexes(config)
        csv, md = (TABLE1_CSV, TABLE1_MD) if name == "table1" else (TABLE2_CSV, TABLE2_MD)
        ns = {"params": {"indexes": index_args(indexes)}, "output": {"csv": csv, "md": md}}
        return stage(ns, [p for _, p in indexes], [csv, md])
    if name == "timing":
        teacher, tscores, out = TEACHER.format(**w), TEACHER_SCORES.format(**w), TIMING.format(**w)
        ckpts, sscores = timing_students(config, w)
        p = {"students": timing_students_arg(config, w), "options": timing_options(config)}
        io = {"index": idx, "cache": cache, "teacher": teacher, "teacher_scores": tscores}
        ns = {"params": p, "input": io, "output": {"timing": out}}
        return stage(ns, [idx, cache, teacher, tscores, *ckpts, *sscores], [out])
    if name in ("table4", "table5"):
        csvs = timing_csvs(config)
        csv, md = (TABLE4_CSV, TABLE4_MD) if name == "table4" else (TABLE5_CSV, TABLE5_MD)
        ns = {"input": {"timing": " ".join(csvs)}, "output": {"csv": csv, "md": md}}
        return stage(ns, csvs, [csv, md])
    if name == "ambiguity":
        tscores, out = TEACHER_SCORES.format(**w), AMBIGUITY.format(**w)
        methods = config["methods"]
        sscores = [STUDENT_SCORES.format(**w, method=m) for m in methods]
        p = {
            "root": root,
            "students": student_scores_arg(wn.dataset, wn.fold, wn.teacher, wn.student, methods),
        }
        ns = {"params": p, "input": {"index": idx, "teacher": tscores}, "output": {"table": out}}
        return stage(ns, [idx, tscores, *sscores, *manifest], [out])
    if name == "ambiguity_table":
        csvs = ambiguity_csvs(config)
        ns = {
            "input": {"tables": " ".join(csvs)},
            "output": {"csv": AMBIGUITY_CSV, "md": AMBIGUITY_MD},
        }
        return stage(ns, csvs, [AMBIGUITY_CSV, AMBIGUITY_MD])
    if name == "figures":
        csvs = timing_csvs(config)
        ns = {
            "params": {"out_dir": FIGURES},
            "input": {"table3": TABLE3_CSV, "timing": " ".join(csvs)},
        }
        return stage(ns, [TABLE3_CSV, *csvs], figure_outputs(config))
    if name == "timeline":
        tscores = TEACHER_SCORES.format(**w)
        sscores = STUDENT_SCORES.format(**w, method="condi_sr")
        p = {"out_dir": FIGURES, "root": root, "stem": TIMELINE.format(**w)}
        ns = {"params": p, "input": {"index": idx, "teacher": tscores, "student": sscores}}
        return stage(ns, [idx, tscores, sscores, *manifest], timeline_outputs(config, w))
    if name == "ablation_pseudo_labels":
        teacher, labels = TEACHER.format(**w), ABL_LABELS.format(**w)
        ns = {"input": {"index": idx, "cache": cache, "teacher": teacher}}
        return stage({**ns, "output": {"labels": labels}}, [idx, cache, teacher], [labels])
    if name == "ablation_train_student":
        labels, model = ABL_LABELS.format(**w), ABL_STUDENT.format(**w)
        ns = {"input": {"index": idx, "cache": cache, "labels": labels}}
        return stage({**ns, "output": {"model": model}}, [idx, cache, labels], [model])
    if name == "ablation_student_scores":
        model, sc = ABL_STUDENT.format(**w), ABL_SCORES.format(**w)
        ns = {"input": {"index": idx, "cache": cache, "model": model}}
        return stage({**ns, "output": {"scores": sc}}, [idx, cache, model], [sc])
    if name == "ablation_evaluate":
        tscores, sscores, ev = (
            TEACHER_SCORES.format(**w),
            ABL_SCORES.format(**w),
            ABL_EVAL.format(**w),
        )
        ns = {
            "params": {"root": root},
            "input": {"index": idx, "teacher": tscores, "student": sscores},
            "output": {"table": ev},
        }
        return stage(ns, [idx, tscores, sscores, *manifest], [ev])
    if name == "ablation_table":
        students, baselines = ablation_evals(config), baseline_csvs(config)
        ns = {
            "params": {"K": ablation_ks(config)},
            "input": {"students": " ".join(students), "baselines": " ".join(baselines)},
            "output": {"csv": ABLATION_CSV, "md": ABLATION_MD},
        }
        return stage(ns, [*students, *baselines], [ABLATION_CSV, ABLATION_MD])
    raise KeyError(name)


def job_name(stage: str, w: dict[str, Any]) -> str:
    """``train_student@synthetic-1-resnext-resnext8-condi_sr``: DVC's name for the job."""
    return f"{stage}@{'-'.join(str(x) for x in w.values())}" if w else stage


def jobs(config: dict[str, Any]) -> list[Stage]:
    """Every job of the pipeline for ``config``, in topological order (as Snakemake runs them)."""
    out = []
    for name in COMMANDS:
        for w in _wildcard_sets(config, name):
            st = _render(name, config, w, _job_values(config, w))
            st.name = job_name(name, w)
            out.append(st)
    return out


def _dvc_entry(st: Stage, wdir: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"wdir": wdir} if wdir else {}
    entry["cmd"] = st.cmd
    if st.deps:
        entry["deps"] = list(dict.fromkeys(st.deps))
    if st.params:
        entry["params"] = list(st.params)
    if st.outs:
        entry["outs"] = list(st.outs)
    if st.metrics:
        entry["metrics"] = [{m: {"cache": False}} for m in st.metrics]
    if st.plots:
        plots = []
        for p in st.plots:
            if p.endswith(".csv"):
                opts = {"cache": False, "template": PLOT_TEMPLATE, "x": "K", "y": "top1"}
                plots.append({p: opts})
            else:
                plots.append({p: {"cache": False}})
        entry["plots"] = plots
    return entry


def _is_product(items: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list] | None:
    """The matrix whose product is ``items`` (same order), or None."""
    axes = {k: list(dict.fromkeys(it[k] for it in items)) for k in keys}
    expanded = [dict(zip(keys, combo, strict=True)) for combo in product(*axes.values())]
    return axes if expanded == [{k: it[k] for k in keys} for it in items] else None


def dvc_yaml(config: dict[str, Any], part: str = "main") -> dict[str, Any]:
    """``dvc.yaml`` for ``config``: every Snakemake job as a DVC stage with the same command,
    inputs, outputs and (narrowed) params, grouped per rule into ``matrix:`` or ``foreach:``
    stages where DVC can express the group. Written by ``condi pipeline dvc``.

    ``part="main"``: the stages of Snakemake's rule ``all`` (``dvc.yaml``, what ``dvc repro``
    runs); ``part="ablation"``: the ablation's stages (:data:`ABLATION_DVC`, run by ``dvc repro
    ablation/dvc.yaml``, which reproduces what they need of the main pipeline too), with the
    repository root as their ``wdir``."""
    if part not in ("main", "ablation"):
        raise ValueError(f"part: main | ablation, not {part!r}")
    ablation = part == "ablation"
    wdir = "/".join([".."] * (len(Path(ABLATION_DVC).parts) - 1)) if ablation else None

    def entry(st: Stage) -> dict[str, Any]:
        return _dvc_entry(st, wdir)

    out: dict[str, Any] = {}
    for name in COMMANDS:
        if (name in ABLATION_STAGES) != ablation:
            continue
        ws = list(_wildcard_sets(config, name))
        keys = WILDCARDS[name]
        if not keys:
            if ws:
                out[name] = entry(_render(name, config, {}, {}))
            continue
        if not ws:
            continue
        vals = [_job_values(config, w) for w in ws]
        item_w = {k: f"${{item.{k}}}" for k in keys}
        # dataset and teacher values the stage uses and that differ between jobs become item
        # fields (an empty one changes the stage's shape); the rest stay literal
        probe = {k: f"${{item.{k}}}" for k in vals[0] if k != "synthetic"}
        used = str(entry(_render(name, config, item_w, {**vals[0], **probe})))
        varying = [k for k in probe if probe[k] in used and len({str(v[k]) for v in vals}) > 1]
        templates = []
        for v in vals:
            tv = {**v, **{k: f"${{item.{k}}}" for k in varying if v[k]}}
            templates.append(entry(_render(name, config, item_w, tv)))
        if any(t != templates[0] for t in templates):
            # the jobs differ in shape (e.g. a synthetic and a real dataset): one stage per job
            for w, v in zip(ws, vals, strict=True):
                out[job_name(name, w).replace("@", "--")] = entry(_render(name, config, w, v))
            continue
        axes = None if varying else _is_product(ws, keys)
        if axes is not None:
            out[name] = {"matrix": axes, **templates[0]}
        else:
            items = {
                job_name(name, w).split("@", 1)[1]: {**w, **{k: v[k] for k in varying}}
                for w, v in zip(ws, vals, strict=True)
            }
            out[name] = {"foreach": items, "do": templates[0]}
    return {"stages": out}


# -- Snakemake after `dvc pull` ------------------------------------------------------------------


class DvcRecords:
    """``dvc.lock`` as Snakemake needs it after ``dvc pull`` / ``dvc checkout``.

    DVC restores files without their modification times, and Snakemake (9.27) re-runs a job
    whose input is newer than its output unless the input's checksum equals the one recorded
    in ``.snakemake/metadata`` when the job ran, which a fresh clone does not have. So for a job
    whose outputs Snakemake has no record of, the rules ask :meth:`up_to_date`: when
    ``dvc.lock`` records the job's stage with exactly the current outputs, inputs and params
    (what ``dvc status`` checks), the inputs' mtimes carry no information and the rules mark
    them ``ancient()``. md5s come from DVC's state database (filled by ``dvc pull``), else are
    computed.
    """

    def __init__(self, root: str | Path = ".", params_file: str = "params.yaml") -> None:
        import yaml

        self.root = Path(root)
        self.params_file = params_file
        self.stages: dict[str, Any] = {}
        # the main pipeline's and the ablation's (paths relative to the root: its wdir)
        for lock in (self.root / "dvc.lock", (self.root / ABLATION_DVC).with_suffix(".lock")):
            if lock.is_file():
                with open(lock) as f:
                    self.stages.update((yaml.safe_load(f) or {}).get("stages") or {})
        self._outs = {
            o["path"]: name for name, st in self.stages.items() for o in st.get("outs") or []
        }
        self._memo: dict[tuple, str | None] = {}
        self._repo: Any = None
        self._md5: dict[str, str | None] = {}
        self._params: dict[str, Any] | None = None
        self._dirs: dict[str, dict[str, str]] = {}

    def __bool__(self) -> bool:
        return bool(self.stages)

    def _dvc(self) -> Any:
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo(str(self.root))
        return self._repo

    def md5(self, path: str) -> str | None:
        """DVC's md5 of the file ``path`` (None if missing)."""
        if path not in self._md5:
            p = self.root / path
            value = None
            if p.is_file():
                try:
                    repo = self._dvc()
                    _, info = repo.state.get(str(p.resolve()), repo.fs)
                    value = info.value if info is not None else None
                except Exception:
                    value = None
                if value is None:
                    import hashlib

                    h = hashlib.md5()
                    with open(p, "rb") as f:
                        while block := f.read(1 << 22):
                            h.update(block)
                    value = h.hexdigest()
            self._md5[path] = value
        return self._md5[path]

    def _dir_listing(self, md5: str) -> dict[str, str]:
        """``{relpath: md5}`` of a directory DVC recorded as ``md5`` (from its cache)."""
        if md5 not in self._dirs:
            import json

            listing: dict[str, str] = {}
            try:
                path = self._dvc().cache.local.oid_to_path(md5)
                with open(path) as f:
                    listing = {e["relpath"]: e["md5"] for e in json.load(f)}
            except Exception:
                pass
            self._dirs[md5] = listing
        return self._dirs[md5]

    def _recorded(self, entries: list[dict[str, Any]], path: str) -> str | None:
        for e in entries:
            if e.get("path") == path:
                return e.get("md5")
            prefix = e.get("path", "").rstrip("/") + "/"
            if path.startswith(prefix) and str(e.get("md5", "")).endswith(".dir"):
                return self._dir_listing(e["md5"]).get(path[len(prefix) :])
        return None

    def _current_params(self) -> dict[str, Any]:
        if self._params is None:
            import yaml

            try:
                with open(self.root / self.params_file) as f:
                    self._params = yaml.safe_load(f) or {}
            except OSError:
                self._params = {}
        return self._params

    def _producer(self, path: str) -> str | None:
        """The stage whose output is ``path`` (or a directory holding it)."""
        if path in self._outs:
            return self._outs[path]
        return next(
            (s for o, s in self._outs.items() if path.startswith(o.rstrip("/") + "/")), None
        )

    def stale_reason(self, stage: str, inputs: list[str] | None = None) -> str | None:
        """Why ``dvc.lock`` does not describe ``stage`` as it is now (None: it does): an output,
        a dep (or one of ``inputs``, files inside a directory dep), a param, or, transitively,
        a stage upstream differs. Directory deps and outputs (datasets) are not hashed."""
        key = (stage, tuple(inputs or ()))
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = reason = self._stale_reason(stage, inputs or [])
        return reason

    def _stale_reason(self, stage: str, inputs: list[str]) -> str | None:
        entry = self.stages.get(stage)
        if not entry:
            return f"{stage}: not in dvc.lock"
        for o in entry.get("outs") or []:
            if str(o.get("md5", "")).endswith(".dir"):
                continue
            if o.get("md5") is None or self.md5(o["path"]) != o["md5"]:
                return f"{stage}: output {o['path']} differs from dvc.lock"
        deps = entry.get("deps") or []
        files = [d["path"] for d in deps if not str(d.get("md5", "")).endswith(".dir")]
        for p in dict.fromkeys([*files, *inputs]):
            rec = self._recorded(deps, p)
            if rec is None or self.md5(p) != rec:
                return f"{stage}: input {p} differs from dvc.lock"
        current = self._current_params()
        for key, value in ((entry.get("params") or {}).get(self.params_file) or {}).items():
            node: Any = current
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                return f"{stage}: {self.params_file} {key} differs from dvc.lock"
        for d in deps:
            up = self._producer(d["path"])
            if up is not None and up != stage and (why := self.stale_reason(up)):
                return why
        return None

    def up_to_date(self, stage: str, inputs: list[str]) -> bool:
        """True when ``dvc.lock`` records ``stage`` and every stage upstream of it exactly as
        the workspace is now (outputs, deps, ``inputs``, params): what ``dvc status`` checks."""
        return self.stale_reason(stage, inputs) is None
