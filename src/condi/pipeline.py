"""The pipeline as one table of stages (docs/method.md, "The pipeline").

:data:`STAGES` is the only description of the pipeline. Each :class:`Stage` names the
``condi`` command that runs it, its wildcards, its inputs and outputs (path patterns, lists
gathered from another stage's jobs, or paths that are params values) and the params.yaml keys
its results depend on. Everything else reads it:

* the Snakemake rules (``workflow/rules/stages.smk`` defines one rule per stage from it);
* ``dvc.yaml`` and ``ablation/dvc.yaml`` (:func:`dvc_yaml`, written by ``condi pipeline dvc``);
* every stage command (:func:`stage_params`: the values it may read) and MLflow tracking
  (``--stage`` names the stage, whose params are logged and hashed).

Commands carry only paths, wildcards, ``--params`` and ``--stage``: every value comes from
params.yaml, so an edit there reaches the next run of the affected stages in both runners, and
``dvc.yaml`` changes only when the shape of the DAG does (datasets, folds, models, methods,
the ablation's variants). Paths that are params values (a dataset root, an adopted teacher
checkpoint) are dependencies but never on a command line; DVC reads them from params.yaml
(``${datasets.<d>.root}``), so a root such as ``data/my videos`` needs no quoting anywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from condi.methods import TIMED_METHODS

PARAMS_FILE = "params.yaml"
# params keys that are runtime settings, never results: every stage may read them, and they are
# neither DVC params nor part of the resume hash (Snakemake's ``threads:`` follows ``threads``;
# ``workers``: DataLoader worker processes, which change no clip: condi.data.indexed)
RUNTIME_KEYS = ("threads", "workers")

# -- paths (Snakemake patterns; wildcards: dataset, fold, teacher, student, method and the
# ablation's source, detach, seed) ----------------------------------------------------------
INDEX = "data/index/{dataset}_fold{fold}.parquet"
CACHE = "data/cache/{dataset}_fold{fold}.npy"
RESIZED = "data/resized/{dataset}"  # a folder: every fold's videos (storage: resized)
TEACHER = "models/{dataset}/fold{fold}/teacher_{teacher}.pt"
# protocol transfer: the models pre-trained on the source dataset (docs/method.md, section 2.5)
PRE_TEACHER = "models/{dataset}/fold{fold}/pretrained_teacher_{teacher}.pt"
PRE_STUDENT = "models/{dataset}/fold{fold}/pretrained_student_{student}.pt"
LABELS = "data/pseudo_labels/{dataset}/fold{fold}/{teacher}.npz"
STUDENT = "models/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.pt"
TEACHER_SCORES = "results/scores/{dataset}/fold{fold}/teacher_{teacher}.npz"
STUDENT_SCORES = "results/scores/{dataset}/fold{fold}/student_{teacher}_{student}_{method}.npz"
EVAL_BASELINES = "results/eval/{dataset}/fold{fold}/baselines_{teacher}.csv"
EVAL_STUDENTS = "results/eval/{dataset}/fold{fold}/students_{teacher}_{student}.csv"
# each evaluation CSV's per-video correctness (condi.evaluation.grid, docs/method.md section 5)
EVAL_BASELINES_VIDEOS = "results/eval/{dataset}/fold{fold}/baselines_{teacher}.videos.parquet"
EVAL_STUDENTS_VIDEOS = (
    "results/eval/{dataset}/fold{fold}/students_{teacher}_{student}.videos.parquet"
)
TABLE3_CSV = "results/table3.csv"
TABLE3_MD = "results/table3.md"
TABLE3_PAPER_CSV = "results/table3_paper.csv"  # written beside TABLE3_CSV by `condi tables table3`
METRICS_JSON = "results/metrics.json"
PLOT_CSV = "results/plots/accuracy_vs_k.csv"
PLOT_PNG = "results/plots/accuracy_vs_k.png"
PLOT_TEMPLATE = "accuracy_vs_k"  # the DVC plot template (in .dvc/plots/)
TABLE1_CSV, TABLE1_MD = "results/table1.csv", "results/table1.md"
TABLE2_CSV, TABLE2_MD = "results/table2.csv", "results/table2.md"
TIMING = "results/timing/{dataset}_fold{fold}_{teacher}_{student}.csv"
TABLE4_CSV, TABLE4_MD = "results/table4.csv", "results/table4.md"
TABLE5_CSV, TABLE5_MD = "results/table5.csv", "results/table5.md"
AMBIGUITY = "results/ambiguity/{dataset}_fold{fold}_{teacher}_{student}.csv"
AMBIGUITY_CSV, AMBIGUITY_MD = "results/ambiguity.csv", "results/ambiguity.md"
STAGE_TIMES_CSV, STAGE_TIMES_MD = "results/stage_times.csv", "results/stage_times.md"
FIGURES = "results/figures"
ACCURACY_VS_K = FIGURES + "/accuracy_vs_k_{dataset}_{teacher}_{student}"
ACCURACY_VS_COST = FIGURES + "/accuracy_vs_cost_{dataset}_{teacher}_{student}"
TIMELINE = FIGURES + "/ztilde_timeline_{dataset}_fold{fold}_{teacher}_{student}"
# the ablation: a variant is (method, protocol, source, detach, kd, seed); its DVC stages live
# apart. Its teacher-level outputs are per protocol (a scratch teacher is another teacher).
ABLATION_DVC = "ablation/dvc.yaml"
VARIANT = "{teacher}_{student}_{method}_{protocol}_{source}_detach{detach}_{kd}_seed{seed}"
ABL_TEACHER = "models/{dataset}/fold{fold}/ablation/teacher_{teacher}_{protocol}.pt"
ABL_LABELS = "data/pseudo_labels/{dataset}/fold{fold}/ablation/{teacher}_{protocol}_{source}.npz"
ABL_TEACHER_SCORES = "results/scores/{dataset}/fold{fold}/ablation/teacher_{teacher}_{protocol}.npz"
ABL_BASELINES = "results/eval/{dataset}/fold{fold}/ablation/baselines_{teacher}_{protocol}.csv"
ABL_BASELINES_VIDEOS = (
    "results/eval/{dataset}/fold{fold}/ablation/baselines_{teacher}_{protocol}.videos.parquet"
)
ABL_STUDENT = "models/{dataset}/fold{fold}/ablation/student_" + VARIANT + ".pt"
ABL_SCORES = "results/scores/{dataset}/fold{fold}/ablation/student_" + VARIANT + ".npz"
ABL_EVAL = "results/eval/{dataset}/fold{fold}/ablation/students_" + VARIANT + ".csv"
ABL_EVAL_VIDEOS = (
    "results/eval/{dataset}/fold{fold}/ablation/students_" + VARIANT + ".videos.parquet"
)
ABLATION_CSV, ABLATION_MD = "results/ablation.csv", "results/ablation.md"
# the speed report at paper scale (random weights; not in the default run): its own dvc.yaml
SPEED_DVC = "speed/dvc.yaml"
SPEED_CSV, SPEED_MD = "results/speed.csv", "results/speed.md"
# the pipeline's parts: the main one (dvc.yaml, Snakemake's `all`) and those apart from it,
# each in its own dvc.yaml so that a plain `dvc repro` (or `snakemake`) leaves them out
PART_DVC = {"main": "dvc.yaml", "ablation": ABLATION_DVC, "speed": SPEED_DVC}
LOGS = "logs"
# What a Snakemake rule runs (Snakemake's placeholders): the job's output goes to its log, and
# file descriptor 3 is Snakemake's own stderr, where long jobs write one progress line per
# epoch naming the log (condi.progress).
RULE_SHELL = "(export CONDI_PROGRESS_FD=3 CONDI_LOG={log:q}; {params.cmd}) 3>&2 > {log:q} 2>&1"
BENCHMARKS = "logs/benchmark"  # Snakemake's per-job time and memory (benchmark:)

# Students timed for Table IV (those of them in params `methods`): the registry's timed ones.
TIMING_METHODS = TIMED_METHODS
ABLATION_DEFAULTS: dict[str, Any] = {
    "design": "one_at_a_time",
    "protocols": ["transfer", "scratch"],
    "sources": ["train", "crossfit"],
    "detach": [False, True],
    "kd_reductions": ["class_mean", "batchmean"],
    "methods": ["st_ent", "bce_conf", "maxprob"],
    "cells": [],
    "seeds": [0, 1, 2],
    "K": [1, 3, 5],
}
# an ablation switch: (its wildcard, its params key, its list in params `ablation`)
SWITCHES = (
    ("protocol", "protocol", "protocols"),
    ("source", "pseudo_labels.source", "sources"),
    ("detach", "condi.detach_confidence_in_target", "detach"),
    ("kd", "condi.kd_reduction", "kd_reductions"),
)
VARIANT_WILDCARDS = (
    "dataset", "fold", "teacher", "student", "method", "protocol", "source", "detach", "kd", "seed"
)  # fmt: skip
# What a variant's wildcards set in params (the ablation's switches).
VARIANT_OVERRIDES = {**{key: "{" + w + "}" for w, key, _ in SWITCHES}, "seed": "{seed}"}
TEACHER_OVERRIDES = {"protocol": "{protocol}"}


# -- the table's vocabulary ------------------------------------------------------------------


@dataclass(frozen=True)
class Gather:
    """Input: the output ``output`` of every job of ``stage`` that agrees with this job on the
    wildcards ``match`` (all jobs when empty), in the table's order; ``methods`` keeps only
    those methods (Table IV's students)."""

    stage: str
    output: str
    match: tuple[str, ...] = ()
    methods: tuple[str, ...] | None = None
    fixed: dict[str, str] = field(default_factory=dict)  # wildcards set to a value
    only: dict[str, str] = field(default_factory=dict)  # nothing unless this job's wildcards are


@dataclass(frozen=True)
class ParamPath:
    """Input: a path that is a params value (``datasets.{dataset}.root``, an adopted teacher's
    checkpoint). Never on the command line: the command reads it from params.yaml."""

    key: str
    optional: bool = False


@dataclass(frozen=True)
class Out:
    """An output. ``cmd=False``: written beside another output, not named on the command line.
    ``kind``: ``out`` (DVC-cached), ``folder`` (a DVC-cached folder: Snakemake's
    ``directory()``), ``metric`` or ``plot`` (DVC metrics/plots, kept in git).
    ``over``: one file per (dataset, teacher, student) (the figures). ``caption``: the
    Snakemake report's caption (workflow/report/<caption>.rst) and ``category``."""

    pattern: str
    cmd: bool = True
    kind: str = "out"
    over: tuple[str, ...] = ()
    caption: str | None = None
    category: str = "Tables"


@dataclass(frozen=True)
class Clips:
    """Input: a dataset's decoded clips, where its ``datasets.<d>.storage`` keeps them: the
    clip cache (``cache``) or the resized store (``resized``; docs/method.md, section 7)."""

    paths: tuple[tuple[str, str], ...] = (("cache", CACHE), ("resized", RESIZED))

    def pattern(self, config: dict[str, Any], w: dict[str, Any]) -> str:
        return dict(self.paths)[storage_of(config, w["dataset"])]


def storage_of(config: dict[str, Any], dataset: str) -> str:
    """``datasets.<dataset>.storage`` (default ``cache``)."""
    return config["datasets"][dataset].get("storage") or "cache"


Input = str | Gather | ParamPath | Clips | tuple[Gather, ...]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline; a job is a stage with its wildcards filled in."""

    name: str
    command: str  # the condi subcommand, e.g. "train teacher"
    wildcards: tuple[str, ...]
    inputs: dict[str, Input]
    outputs: dict[str, Out]
    params: tuple[str, ...]  # params.yaml keys (may hold {wildcards})
    overrides: dict[str, str] = field(default_factory=dict)  # params set from wildcards
    part: str = "main"  # main | ablation (ablation/dvc.yaml, `snakemake ablation`) | speed
    when: Callable[[dict[str, Any]], bool] | None = None  # does the stage exist for config?
    threads: str = "params"  # params | all (timing: every core, so nothing runs beside it)
    gpu: bool = False  # asks for a GPU when params device is cuda
    mem_mb: int = 2000
    runtime: int = 10  # minutes (cluster executors)
    local: bool = False  # Snakemake localrules: no cluster job (tables and figures)
    storage: str | None = None  # only for the datasets with this storage (cache | resized)
    # the values of its dataset wildcard: "target" (the datasets methods are evaluated on),
    # "source" (pretrain.dataset under protocol transfer) or "all" (both: data preparation)
    datasets: str = "target"

    @property
    def ablation(self) -> bool:
        return self.part == "ablation"


def is_transfer(config: dict[str, Any]) -> bool:
    """protocol transfer: the pre-training stages exist (docs/method.md, section 2.5)."""
    return config.get("protocol", "scratch") == "transfer"


def has_split(config: dict[str, Any]) -> bool:
    """condi_sr is trained: Table V (its Ks split) and the z~ timelines exist."""
    return "condi_sr" in config["methods"]


def _table(
    name: str, paths: tuple[str, str], caption: str, category: str = "Tables", **kw: Any
) -> Stage:
    """A local stage writing a table as CSV + Markdown (``--out-csv``, ``--out-md``)."""
    out = {
        "out_csv": Out(paths[0], caption=caption, category=category),
        "out_md": Out(paths[1], caption=caption, category=category),
    }
    return Stage(name, kw.pop("command"), (), kw.pop("inputs"), out, kw.pop("params", ()),
                 local=True, **kw)  # fmt: skip


ROOT = ParamPath("datasets.{dataset}.root")
DSFT = ("dataset", "fold", "teacher")
PAIR = ("dataset", "fold", "teacher", "student")
DATA = {"index": INDEX, "cache": Clips()}  # --cache: a clip cache or a resized store
RUN_KEYS = ("data", "evaluation.batch_size", "seed", "device")  # what forward passes read
# the grid records the switches a student was trained with as columns of the long tables
EVAL_KEYS = ("evaluation", "pseudo_labels.source", "condi.detach_confidence_in_target",
             "condi.kd_reduction", "protocol", "seed")  # fmt: skip
TRAINING = dict(gpu=True, mem_mb=16000, runtime=24 * 60)
SCORING = dict(gpu=True, mem_mb=8000, runtime=120)
GRID = dict(mem_mb=4000, runtime=30)
STUDENT_SCORES_OF_PAIR = Gather("student_scores", "out", PAIR)
# protocol transfer: the pre-trained model a target model starts from (none under scratch,
# where the pretrain stages have no jobs, and none for an adopted teacher)
PRETRAINED_TEACHER = Gather("pretrain_teacher", "out", ("teacher",))
PRETRAINED_STUDENT = Gather("pretrain_student", "out", ("student",))
# an ablation variant under protocol transfer starts from them too (scratch: from nothing)
ABL_PRETRAINED_TEACHER = Gather(
    "pretrain_teacher", "out", ("teacher",), only={"protocol": "transfer"}
)
ABL_PRETRAINED_STUDENT = Gather(
    "pretrain_student", "out", ("student",), only={"protocol": "transfer"}
)
FINETUNE_TEACHER = ("protocol", "training.finetune.teacher")
FINETUNE_STUDENT = ("protocol", "training.finetune.student")

# fmt: off
_STAGE_LIST = [
    Stage("synth", "data synth", ("dataset",), {},
          {"root": Out(ROOT.key, cmd=False, kind="root")},
          ("datasets.{dataset}.synth", "datasets.{dataset}.root"), runtime=30, datasets="all"),
    Stage("index", "data index", ("dataset", "fold"), {"root": ROOT}, {"out": Out(INDEX)},
          # the whole dataset entry: kind, root, folds and the optional group_pattern (DVC
          # needs every key it watches to be in params.yaml)
          ("datasets.{dataset}", "data.clip_len", "data.val_fraction", "seed"),
          mem_mb=4000, runtime=120, datasets="all"),
    Stage("cache", "data cache", ("dataset", "fold"), {"root": ROOT, "index": INDEX},
          {"out": Out(CACHE)}, ("datasets.{dataset}.root", "data.short_side"),
          mem_mb=8000, runtime=600, storage="cache", datasets="all"),
    # storage: resized (condi.data.resized): every fold's videos re-encoded once, a folder
    Stage("resize", "data resize", ("dataset",),
          {"root": ROOT, "index": Gather("index", "out", ("dataset",))},
          {"out": Out(RESIZED, kind="folder")},
          ("datasets.{dataset}.root", "data.short_side", "resize"),
          mem_mb=4000, runtime=24 * 60, storage="resized", datasets="all"),
    # protocol transfer (docs/method.md, section 2.5): teacher and student from scratch on the
    # source dataset (cross-entropy), then fine-tuned on the target by the stages below
    Stage("pretrain_teacher", "train pretrain", DSFT, DATA, {"out": Out(PRE_TEACHER)},
          ("pretrain.teacher", "teachers.{teacher}", *RUN_KEYS), when=is_transfer,
          datasets="source", **TRAINING),
    Stage("pretrain_student", "train pretrain", ("dataset", "fold", "student"), DATA,
          {"out": Out(PRE_STUDENT)}, ("pretrain.student", "students.{student}", *RUN_KEYS),
          when=is_transfer, datasets="source", **TRAINING),
    Stage("train_teacher", "train teacher", DSFT,
          {**DATA, "checkpoint": ParamPath("teachers.{teacher}.checkpoint", optional=True),
           "pretrained": PRETRAINED_TEACHER},
          {"out": Out(TEACHER)},
          ("teachers.{teacher}", "training.teacher", *FINETUNE_TEACHER, *RUN_KEYS), **TRAINING),
    # the crossfit fold teachers are fine-tuned like the teacher: the pre-trained one is an input
    Stage("pseudo_labels", "train pseudo-labels", DSFT,
          {**DATA, "checkpoint": TEACHER, "pretrained": PRETRAINED_TEACHER},
          {"out": Out(LABELS)},
          ("pseudo_labels", "teachers.{teacher}", "training.teacher", *FINETUNE_TEACHER,
           *RUN_KEYS), **SCORING),
    Stage("train_student", "train student", (*PAIR, "method"),
          {**DATA, "pseudo_labels": LABELS, "pretrained": PRETRAINED_STUDENT},
          {"out": Out(STUDENT)},
          ("students.{student}", "training.student", *FINETUNE_STUDENT, "condi", "st_conf",
           *RUN_KEYS), **TRAINING),
    Stage("teacher_scores", "evaluate scores", DSFT, {**DATA, "checkpoint": TEACHER},
          {"out": Out(TEACHER_SCORES)}, RUN_KEYS, **SCORING),
    Stage("student_scores", "evaluate scores", (*PAIR, "method"),
          {**DATA, "checkpoint": STUDENT}, {"out": Out(STUDENT_SCORES)}, RUN_KEYS, **SCORING),
    Stage("evaluate_baselines", "evaluate grid", DSFT,
          {"root": ROOT, "index": INDEX, "teacher_scores": TEACHER_SCORES},
          {"out": Out(EVAL_BASELINES), "videos": Out(EVAL_BASELINES_VIDEOS)}, EVAL_KEYS, **GRID),
    Stage("evaluate_students", "evaluate grid", PAIR,
          {"root": ROOT, "index": INDEX, "teacher_scores": TEACHER_SCORES,
           "student_scores": STUDENT_SCORES_OF_PAIR},
          {"out": Out(EVAL_STUDENTS), "videos": Out(EVAL_STUDENTS_VIDEOS)}, EVAL_KEYS, **GRID),
    # tables.bootstrap and seed: the paired bootstrap intervals (docs/method.md, section 5)
    Stage("table3", "tables table3", (),
          {"eval": (Gather("evaluate_baselines", "out"), Gather("evaluate_students", "out")),
           "videos": (Gather("evaluate_baselines", "videos"),
                      Gather("evaluate_students", "videos"))},
          {"out_csv": Out(TABLE3_CSV, caption="table3_csv"),
           "out_md": Out(TABLE3_MD, caption="table3_md"),
           "paper": Out(TABLE3_PAPER_CSV, cmd=False, caption="table3_md")},
          ("tables", "seed"), local=True),
    Stage("metrics", "pipeline metrics", (), {"table3": TABLE3_CSV},
          {"out": Out(METRICS_JSON, kind="metric", caption="metrics", category="Metrics"),
           "plots": Out(PLOT_CSV, kind="plot", caption="accuracy_vs_k_csv", category="Figures"),
           "figure": Out(PLOT_PNG, kind="plot", caption="accuracy_vs_k", category="Figures")},
          (), local=True),
    _table("table1", (TABLE1_CSV, TABLE1_MD), "table1", command="data table1",
           inputs={"index": Gather("index", "out")}),
    _table("table2", (TABLE2_CSV, TABLE2_MD), "table2", command="models table2",
           inputs={"index": Gather("index", "out")},
           params=("teachers", "students", "data.clip_len", "data.crop_size")),
    # threads is a result here: the time per video depends on it; the job takes every core
    Stage("timing", "report timing", PAIR,
          {**DATA, "teacher_ckpt": TEACHER, "teacher_scores": TEACHER_SCORES,
           "student_ckpt": Gather("train_student", "out", PAIR, TIMING_METHODS),
           "student_scores": Gather("student_scores", "out", PAIR, TIMING_METHODS)},
          {"out": Out(TIMING)}, ("timing", "evaluation", "data", "seed", "device", "threads"),
          threads="all", **SCORING),
    _table("table4", (TABLE4_CSV, TABLE4_MD), "table4", command="report table4",
           inputs={"timing": Gather("timing", "out")}),
    _table("table5", (TABLE5_CSV, TABLE5_MD), "table5", command="report table5",
           inputs={"timing": Gather("timing", "out")}, when=has_split),
    # the grid at K = 1, 3, 5 of its own (evaluation.K is not read)
    Stage("ambiguity", "report ambiguity", PAIR,
          {"root": ROOT, "index": INDEX, "teacher_scores": TEACHER_SCORES,
           "student_scores": STUDENT_SCORES_OF_PAIR},
          {"out": Out(AMBIGUITY)},
          ("evaluation.Ks", "evaluation.Ks_K", "evaluation.random_seeds", "seed"), **GRID),
    _table("ambiguity_table", (AMBIGUITY_CSV, AMBIGUITY_MD), "ambiguity",
           command="report ambiguity-table", inputs={"inputs": Gather("ambiguity", "out")}),
    Stage("figures", "report figures", (), {"table3": TABLE3_CSV, "timing": Gather("timing", "out")},
          {"out_dir": Out(FIGURES, kind="dir"),
           **{f"{name}_{fmt}": Out(f"{stem}.{fmt}", cmd=False, over=PAIR,
                                   caption="figures" if fmt == "png" else None, category="Figures")
              for name, stem in (("k", ACCURACY_VS_K), ("cost", ACCURACY_VS_COST))
              for fmt in ("png", "svg")}},
          (), local=True),
    Stage("timeline", "report timeline", PAIR,
          {"root": ROOT, "index": INDEX, "teacher_scores": TEACHER_SCORES,
           "student_scores": Gather("student_scores", "out", PAIR, fixed={"method": "condi_sr"})},
          {"out": Out(TIMELINE + ".png", caption="ztilde_timeline", category="Figures"),
           "svg": Out(TIMELINE + ".svg", cmd=False)},
          (), when=has_split, local=True),
    # The ablation (docs/method.md, "Beyond the paper"), not in the default target: its jobs
    # set the variant's switches from their wildcards (VARIANT_OVERRIDES).
    # A variant's teacher: trained per protocol of the ablation (under the params' own protocol
    # the same job as train_teacher, so the same weights), with its labels, scores, baselines.
    Stage("ablation_train_teacher", "train teacher", (*DSFT, "protocol"),
          {**DATA, "checkpoint": ParamPath("teachers.{teacher}.checkpoint", optional=True),
           "pretrained": ABL_PRETRAINED_TEACHER},
          {"out": Out(ABL_TEACHER)},
          ("teachers.{teacher}", "training.teacher", "training.finetune.teacher", *RUN_KEYS),
          overrides=TEACHER_OVERRIDES, part="ablation", **TRAINING),
    Stage("ablation_pseudo_labels", "train pseudo-labels", (*DSFT, "protocol", "source"),
          {**DATA, "checkpoint": ABL_TEACHER, "pretrained": ABL_PRETRAINED_TEACHER},
          {"out": Out(ABL_LABELS)},
          ("pseudo_labels.crossfit_folds", "teachers.{teacher}", "training.teacher",
           "training.finetune.teacher", *RUN_KEYS),
          overrides={**TEACHER_OVERRIDES, "pseudo_labels.source": "{source}"}, part="ablation",
          **TRAINING),
    Stage("ablation_teacher_scores", "evaluate scores", (*DSFT, "protocol"),
          {**DATA, "checkpoint": ABL_TEACHER}, {"out": Out(ABL_TEACHER_SCORES)}, RUN_KEYS,
          part="ablation", **SCORING),
    Stage("ablation_evaluate_baselines", "evaluate grid", (*DSFT, "protocol"),
          {"root": ROOT, "index": INDEX, "teacher_scores": ABL_TEACHER_SCORES},
          {"out": Out(ABL_BASELINES), "videos": Out(ABL_BASELINES_VIDEOS)}, ("evaluation",),
          overrides=TEACHER_OVERRIDES, part="ablation", **GRID),
    Stage("ablation_train_student", "train student", VARIANT_WILDCARDS,
          {**DATA, "pseudo_labels": ABL_LABELS, "pretrained": ABL_PRETRAINED_STUDENT},
          {"out": Out(ABL_STUDENT)},
          ("students.{student}", "training.student", "training.finetune.student", "condi.tau",
           "condi.lam", "condi.mu", "condi.lr_div", "condi.conf_lr_div", "st_conf", "data",
           "evaluation.batch_size", "device"),
          overrides=VARIANT_OVERRIDES, part="ablation", **TRAINING),
    Stage("ablation_student_scores", "evaluate scores", VARIANT_WILDCARDS,
          {**DATA, "checkpoint": ABL_STUDENT}, {"out": Out(ABL_SCORES)}, RUN_KEYS,
          part="ablation", **SCORING),
    Stage("ablation_evaluate", "evaluate grid", VARIANT_WILDCARDS,
          {"root": ROOT, "index": INDEX, "teacher_scores": ABL_TEACHER_SCORES,
           "student_scores": ABL_SCORES},
          {"out": Out(ABL_EVAL), "videos": Out(ABL_EVAL_VIDEOS)}, ("evaluation",),
          overrides=VARIANT_OVERRIDES, part="ablation",
          **GRID),
    # the time every stage took in the last Snakemake run (its benchmark: files): made after
    # every other final output, so that all of the run's jobs are in
    _table("stage_times", (STAGE_TIMES_CSV, STAGE_TIMES_MD), "stage_times",
           category="Stage times", command="report stage-times",
           inputs={"after": tuple(Gather(name, out) for name, out in (
               ("table3", "out_csv"), ("metrics", "out"), ("table1", "out_csv"),
               ("table2", "out_csv"), ("table4", "out_csv"), ("table5", "out_csv"),
               ("ambiguity_table", "out_csv"), ("figures", "k_png"), ("figures", "cost_png"),
               ("timeline", "out")))}),
    # tables.bootstrap and seed: the paired intervals over test videos (seeds averaged)
    _table("ablation_table", (ABLATION_CSV, ABLATION_MD), "ablation", command="tables ablation",
           inputs={"students": Gather("ablation_evaluate", "out"),
                   "baselines": Gather("ablation_evaluate_baselines", "out"),
                   "videos": (Gather("ablation_evaluate", "videos"),
                              Gather("ablation_evaluate_baselines", "videos"))},
           params=("ablation.K", "tables.bootstrap", "seed", *(k for _, k, _ in SWITCHES)),
           part="ablation"),
    # ConDi's time per video at paper scale (random weights, generated videos), dense against
    # K and the Ks split, models alone and end to end with decoding (docs/method.md, section
    # 6): `snakemake --cores all results/speed.csv` or `dvc repro speed/dvc.yaml`
    Stage("speed", "report speed", (), {},
          {"out_csv": Out(SPEED_CSV, caption="speed", category="Speed"),
           "out_md": Out(SPEED_MD, caption="speed", category="Speed")},
          ("speed", "seed", "threads"), part="speed", threads="all", gpu=True, mem_mb=16000,
          runtime=240),
]
# fmt: on
STAGES: dict[str, Stage] = {s.name: s for s in _STAGE_LIST}
# the stage a command is when run by hand without --stage: its first in the table
DEFAULT_STAGE = {s.command: s.name for s in reversed(_STAGE_LIST)}


def option(name: str) -> str:
    """The command-line option of an input, output or wildcard: ``--teacher-scores``."""
    return "--" + name.replace("_", "-")


# -- params of a stage -----------------------------------------------------------------------


def _get(tree: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def param_keys(stage: Stage, wildcards: dict[str, Any]) -> list[str]:
    """The stage's params keys for a job (DVC's ``params:``, Snakemake's rerun trigger)."""
    return [k.format(**wildcards) for k in stage.params]


def narrow(params: dict[str, Any], stage: Stage, wildcards: dict[str, Any]) -> dict[str, Any]:
    """The part of (validated) ``params`` the stage may read: its keys, its wildcards'
    overrides, its params paths (a dataset root: a dependency, watched as a path) and the
    runtime settings. Reading anything else is a KeyError, so a stage cannot
    depend on a value that DVC and Snakemake do not watch for it."""
    out: dict[str, Any] = {}
    paths = [i.key.format(**wildcards) for i in stage.inputs.values() if isinstance(i, ParamPath)]
    keys = [*param_keys(stage, wildcards), *stage.overrides, *paths, *RUNTIME_KEYS]
    for key in keys:
        found, value = _get(params, key)
        if found:
            _put(out, key, copy.deepcopy(value))
    return out


def apply_variant(params: dict[str, Any], stage: Stage, wildcards: dict[str, Any]) -> None:
    """Set the params a job's wildcards choose (the ablation's switches), in place."""
    import yaml

    for key, template in stage.overrides.items():
        _put(params, key, yaml.safe_load(template.format(**wildcards)))


def values(params: dict[str, Any], stage: Stage, wildcards: dict[str, Any]) -> dict[str, Any]:
    """``{key: value}`` of the stage's params keys for a job (logged to MLflow, hashed)."""
    return {k: _get(params, k)[1] for k in [*param_keys(stage, wildcards), *stage.overrides]}


def params_hash(vals: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of a job's params values: the resume state's and MLflow's key."""
    text = json.dumps(vals, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_params(
    params: dict[str, Any], stage: Stage, wildcards: dict[str, Any], source: str = PARAMS_FILE
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(narrowed params, values)`` of a job from the validated ``params``: the job's variant
    applied (and validated), then narrowed to the stage's keys (:func:`narrow`)."""
    if stage.overrides:
        from condi.config import validate

        params = copy.deepcopy(params)
        apply_variant(params, stage, wildcards)
        params = validate(params, source=f"{source} ({job_name(stage.name, wildcards)})")
    return narrow(params, stage, wildcards), values(params, stage, wildcards)


# -- jobs ------------------------------------------------------------------------------------


def ablation_params(config: dict[str, Any]) -> dict[str, Any]:
    return {**ABLATION_DEFAULTS, **(config.get("ablation") or {})}


def _wildcard_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def ablation_base(config: dict[str, Any]) -> dict[str, str]:
    """The variant the one-at-a-time design moves around: the params' own switches."""
    return {w: _wildcard_value(_get(config, key)[1]) for w, key, _ in SWITCHES}


def ablation_variants(config: dict[str, Any]) -> list[dict[str, Any]]:
    """``{method, protocol, source, detach, kd, seed}`` of every ablation student (wildcard
    values: ``detach`` is "false" | "true"), each for every seed of ``ablation.seeds``:

    * ``design: one_at_a_time`` (default): ``condi_sr`` at the base (the params' own protocol,
      pseudo-label source, detach and KD reduction) and at each other value of each switch's
      list with the rest at the base; ``grid``: ``condi_sr`` at every combination of the lists;
    * ``methods`` at the base switches, under every protocol of ``protocols`` (the rivals of
      each protocol's condi_sr);
    * ``cells``: extra cells, each a mapping of switches (and ``method``, default condi_sr) that
      differ from the base.

    ``protocol: transfer`` variants need the pre-training stages, which exist under the params'
    ``protocol: transfer`` only: under ``scratch`` they are left out. Duplicates are dropped."""
    ab = ablation_params(config)
    base = ablation_base(config)
    lists = {w: [_wildcard_value(v) for v in ab[name]] for w, _, name in SWITCHES}
    cells: list[dict[str, str]] = []
    if ab["design"] == "grid":
        combos: list[dict[str, str]] = [{}]
        for w, _, _ in SWITCHES:
            values = list(dict.fromkeys([base[w], *lists[w]]))
            combos = [{**c, w: v} for c in combos for v in values]
        cells += [{"method": "condi_sr", **c} for c in combos]
    else:
        cells.append({"method": "condi_sr", **base})
        for w, _, _ in SWITCHES:
            cells += [{"method": "condi_sr", **base, w: v} for v in lists[w] if v != base[w]]
    for m in ab["methods"]:
        for protocol in dict.fromkeys([base["protocol"], *lists["protocol"]]):
            cells.append({"method": m, **base, "protocol": protocol})
    keys = {"protocol": "protocol", "source": "source", "detach": "detach", "kd": "kd_reduction"}
    for extra in ab["cells"]:
        cell = {"method": extra.get("method", "condi_sr"), **base}
        cell.update({w: _wildcard_value(extra[k]) for w, k in keys.items() if k in extra})
        cells.append(cell)
    if config.get("protocol", "scratch") != "transfer":
        cells = [c for c in cells if c["protocol"] != "transfer"]
    unique = list({json.dumps(c, sort_keys=True): c for c in cells}.values())
    return [{**c, "seed": str(seed)} for c in unique for seed in ab["seeds"]]


def _choices(config: dict[str, Any], stage: Stage, name: str, w: dict[str, Any]) -> list[str]:
    """The values of wildcard ``name`` for a job of ``stage`` whose earlier wildcards are ``w``."""
    if name == "dataset":
        from condi.config import pipeline_datasets, source_dataset, target_datasets

        if stage.datasets == "all":
            names = pipeline_datasets(config)
        elif stage.datasets == "source":
            names = [d for d in [source_dataset(config)] if d is not None]
        else:
            names = target_datasets(config)
        ds = config["datasets"]
        return [
            d
            for d in names
            if (stage.name != "synth" or "synth" in ds[d])
            and (stage.storage is None or storage_of(config, d) == stage.storage)
        ]
    if name == "fold":
        return [str(f) for f in config["datasets"][w["dataset"]].get("folds", [1])]
    if name == "teacher" and stage.name == "pretrain_teacher":  # an adopted one is not trained
        return [t for t, spec in config["teachers"].items() if not spec.get("checkpoint")]
    if name in ("teacher", "student"):
        return list(config[name + "s"])
    if stage.ablation and name in ("method", "protocol", "source", "detach", "kd", "seed"):
        fixed = {k: v for k, v in w.items() if k in VARIANT_WILDCARDS[4:]}
        variants = ablation_variants(config)
        if stage.name in ("ablation_train_teacher", "ablation_teacher_scores",
                          "ablation_evaluate_baselines", "ablation_pseudo_labels"):  # fmt: skip
            variants = [{k: v[k] for k in ("protocol", "source")} for v in variants]
        variants = [v for v in variants if fixed.items() <= v.items()]
        return list(dict.fromkeys(v[name] for v in variants))
    if name == "method":
        return list(config["methods"])
    raise KeyError(f"{stage.name}: unknown wildcard {name}")


def job_wildcards(config: dict[str, Any], stage: Stage) -> list[dict[str, str]]:
    """The wildcards of every job of ``stage`` for ``config``, in the table's order."""
    if stage.when is not None and not stage.when(config):
        return []
    out: list[dict[str, str]] = [{}]
    for name in stage.wildcards:
        out = [{**w, name: v} for w in out for v in _choices(config, stage, name, w)]
    return out


def job_name(stage: str, w: dict[str, Any]) -> str:
    """``train_student@synthetic-1-resnext14-resnext14half-condi_sr``: DVC's name for the job."""
    return f"{stage}@{'-'.join(str(x) for x in w.values())}" if w else stage


def dvc_target(
    stage: Stage, w: dict[str, Any], split: frozenset[str] | set[str] = frozenset()
) -> str:
    """The job as a ``dvc`` target (the ablation's live in their own dvc.yaml); ``split``:
    the stages whose jobs are DVC stages of their own (:func:`split_stages`)."""
    name = job_name(stage.name, w)
    if stage.name in split and w:
        name = name.replace("@", "--", 1)
    return name if stage.part == "main" else f"{PART_DVC[stage.part]}:{name}"


def param_path(config: dict[str, Any], pp: ParamPath, w: dict[str, Any]) -> str | None:
    found, value = _get(config, pp.key.format(**w))
    if not found or value in (None, ""):
        if pp.optional:
            return None
        raise KeyError(f"params: {pp.key.format(**w)} is not set")
    return str(value)


def gathered(
    config: dict[str, Any], g: Gather, w: dict[str, Any], show: dict[str, str] | None = None
) -> list[str]:
    """The paths a :class:`Gather` input names for the job with wildcards ``w`` (the matched
    wildcards written as ``show`` gives them: DVC's placeholders)."""
    src = STAGES[g.stage]
    out: list[str] = []
    if any(str(w.get(k)) != v for k, v in g.only.items()):
        return out
    for sw in job_wildcards(config, src):
        if any(str(sw[k]) != str(w[k]) for k in g.match):
            continue
        if any(sw.get(k) != v for k, v in g.fixed.items()):
            continue
        if g.methods is not None and sw.get("method") not in g.methods:
            continue
        shown = {**sw, **{k: (show or w)[k] for k in g.match}}
        o = src.outputs[g.output]
        out += _expand_over(config, o, shown) if o.over else [o.pattern.format(**shown)]
    return out


def _expand_over(config: dict[str, Any], out: Out, w: dict[str, Any]) -> list[str]:
    if out.kind == "root":
        return [param_path(config, ROOT, w)]
    if not out.over:
        return [out.pattern.format(**w)]
    rows: list[dict[str, Any]] = [{}]
    for name in out.over:
        if name != "fold":
            st = STAGES["timing"]
            rows = [{**r, name: v} for r in rows for v in _choices(config, st, name, r)]
    return [out.pattern.format(**r) for r in rows]


@dataclass
class Job:
    """One job: the paths on its command line and every file it reads and writes."""

    stage: Stage
    wildcards: dict[str, str]
    inputs: dict[str, list[str]]  # on the command line: input name -> paths
    params_paths: dict[str, str]  # params key -> path (a dataset root, a checkpoint)
    outputs: dict[str, list[str]]  # output name -> files

    @property
    def name(self) -> str:
        return job_name(self.stage.name, self.wildcards)

    @property
    def deps(self) -> list[str]:
        paths = [p for ps in self.inputs.values() for p in ps] + list(self.params_paths.values())
        return list(dict.fromkeys(paths))


def job(
    config: dict[str, Any], stage: Stage, w: dict[str, Any], show: dict[str, str] | None = None
) -> Job:
    """The job of ``stage`` with wildcards ``w``; with ``show``, its paths hold those
    representations of the wildcards (DVC's ``${item.x}``) instead of their values."""
    fmt = show or w
    inputs: dict[str, list[str]] = {}
    params_paths: dict[str, str] = {}
    for name, spec in stage.inputs.items():
        if isinstance(spec, ParamPath):
            path = param_path(config, spec, w)
            if path is not None:
                params_paths[spec.key.format(**w)] = path
        elif isinstance(spec, str):
            inputs[name] = [spec.format(**fmt)]
        elif isinstance(spec, Clips):
            inputs[name] = [spec.pattern(config, w).format(**fmt)]
        else:
            parts = spec if isinstance(spec, tuple) else (spec,)
            inputs[name] = [p for g in parts for p in gathered(config, g, w, show)]
    outputs = {
        name: _expand_over(config, o, w)
        if o.kind == "root" or o.over
        else [o.pattern.format(**fmt)]
        for name, o in stage.outputs.items()
    }
    return Job(stage, dict(w), inputs, params_paths, outputs)


def jobs(
    config: dict[str, Any], ablation: bool | None = None, part: str | None = None
) -> list[Job]:
    """Every job for ``config`` in topological order (the table's), optionally only the
    ablation's (``ablation=True``), those outside it (``False``), or one ``part``'s."""
    return [
        job(config, st, w)
        for st in STAGES.values()
        if (ablation is None or st.ablation == ablation) and (part is None or st.part == part)
        for w in job_wildcards(config, st)
    ]


FINAL_STAGES = {
    "main": ["table3", "metrics", "table1", "table2", "table4", "table5"]
    + ["ambiguity_table", "figures", "timeline", "stage_times"],
    "ablation": ["ablation_table"],
    "speed": ["speed"],
}


def targets(config: dict[str, Any], ablation: bool = False, part: str | None = None) -> list[str]:
    """The final outputs of a part: Snakemake's ``all`` (``main``, the default) or
    ``ablation`` target (``ablation=True``), or the speed report's (``part="speed"``)."""
    final = FINAL_STAGES[part or ("ablation" if ablation else "main")]
    out = []
    for name in final:
        st = STAGES[name]
        for w in job_wildcards(config, st):
            j = job(config, st, w)
            out += [f for n, o in st.outputs.items() if o.kind != "dir" for f in j.outputs[n]]
    return out


# -- the command line ------------------------------------------------------------------------


def command(
    stage: Stage,
    wildcard: Callable[[str], str],
    inp: Callable[[str], str],
    out: Callable[[str], str],
    params_file: str = PARAMS_FILE,
) -> str:
    """``condi <command> --params P --stage S --<wildcard> W ... --<input> PATH ... --<output>
    PATH ...``, with each piece filled by the runner's own references (Snakemake's
    ``{wildcards.x:q}``, DVC's ``${item.x}`` or quoted paths)."""
    parts = ["condi", stage.command, "--params", shlex.quote(params_file), "--stage", stage.name]
    parts += [f"{option(w)} {wildcard(w)}" for w in stage.wildcards]
    for n, spec in stage.inputs.items():
        value = "" if isinstance(spec, ParamPath) else inp(n)
        if value:  # an empty list (no Table IV student) leaves its option out
            parts.append(f"{option(n)} {value}")
    parts += [f"{option(n)} {out(n)}" for n, o in stage.outputs.items() if o.cmd]
    return " ".join(parts)


def shell_command(stage: Stage, wildcards: dict[str, Any], inputs: Any, outputs: Any) -> str:
    """A job's command line with every value shell-quoted (what Snakemake runs): ``inputs``
    and ``outputs`` are Snakemake's named files (attributes by name)."""

    def paths(value: Any) -> str:
        items = [value] if isinstance(value, str) else list(value)
        return " ".join(shlex.quote(str(p)) for p in items)

    return command(
        stage,
        lambda w: shlex.quote(str(wildcards[w])),
        lambda n: paths(getattr(inputs, n)),
        lambda n: paths(
            stage.outputs[n].pattern if stage.outputs[n].kind == "dir" else getattr(outputs, n)
        ),
    )


def log_pattern(stage: Stage, folder: str = LOGS, suffix: str = ".log") -> str:
    """``logs/<stage>/{dataset}_fold{fold}_....log`` (``logs/<stage>.log`` without wildcards)."""
    names = ["{root}"] if stage.name == "synth" else [f"{{{w}}}" for w in stage.wildcards]
    names = [n if n != "{fold}" else "fold{fold}" for n in names]
    return (
        f"{folder}/{stage.name}/{'_'.join(names)}{suffix}"
        if names
        else f"{folder}/{stage.name}{suffix}"
    )


# -- dvc.yaml --------------------------------------------------------------------------------

_ITEM = re.compile(r"\$\{item\.(\w+)\}")


def _quote(path: str) -> str:
    """A path for a DVC command: shell-quoted around its ``${item.x}`` placeholders (wildcard
    values are plain names: the schema allows no shell characters in them)."""
    pieces = _ITEM.split(path)
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"${{item.{piece}}}")
        elif piece:
            out.append(shlex.quote(piece) if re.search(r"[^\w@%+=:,./-]", piece) else piece)
    return "".join(out)


def _dvc_entry(
    config: dict[str, Any], st: Stage, w: dict[str, Any], show: dict[str, str] | None
) -> dict[str, Any]:
    """The DVC stage of the job ``w``; with ``show`` (``${item.x}`` placeholders) a foreach
    template, whose params paths are then item fields. Params paths are DVC references to
    params.yaml (``${datasets.synthetic.root}``): an edit there changes no dvc.yaml."""
    j = job(config, st, w, show)

    def ref(key: str) -> str:
        return f"${{item.{key.split('.')[-1]}}}" if show else "${" + key + "}"

    cmd = command(
        st,
        lambda name: (show or w)[name],
        lambda name: " ".join(_quote(p) for p in j.inputs[name]),
        lambda name: _quote(j.outputs[name][0]),
    )
    entry: dict[str, Any] = {"cmd": cmd}
    deps = [p for ps in j.inputs.values() for p in ps] + [ref(k) for k in j.params_paths]
    if deps:
        entry["deps"] = list(dict.fromkeys(deps))
    keys = param_keys(st, show or w)
    if keys:
        entry["params"] = keys
    kinds = (("out", "outs"), ("folder", "outs"), ("root", "outs"), ("metric", "metrics"),
             ("plot", "plots"))  # fmt: skip
    for kind, key in kinds:
        files: list[Any] = []
        for name, o in st.outputs.items():
            if o.kind != kind:
                continue
            for f in j.outputs[name]:
                if kind == "root":
                    files.append(ref(ROOT.key.format(**w)))
                elif kind in ("out", "folder"):
                    files.append(f)
                elif f.endswith(".csv"):
                    files.append(
                        {f: {"cache": False, "template": PLOT_TEMPLATE, "x": "K", "y": "top1"}}
                    )
                else:
                    files.append({f: {"cache": False}})
        if files:
            entry.setdefault(key, []).extend(files)
    return entry


def _templates(config: dict[str, Any], st: Stage) -> tuple[list[dict[str, str]], list[dict]]:
    """A stage's jobs and their DVC entries with ``${item.x}`` placeholders."""
    ws = job_wildcards(config, st)
    show = {k: f"${{item.{k}}}" for k in st.wildcards}
    return ws, [_dvc_entry(config, st, w, show) for w in ws]


def split_stages(config: dict[str, Any]) -> set[str]:
    """The stages whose jobs differ in shape (an adopted teacher; under protocol transfer the
    ablation's scratch variants, which have no pre-trained input): one DVC stage per job,
    named ``stage--<job>`` (:func:`dvc_yaml`)."""
    out = set()
    for st in STAGES.values():
        if st.wildcards:
            ws, templates = _templates(config, st)
            if ws and not all(t == templates[0] for t in templates):
                out.add(st.name)
    return out


def dvc_yaml(config: dict[str, Any], part: str = "main") -> dict[str, Any]:
    """``dvc.yaml`` (``part="main"``: the stages of Snakemake's ``all``),
    ``ablation/dvc.yaml`` (``"ablation"``) or ``speed/dvc.yaml`` (``"speed"``), whose paths are
    relative to the repository root (their ``wdir``). A stage with wildcards is one ``foreach`` stage whose items are its jobs'
    wildcards (and references to their params paths), so its jobs are named as in MLflow
    (``train_teacher@synthetic-1-resnext14``); jobs that differ in shape get a stage each."""
    if part not in PART_DVC:
        raise ValueError(f"part: {' | '.join(PART_DVC)}, not {part!r}")
    apart = part != "main"
    wdir = {"wdir": ".."} if apart else {}
    out: dict[str, Any] = {}
    for st in STAGES.values():
        if st.part != part:
            continue
        ws = job_wildcards(config, st)
        if not st.wildcards:
            if ws:
                out[st.name] = {**wdir, **_dvc_entry(config, st, {}, None)}
            continue
        ws, templates = _templates(config, st)
        if ws and all(t == templates[0] for t in templates):
            items = {}
            for w in ws:
                j = job(config, st, w)
                refs = {k.split(".")[-1]: "${" + k + "}" for k in j.params_paths}
                if any(o.kind == "root" for o in st.outputs.values()):
                    refs["root"] = "${" + ROOT.key.format(**w) + "}"
                items[job_name(st.name, w).split("@", 1)[1]] = {**w, **refs}
            out[st.name] = {"foreach": items, "do": {**wdir, **templates[0]}}
            continue
        for w in ws:  # the jobs differ in shape (e.g. one teacher is adopted): one stage each
            out[job_name(st.name, w).replace("@", "--")] = {
                **wdir,
                **_dvc_entry(config, st, w, None),
            }
    # DVC resolves ${...} from the params.yaml beside a dvc.yaml: the other parts' are one up
    return {"vars": [f"../{PARAMS_FILE}"], "stages": out} if apart else {"stages": out}
