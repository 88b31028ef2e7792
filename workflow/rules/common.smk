# The stage table (condi.pipeline.STAGES) as Snakemake sees it: wildcard constraints, the
# inputs, outputs and params of each stage's rule, and the two-way adoption with DVC.
import re
import time

import condi.adoption
import condi.config
import condi.pipeline as pl

condi.config.validate(config, source="params.yaml")
condi.config.check_dataset_roots(config)

SYNTH = {d["root"]: name for name, d in config["datasets"].items() if "synth" in d}
METHODS = [*config["methods"], *(v["method"] for v in pl.ablation_variants(config))]
STARTED = time.time()


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in dict.fromkeys(values)) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    fold="[0-9]+",
    teacher=_alternatives(config["teachers"]),
    student=_alternatives(config["students"]),
    method=_alternatives(METHODS),
    root=_alternatives(SYNTH),
    protocol="transfer|scratch",
    source=_alternatives(v["source"] for v in pl.ablation_variants(config)),
    detach="false|true",
    kd="class_mean|batchmean",
    seed="[0-9]+",


def root_input(wildcards):
    """A synthetic dataset's generated manifest (its synth job's output), else the root."""
    root = config["datasets"][wildcards.dataset]["root"]
    return f"{root}/manifest.parquet" if root in SYNTH else root


def inputs_of(stage):
    """The rule's named inputs, for ``unpack()``."""

    def get(wildcards):
        if stage.name == "synth":
            return {}
        job = pl.job(config, stage, dict(wildcards.items()))
        named = {name: paths for name, paths in job.inputs.items()}
        for key, path in job.params_paths.items():
            named[key.split(".")[-1]] = root_input(wildcards) if key.endswith(".root") else path
        return named

    return get


def outputs_of(stage):
    """The rule's named outputs: patterns, a synthetic dataset's manifest, the figure lists,
    a resized store's folder; with their report captions."""
    if stage.name == "synth":
        return {"manifest": "{root}/manifest.parquet"}
    out = {}
    for name, o in stage.outputs.items():
        if o.kind == "dir":
            continue
        if o.kind == "folder":  # a resized store: one folder, written whole
            out[name] = directory(o.pattern)
            continue
        files = pl.job(config, stage, {}).outputs[name] if o.over else [o.pattern]
        if o.caption:
            caption = f"../report/{o.caption}.rst"
            files = [report(f, caption=caption, category=o.category) for f in files]
        out[name] = files if o.over else files[0]
    return out


def params_of(stage):
    """The params.yaml values of the job (editing one re-runs it, as in DVC) and its command
    line, every path and name shell-quoted (rules are made in a loop: the shell string itself
    must not depend on the stage)."""

    def values(wildcards):
        w = dict(wildcards.items())
        return repr({k: pl._get(config, k)[1] for k in pl.param_keys(stage, w)})

    def cmd(wildcards, input, output):
        w = dict(wildcards.items())
        if stage.name == "synth":
            w = {"dataset": SYNTH[w["root"]]}
        return pl.shell_command(stage, w, input, output)

    def synth_values(wildcards):
        return repr(config["datasets"][SYNTH[wildcards.root]])

    return {"values": values if stage.name != "synth" else synth_values, "cmd": cmd}


def threads_of(stage):
    """params `threads` (a profile's `set-threads` overrides it for one rule; on SLURM it is
    the job's --cpus-per-task). The timing rule takes every core of a local run, so that
    nothing runs beside it while it measures (torch still uses params `threads`); as a cluster
    job (no --cores on the submitting side, or the job itself on its node) it asks for params
    `threads` like the others."""
    if stage.threads != "all":
        return config["threads"]

    def get(wildcards):
        cores = workflow.resource_settings.cores
        if workflow.remote_exec or not isinstance(cores, int):
            return config["threads"]
        return cores

    return get


def env_of(stage):
    """The conda environment of the stage's jobs (--use-conda; src/condi/condaenv.py): torch's
    CUDA wheels for a job that asks for a GPU, its CPU wheels for every other job."""
    gpu = stage.gpu and config["device"] == "cuda"
    return "../envs/condi-cuda.yaml" if gpu else "../envs/condi-cpu.yaml"


def gpu_of(stage):
    """The resources by which a job asks for a GPU: none unless the stage uses one and params
    `device` is cuda; then `gpu: 1` (the SLURM plugin's --gpus=1, a local run's GPU count),
    with the profile's `config: {gpu_model: ...}` (--gpus=MODEL:1), or, with its
    `config: {gpu_gres: ...}`, that GRES string instead (--gres=..., no --gpus)."""
    if not (stage.gpu and config["device"] == "cuda"):
        return {"gpu": 0}
    if SITE.get("gpu_gres"):
        return {"gpu": 0, "gres": SITE["gpu_gres"]}
    if SITE.get("gpu_model"):
        return {"gpu": 1, "gpu_model": SITE["gpu_model"]}
    return {"gpu": 1}


# DVC and Snakemake adopt each other's results (docs/cluster.md, "Snakemake and DVC"):
# after `dvc pull` in a checkout where Snakemake never ran, the outputs of the stages that
# `dvc status` finds up to date get their mtimes in pipeline order; after a run, `dvc commit`
# records what this run made (onsuccess in the Snakefile).
if condi.adoption.needs_mtimes():
    condi.adoption.restore_mtimes(config)
