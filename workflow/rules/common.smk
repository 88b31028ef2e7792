# Shared helpers: paths, command templates and params from condi.pipeline (one source of truth
# with dvc.yaml), wildcard constraints, the conda env and per-rule config subsets.
import condi.config
import condi.pipeline as pl
from condi.pipeline import (
    CACHE,
    EVAL_BASELINES,
    EVAL_STUDENTS,
    INDEX,
    LABELS,
    STUDENT,
    STUDENT_SCORES,
    TABLE3_CSV,
    TABLE3_MD,
    TEACHER,
    TEACHER_SCORES,
)

condi.config.validate(config, source="params.yaml")
condi.config.check_dataset_roots(config)

# Each rule runs its condi command with stdout and stderr in its log.
SHELL = {name: f"({cmd}) > {{log}} 2>&1" for name, cmd in pl.COMMANDS.items()}
ENV = "../envs/condi.yaml"


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    fold="[0-9]+",
    teacher="[A-Za-z0-9]+",
    student="[A-Za-z0-9]+",
    method="condi_sr|bce_conf|st_ent|st_conf|maxprob",


def ds(wildcards):
    return config["datasets"][wildcards.dataset]


def root_of(wildcards):
    return ds(wildcards)["root"]


def synth_input(wildcards):
    """A synthetic dataset is generated first; a real one must already exist at its root."""
    d = ds(wildcards)
    return [pl.synth_marker(d["root"])] if "synth" in d else []


def section(*keys):
    """A params function returning the config subset a rule reads, so Snakemake's 'params'
    rerun trigger fires exactly when those keys change."""

    def get(wildcards):
        out = {}
        for key in keys:
            node = config
            for part in key.format(**dict(wildcards.items())).split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            out[key] = node
        return repr(out)

    return get
