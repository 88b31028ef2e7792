"""The SLURM profile as snakemake-executor-plugin-slurm reads it (issue 15.1-15.4, 15.8).

Every job of the default target and the ablation, with ``device: cuda`` and ``threads: 3`` in
params.yaml, goes through the installed plugin's own sbatch-argument code
(``slurm_submit.py``: the partition from the profile's partition-config, the account the plugin
guesses, ``get_submit_command`` and ``set_gres_string``). Expected values come from the stage
table: a stage with ``gpu`` goes to the GPU partition with one GPU (``--gpus`` or ``--gres``,
never both), every other job to the CPU partition without any; ``--cpus-per-task`` is the
job's threads; tables and figures are local rules with no sbatch at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from condi.config import validate
from condi.pipeline import SPEED_CSV, STAGES
from condi.pipeline import jobs as pipeline_jobs
from tests.conftest import REPO, load_yaml, workflow_copy

pytest.importorskip("snakemake_executor_plugin_slurm")

HERE = Path(__file__).parent
PROFILE = REPO / "workflow" / "profiles" / "slurm"
THREADS = 3
ACCOUNT = "condi_guessed"


def partitions() -> tuple[str, str]:
    """(CPU partition, GPU partition) of the profile's partition-config."""
    parts = load_yaml(PROFILE / "partitions.yaml")["partitions"]
    (cpu,) = [n for n, p in parts.items() if not p.get("max_gpu")]
    (gpu,) = [n for n, p in parts.items() if p.get("max_gpu")]
    return cpu, gpu


@pytest.fixture(scope="module")
def fake_slurm(tmp_path_factory):
    """``sacct`` and ``sacctmgr`` answering with one account: what the plugin guesses from."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name in ("sacct", "sacctmgr"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho {ACCOUNT}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    p = load_yaml(REPO / "params.yaml")
    p.update(device="cuda", threads=THREADS)
    work = workflow_copy(tmp_path_factory.mktemp("wf"), p)
    os.symlink("workflow/profiles", work / "profiles")  # the default profile, as in the checkout
    return work


def submissions(workdir, fake_slurm, *args, device="cuda", ok=True):
    params = load_yaml(workdir / "params.yaml")
    params["device"] = device
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = workdir / "jobs.json"
    env = {**os.environ, "PATH": f"{fake_slurm}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, str(HERE / "slurm_submit.py"), str(out), "--nolock", "--no-hooks", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not ok:
        return done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def slurm_jobs(workdir, fake_slurm, *extra, device="cuda"):
    return submissions(
        workdir,
        fake_slurm,
        "--workflow-profile",
        str(PROFILE),
        "all",
        "ablation",
        SPEED_CSV,  # the speed report's target
        *extra,
        device=device,
    )


def flags(sbatch: str) -> dict[str, list[str]]:
    """{option: [values]} of an sbatch command line (``-p X``, ``--gpus=1``, ``--mem 4000``)."""
    out: dict[str, list[str]] = {}
    tokens = sbatch.split()
    for i, tok in enumerate(tokens):
        if not tok.startswith("-"):
            continue
        if "=" in tok:
            key, value = tok.split("=", 1)
        else:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            key, value = tok, ("" if nxt.startswith("-") else nxt)
        out.setdefault(key, []).append(value)
    return out


def test_profile_files_are_named_as_snakemake_9_reads_them():
    for profile in ("default", "slurm"):
        names = {p.name for p in (REPO / "workflow" / "profiles" / profile).iterdir()}
        assert "profile.yaml" in names and "config.yaml" not in names, names


def test_every_job_gets_its_partition_gpus_and_cpus(workdir, fake_slurm):
    cpu_partition, gpu_partition = partitions()
    jobs = slurm_jobs(workdir, fake_slurm)
    # every stage that has jobs with these params (all, the ablation, the speed report)
    params = load_yaml(workdir / "params.yaml")
    assert {j["rule"] for j in jobs} == {j.stage.name for j in pipeline_jobs(validate(params))}
    gpu_jobs = 0
    for job in jobs:
        stage = STAGES[job["rule"]]
        assert job["local"] == stage.local, job["rule"]
        assert job["threads"] == THREADS, job["rule"]
        if stage.local:
            assert job["sbatch"] is None
            continue
        f = flags(job["sbatch"])
        where = f"{job['rule']} {job['wildcards']}: {job['sbatch']}"
        assert f["-p"] == [gpu_partition if stage.gpu else cpu_partition], where
        assert f["-A"] == [ACCOUNT], where
        assert f["--cpus-per-task"] == [str(THREADS)], where
        assert f["--mem"] == [str(stage.mem_mb)] and f["-t"] == [str(stage.runtime)], where
        assert "--gres" not in f, where
        assert f.get("--gpus") == (["1"] if stage.gpu else None), where
        gpu_jobs += stage.gpu
    # training and scoring, timing and the ablation's GPU rules included
    assert {j["rule"] for j in jobs if STAGES[j["rule"]].gpu} >= {
        "train_teacher",
        "timing",
        "ablation_pseudo_labels",
        "ablation_train_student",
        "ablation_student_scores",
    }
    assert gpu_jobs > 40


def test_a_gres_string_replaces_gpus_and_set_threads_sets_cpus(workdir, fake_slurm):
    jobs = slurm_jobs(
        workdir,
        fake_slurm,
        "--config",
        "gpu_gres=gpu:a100:1",
        "--set-threads",
        "train_teacher=8",
    )
    _, gpu_partition = partitions()
    for job in jobs:
        if job["local"]:
            continue
        stage, f = STAGES[job["rule"]], flags(job["sbatch"])
        assert "--gpus" not in f, job["sbatch"]
        assert f.get("--gres") == (["gpu:a100:1"] if stage.gpu else None), job["sbatch"]
        assert (f["-p"] == [gpu_partition]) == stage.gpu
        cpus = 8 if job["rule"] == "train_teacher" else THREADS
        assert f["--cpus-per-task"] == [str(cpus)], job["sbatch"]


def test_a_gpu_model_gives_gpus_of_that_model(workdir, fake_slurm):
    jobs = slurm_jobs(workdir, fake_slurm, "--config", "gpu_model=a100")
    for job in jobs:
        if not job["local"]:
            f = flags(job["sbatch"])
            expected = ["a100:1"] if STAGES[job["rule"]].gpu else None
            assert f.get("--gpus") == expected and "--gres" not in f, job["sbatch"]


def test_gpu_model_and_gres_together_are_refused(workdir, fake_slurm):
    done = submissions(
        workdir,
        fake_slurm,
        "--workflow-profile",
        str(PROFILE),
        "--config",
        "gpu_model=a100",
        "gpu_gres=gpu:a100:1",
        ok=False,
    )
    assert done.returncode != 0
    assert "gpu_model or gpu_gres, not both" in done.stdout + done.stderr


def test_on_cpus_nothing_asks_for_a_gpu(workdir, fake_slurm):
    cpu_partition, _ = partitions()
    for job in slurm_jobs(workdir, fake_slurm, device="cpu"):
        if not job["local"]:
            f = flags(job["sbatch"])
            assert f["-p"] == [cpu_partition] and "--gpus" not in f and "--gres" not in f


def test_a_local_run_gives_timing_every_core(workdir, fake_slurm):
    """The default profile (one machine): timing takes all --cores, the others params threads."""
    jobs = submissions(workdir, fake_slurm, "--cores", "7", "all")
    threads = {j["rule"]: j["threads"] for j in jobs}
    assert threads.pop("timing") == 7
    assert set(threads.values()) == {THREADS}


def test_the_profile_sets_no_cpus_partition_or_account_of_its_own():
    """What would override the rules' threads or the partition-config routing (issue 15.1-15.2)."""
    profile = load_yaml(PROFILE / "profile.yaml")
    defaults = profile.get("default-resources") or {}
    assert not {"cpus_per_task", "slurm_partition", "slurm_account"} & set(defaults)
    assert "set-resources" not in profile  # no hand-kept list of GPU rules
    assert (PROFILE / profile["slurm-partition-config"]).is_file()
    assert re.search(r"^executor: slurm$", (PROFILE / "profile.yaml").read_text(), re.M)
