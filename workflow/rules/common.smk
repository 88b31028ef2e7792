# Shared helpers: paths, command templates and params from condi.pipeline (one source of truth
# with dvc.yaml), wildcard constraints, the conda env and per-rule config subsets.
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

import condi.config
import condi.pipeline as pl
from condi.pipeline import (
    ABL_EVAL,
    ABL_LABELS,
    ABL_SCORES,
    ABL_STUDENT,
    ABLATION_CSV,
    ABLATION_MD,
    AMBIGUITY,
    AMBIGUITY_CSV,
    AMBIGUITY_MD,
    CACHE,
    EVAL_BASELINES,
    EVAL_STUDENTS,
    FIGURES,
    INDEX,
    LABELS,
    METRICS_JSON,
    PLOT_CSV,
    PLOT_PNG,
    STUDENT,
    STUDENT_SCORES,
    TABLE1_CSV,
    TABLE1_MD,
    TABLE2_CSV,
    TABLE2_MD,
    TABLE3_CSV,
    TABLE3_MD,
    TABLE4_CSV,
    TABLE4_MD,
    TABLE5_CSV,
    TABLE5_MD,
    TEACHER,
    TEACHER_SCORES,
    TIMELINE,
    TIMING,
)

condi.config.validate(config, source="params.yaml")
condi.config.check_dataset_roots(config)

# Each rule runs its condi command with stdout and stderr in its log.
SHELL = {name: f"({cmd}) > {{log}} 2>&1" for name, cmd in pl.COMMANDS.items()}
ENV = "../envs/condi.yaml"
# Training and scoring rules ask the scheduler for a GPU when params.yaml says device: cuda.
GPU = 1 if config["device"] == "cuda" else 0
SYNTH_ROOTS = [d["root"] for d in config["datasets"].values() if "synth" in d]
# the methods of params `methods` and those the ablation trains
METHODS = list(dict.fromkeys([*config["methods"], *(v["method"] for v in pl.ablation_variants(config))]))


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in config["datasets"]),
    fold="[0-9]+",
    teacher="|".join(re.escape(t) for t in config["teachers"]),
    student="|".join(re.escape(s) for s in config["students"]),
    method="|".join(re.escape(m) for m in METHODS),
    root="|".join(re.escape(r) for r in SYNTH_ROOTS) or "(?!)",
    # the ablation's
    source="|".join(pl.ABLATION_SOURCES),
    detach="false|true",
    seed="[0-9]+",


def ds(wildcards):
    return config["datasets"][wildcards.dataset]


def root_of(wildcards):
    return ds(wildcards)["root"]


def synth_of(root):
    """The synth block of the synthetic dataset generated into ``root``."""
    return next(d["synth"] for d in config["datasets"].values() if d["root"] == root and "synth" in d)


def synth_input(wildcards):
    """A synthetic dataset is generated first; a real one must already exist at its root."""
    d = ds(wildcards)
    return [pl.synth_marker(d["root"])] if "synth" in d else []


def all_cores(wildcards):
    """Every core of a local run, so that nothing else runs while a timing job measures (torch
    still uses params `threads`); params `threads` where Snakemake has no core count (a
    cluster executor: the job then has its node's share to itself)."""
    try:
        return workflow.cores
    except WorkflowError:
        return config["threads"]


def section(rule):
    """A params function returning the params.yaml subset ``rule`` reads (pl.PARAM_KEYS, the
    same keys as the DVC stage's ``params:``), so Snakemake's 'params' rerun trigger fires
    exactly when DVC's would."""

    def get(wildcards):
        out = {}
        for key in pl.PARAM_KEYS[rule]:
            node = config
            for part in key.format(**dict(wildcards.items())).split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            out[key] = node
        return repr(out)

    return get


# After `dvc pull` (or `dvc checkout`) the files have new, arbitrary mtimes and Snakemake has no
# record of the jobs that made them, so it would re-run them. For such a job (no Snakemake
# metadata for its outputs) whose DVC stage dvc.lock records with exactly the current inputs,
# outputs and params, the inputs are marked ancient(): their mtimes carry no information.
# Snakemake's own records, when present, are trusted as usual. See docs/cluster.md.
DVC = pl.DvcRecords()
_WARNED = set()  # reasons already reported


def _has_snakemake_record(path):
    try:
        from snakemake.io import IOFile

        return workflow.persistence.metadata(IOFile(path)) is not None
    except Exception:
        return False


def _restored_by_dvc(rule, wildcards, inputs):
    stage = pl.job_name(rule, {k: wildcards[k] for k in pl.WILDCARDS[rule]})
    entry = DVC.stages.get(stage)
    if not entry:
        return False
    outs = [o["path"] for o in entry.get("outs") or []]
    if outs and all(_has_snakemake_record(o) for o in outs):
        return False
    why = DVC.stale_reason(stage, inputs)
    if why and why not in _WARNED:
        _WARNED.add(why)
        logger.warning(
            f"condi: dvc.lock is out of date for outputs Snakemake did not make ({why}): "
            "Snakemake can only judge them by mtimes; `dvc repro` (or `snakemake --forcerun "
            "RULE`) is sure to update them."
        )
    return why is None


def dvc_inputs(rule, **inputs):
    """An input function for ``unpack()``: the named inputs (patterns, lists of patterns or
    functions of the wildcards), all ancient() when DVC restored this job (see above)."""

    def get(wildcards):
        w = dict(wildcards.items())
        named = {}
        for key, value in inputs.items():
            value = value(wildcards) if callable(value) else value
            named[key] = value.format(**w) if isinstance(value, str) else [v.format(**w) for v in value]
        if DVC:
            files = [f for v in named.values() for f in ([v] if isinstance(v, str) else v)]
            if _restored_by_dvc(rule, w, files):
                named = {
                    k: ancient(v) if isinstance(v, str) else [ancient(f) for f in v]
                    for k, v in named.items()
                }
        return named

    return get
