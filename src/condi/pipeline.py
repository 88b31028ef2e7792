"""The pipeline's stages as data: one command template per stage, shared by the Snakemake rules
(``workflow/rules/*.smk``) and the generated ``dvc.yaml`` so the two DAGs cannot drift apart.

Templates use Snakemake's placeholders (``{input.x}``, ``{output.x}``, ``{params.x}``,
``{wildcards.x}``); :func:`dvc_stages` fills them per job for DVC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

P = "--params params.yaml"

COMMANDS: dict[str, str] = {
    "synth": "condi data synth --out {params.root} --preset {params.preset} --seed {params.seed}",
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
}

# params.yaml keys each stage reads (DVC ``params:``; Snakemake gets the same via ``params:``).
PARAM_KEYS: dict[str, list[str]] = {
    "synth": ["datasets.{dataset}.synth"],
    "index": ["datasets.{dataset}", "data.clip_len", "data.val_fraction", "seed"],
    "cache": ["data.short_side"],
    "train_teacher": [
        "teachers.{teacher}",
        "training.teacher",
        "data",
        "seed",
        "device",
        "threads",
    ],
    "pseudo_labels": ["data", "evaluation.batch_size", "device"],
    "train_student": [
        "students",
        "training.student",
        "condi",
        "st_conf",
        "data",
        "seed",
        "device",
        "threads",
    ],
    "teacher_scores": ["data", "evaluation.batch_size", "device"],
    "student_scores": ["data", "evaluation.batch_size", "device"],
    "evaluate_baselines": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "evaluate_students": ["evaluation", "pseudo_labels", "condi.detach_confidence_in_target"],
    "table3": ["tables"],
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


def synth_marker(root: str) -> str:
    return f"{root}/manifest.parquet"


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


@dataclass
class Stage:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    params: list[str] = field(default_factory=list)
    wildcards: dict[str, Any] = field(default_factory=dict)


def _fill(template: str, **ns: Any) -> str:
    return template.format(
        **{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in ns.items()}
    )


def stages(config: dict[str, Any]) -> list[Stage]:
    """Every job of the pipeline for ``config``, as the Snakemake DAG runs them."""
    out: list[Stage] = []
    seed = config.get("seed", 0)
    data = config["data"]
    for d, ds in config["datasets"].items():
        root = ds["root"]
        root_dep = [root]
        if "synth" in ds:
            sy = ds["synth"]
            p = {"root": root, "preset": sy.get("preset", "default"), "seed": sy.get("seed", 0)}
            out.append(
                Stage(
                    f"synth@{d}",
                    _fill(COMMANDS["synth"], params=p),
                    [],
                    [root],
                    PARAM_KEYS["synth"],
                    wildcards={"dataset": d},
                )
            )
        for f in ds.get("folds", [1]):
            w = {"dataset": d, "fold": f}
            index, cache = INDEX.format(**w), CACHE.format(**w)
            p = {
                "kind": ds["kind"],
                "root": root,
                "clip_len": data["clip_len"],
                "val_fraction": data.get("val_fraction", 0.1),
                "seed": seed,
                "short_side": data["short_side"],
            }
            out.append(
                Stage(
                    f"index@{d}-{f}",
                    _fill(COMMANDS["index"], params=p, wildcards=w, output={"index": index}),
                    root_dep,
                    [index],
                    PARAM_KEYS["index"],
                    wildcards=w,
                )
            )
            out.append(
                Stage(
                    f"cache@{d}-{f}",
                    _fill(
                        COMMANDS["cache"], params=p, input={"index": index}, output={"cache": cache}
                    ),
                    [index] + root_dep,
                    [cache],
                    PARAM_KEYS["cache"],
                    wildcards=w,
                )
            )
            io = {"index": index, "cache": cache}
            for t in config["teachers"]:
                wt = {**w, "teacher": t}
                teacher, labels, tscores = (
                    TEACHER.format(**wt),
                    LABELS.format(**wt),
                    TEACHER_SCORES.format(**wt),
                )
                out.append(
                    Stage(
                        f"train_teacher@{d}-{f}-{t}",
                        _fill(
                            COMMANDS["train_teacher"],
                            wildcards=wt,
                            input=io,
                            output={"model": teacher},
                        ),
                        [index, cache],
                        [teacher],
                        PARAM_KEYS["train_teacher"],
                        wildcards=wt,
                    )
                )
                out.append(
                    Stage(
                        f"pseudo_labels@{d}-{f}-{t}",
                        _fill(
                            COMMANDS["pseudo_labels"],
                            wildcards=wt,
                            input={**io, "teacher": teacher},
                            output={"labels": labels},
                        ),
                        [index, cache, teacher],
                        [labels],
                        PARAM_KEYS["pseudo_labels"],
                        wildcards=wt,
                    )
                )
                out.append(
                    Stage(
                        f"teacher_scores@{d}-{f}-{t}",
                        _fill(
                            COMMANDS["teacher_scores"],
                            wildcards=wt,
                            input={**io, "model": teacher},
                            output={"scores": tscores},
                        ),
                        [index, cache, teacher],
                        [tscores],
                        PARAM_KEYS["teacher_scores"],
                        wildcards=wt,
                    )
                )
                base = EVAL_BASELINES.format(**wt)
                out.append(
                    Stage(
                        f"evaluate_baselines@{d}-{f}-{t}",
                        _fill(
                            COMMANDS["evaluate_baselines"],
                            wildcards=wt,
                            params={"root": root},
                            input={"index": index, "teacher": tscores},
                            output={"table": base},
                        ),
                        [index, tscores],
                        [base],
                        PARAM_KEYS["evaluate_baselines"],
                        wildcards=wt,
                    )
                )
                for s in config["students"]:
                    sscores = []
                    for m in config["methods"]:
                        wm = {**wt, "student": s, "method": m}
                        model, sc = STUDENT.format(**wm), STUDENT_SCORES.format(**wm)
                        out.append(
                            Stage(
                                f"train_student@{d}-{f}-{t}-{s}-{m}",
                                _fill(
                                    COMMANDS["train_student"],
                                    wildcards=wm,
                                    input={**io, "labels": labels},
                                    output={"model": model},
                                ),
                                [index, cache, labels],
                                [model],
                                PARAM_KEYS["train_student"],
                                wildcards=wm,
                            )
                        )
                        out.append(
                            Stage(
                                f"student_scores@{d}-{f}-{t}-{s}-{m}",
                                _fill(
                                    COMMANDS["student_scores"],
                                    wildcards=wm,
                                    input={**io, "model": model},
                                    output={"scores": sc},
                                ),
                                [index, cache, model],
                                [sc],
                                PARAM_KEYS["student_scores"],
                                wildcards=wm,
                            )
                        )
                        sscores.append(sc)
                    ws = {**wt, "student": s}
                    ev = EVAL_STUDENTS.format(**ws)
                    p = {
                        "root": root,
                        "students": student_scores_arg(d, f, t, s, config["methods"]),
                    }
                    out.append(
                        Stage(
                            f"evaluate_students@{d}-{f}-{t}-{s}",
                            _fill(
                                COMMANDS["evaluate_students"],
                                wildcards=ws,
                                params=p,
                                input={"index": index, "teacher": tscores},
                                output={"table": ev},
                            ),
                            [index, tscores, *sscores],
                            [ev],
                            PARAM_KEYS["evaluate_students"],
                            wildcards=ws,
                        )
                    )
    evals = eval_csvs(config)
    out.append(
        Stage(
            "table3",
            _fill(
                COMMANDS["table3"],
                input=" ".join(evals),
                output={"csv": TABLE3_CSV, "md": TABLE3_MD},
            ),
            evals,
            [TABLE3_CSV, TABLE3_MD],
            PARAM_KEYS["table3"],
        )
    )
    return out


def _dvc_name(stage: Stage) -> str:
    return stage.name.replace("@", "--")


def dvc_yaml(config: dict[str, Any]) -> dict[str, Any]:
    """``dvc.yaml`` for ``config``: one stage per Snakemake job, the same command, inputs,
    outputs and (narrowed) params. Written by ``condi pipeline dvc``."""
    out: dict[str, Any] = {}
    for st in stages(config):
        entry: dict[str, Any] = {"cmd": st.cmd}
        if st.deps:
            entry["deps"] = list(dict.fromkeys(st.deps))
        if st.params:
            entry["params"] = [k.format(**st.wildcards) for k in st.params]
        entry["outs"] = list(st.outs)
        out[_dvc_name(st)] = entry
    return {"stages": out}
