"""One tiny pipeline run per session, shared by the orchestration tests.

``pipelines`` builds it once for the whole session, whatever the number of xdist workers: the
first worker to need it builds it under a file lock in the workers' common temporary folder,
the others wait on the lock and read it. It holds, side by side:

* ``smk/``: a git + DVC repository of the workflow run by Snakemake (``--cores 2``, the default
  profile, the targets ``all`` and ``ablation``), logging to an ``mlflow server`` started for
  the session (SQLite backend, a free port); the run's ``onsuccess`` commits its results to
  DVC;
* ``dvc/``: a git repository with the same workflow, the generated ``dvc.yaml`` and
  ``ablation/dvc.yaml`` and the DVC config of this repository, run by ``dvc repro dvc.yaml
  ablation/dvc.yaml`` at the same time (tracking off), then committed and pushed to its default
  local remote ``condi-dvc-remote/`` beside it;
* ``pristine/``: a copy of both, taken before any test runs, for the tests that copy a
  repository (``pristine_pipelines``) while others run commands in the originals.

Both use the tiny synthetic preset (the transfer protocol's source: 5 classes, the colour
palette), one epoch per model and a two-variant ablation (condi_sr at the params' switches,
and trained from scratch on crossfit pseudo-labels with z~ detached and the batchmean
reduction; one seed: two students, two ablation teachers, two crossfit teachers), so the two
runs take about four to five minutes on two cores. Every wait is bounded; the servers are
stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, load_yaml, workflow_copy  # noqa: F401

PIPELINE_TIMEOUT = 900  # s, per pipeline run
SERVER_START_TIMEOUT = 180  # s


# Two ablation variants: condi_sr at the params' own switches (transfer, train, attached,
# class_mean) and one cell with every switch changed (scratch, crossfit, detached, batchmean):
# two ablation teachers (one per protocol), two crossfit fold teachers, two students.
TINY_ABLATION = {
    "protocols": ["transfer"],
    "sources": ["train"],
    "detach": [False],
    "kd_reductions": ["class_mean"],
    "methods": [],
    "cells": [
        {"protocol": "scratch", "source": "crossfit", "detach": True, "kd_reduction": "batchmean"}
    ],
    "seeds": [1],
    "K": [1, 3, 5],
}
CROSSFIT_VARIANT = "resnext14_resnext14half_condi_sr_scratch_crossfit_detachtrue_batchmean_seed1"


def tiny_params() -> dict:
    """The repository's params.yaml on the tiny preset: a few videos, one epoch per model, a
    one-student ablation."""
    p = load_yaml(REPO / "params.yaml")
    for ds in p["datasets"].values():
        if "synth" in ds:
            ds["synth"]["preset"] = "tiny"
    # protocol transfer (the default): a tiny source with more classes and the colour palette
    source = p["datasets"][p["pretrain"]["dataset"]]["synth"]
    source["overrides"] = {"num_classes": 5, "palette": "colour"}
    for role in ("teacher", "student"):
        p["pretrain"][role].update(epochs=1, lr_milestones=[])
    p["training"]["teacher"].update(epochs=1, lr_milestones=[])
    p["training"]["student"].update(epochs=1)
    for role in ("teacher", "student"):
        p["training"]["finetune"][role]["epochs"] = 1
    p["device"] = "cpu"
    p["threads"] = 1
    p["timing"] = {"max_videos": None, "warmup": 1, "repeats": 1}
    p["ablation"] = dict(TINY_ABLATION)
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, cwd, env=None, timeout=300, check=True):
    out = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        shell=isinstance(cmd, str),
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    return out


def git(cwd, *args):
    return run(["git", *args], cwd, timeout=120)


@dataclass
class MlflowServer:
    uri: str
    proc: subprocess.Popen
    log: Path

    def api(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.uri + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read().decode())


def start_mlflow_server(workdir: Path, log_name: str = "mlflow-server.log") -> MlflowServer:
    """An ``mlflow server`` over ``workdir``'s SQLite store and artifact folder (a free port)."""
    port = free_port()
    log = workdir / log_name
    proc = subprocess.Popen(
        [
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(workdir / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=workdir,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job workers
        stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return MlflowServer(f"http://127.0.0.1:{port}", proc, log)


def wait_for_server(server: MlflowServer, timeout: float = SERVER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.uri + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"mlflow server not up in {timeout} s:\n{server.log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def dvc_repo(dest: Path, params: dict) -> Path:
    """A git repository holding the workflow, params, generated dvc.yaml and DVC config."""
    workflow_copy(dest, params)
    os.symlink("workflow/profiles", dest / "profiles")
    (dest / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, dest / ".dvc" / name)
    shutil.copytree(REPO / ".dvc" / "plots", dest / ".dvc" / "plots")
    shutil.copy(REPO / ".gitignore", dest / ".gitignore")
    run(["condi", "pipeline", "dvc", "--params", "params.yaml", "--out", "dvc.yaml"], dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "condi tests")  # dvc exp run commits experiments
    git(dest, "config", "user.email", "tests@condi.invalid")
    git(dest, "add", ".")
    git(dest, "commit", "-q", "-m", "tiny pipeline")
    return dest


@dataclass
class Pipelines:
    """The shared run (see the module docstring): its repositories, params, the runners'
    times and output; :attr:`server` serves its MLflow store."""

    root: Path
    smk: Path
    dvc: Path
    params: dict
    timings: dict[str, float] = field(default_factory=dict)
    smk_output: str = ""
    dvc_output: str = ""
    _server: MlflowServer | None = None

    @property
    def server(self) -> MlflowServer:
        """An ``mlflow server`` over the run's store: the one the run logged to, in the worker
        that built it; a new one (the same store) in another worker."""
        if self._server is None:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            self._server = start_mlflow_server(self.root, f"mlflow-server-{worker}.log")
            wait_for_server(self._server)
        return self._server

    def save(self) -> None:
        state = {
            "params": self.params,
            "timings": self.timings,
            "smk_output": self.smk_output,
            "dvc_output": self.dvc_output,
        }
        (self.root / STATE).write_text(json.dumps(state))

    @classmethod
    def load(cls, root: Path) -> Pipelines:
        state = json.loads((root / STATE).read_text())
        return cls(root, root / "smk", root / "dvc", **state)

    def pristine(self) -> Pipelines:
        """The repositories as the run left them (copied before any test ran), for the tests
        that copy them while other tests run commands in the originals."""
        return replace(self, smk=self.root / PRISTINE / "smk", dvc=self.root / PRISTINE / "dvc")


STATE = "pipelines.json"  # written when the run is complete
FAILED = "pipelines.failed"  # written when it failed: the other workers fail at once
PRISTINE = "pristine"


def build_pipelines(root: Path) -> Pipelines:
    """The shared run, into ``root`` (see the module docstring)."""
    params = tiny_params()
    server = start_mlflow_server(root)
    try:
        smk = dvc_repo(root / "smk", params)
        dvc = dvc_repo(root / "dvc", params)
        base_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

        t0 = time.monotonic()
        dvc_env = {**base_env, "CONDI_TRACKING": "0"}
        dvc_log = open(root / "dvc-repro.log", "w")  # noqa: SIM115
        dvc_proc = subprocess.Popen(
            ["dvc", "repro", "dvc.yaml", "ablation/dvc.yaml"],
            cwd=dvc,
            env=dvc_env,
            stdout=dvc_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_server(server)
            smk_env = {**base_env, "MLFLOW_TRACKING_URI": server.uri}
            t1 = time.monotonic()
            out = run(
                ["snakemake", "--cores", "2", "all", "ablation"],
                smk,
                env=smk_env,
                timeout=PIPELINE_TIMEOUT,
            )
            smk_time = time.monotonic() - t1
            dvc_proc.wait(timeout=PIPELINE_TIMEOUT)
        finally:
            stop(dvc_proc)
            dvc_log.close()
        dvc_time = time.monotonic() - t0
        dvc_output = (root / "dvc-repro.log").read_text()
        assert dvc_proc.returncode == 0, dvc_output[-5000:]
        # what DVC produced, committed (dvc.lock, metrics, plots) and pushed to the remote
        git(dvc, "add", ".")
        git(dvc, "commit", "-q", "-m", "dvc repro")
        run(["dvc", "push", "-q"], dvc, timeout=300)
        for repo in (smk, dvc):
            shutil.copytree(repo, root / PRISTINE / repo.name, symlinks=True)
    except BaseException:
        stop(server.proc)
        raise
    p = Pipelines(root, smk, dvc, params, smk_output=out.stdout + out.stderr, _server=server)
    p.dvc_output = dvc_output
    p.timings.update(snakemake_s=smk_time, dvc_repro_s=dvc_time)
    print(f"\ntiny pipeline: snakemake --cores 2 {smk_time:.0f} s, dvc repro {dvc_time:.0f} s")
    return p


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory):
    """The shared run, built once for the whole session: by the first xdist worker that needs
    it, while the others wait on a file lock and then read it (the pytest-xdist recipe for a
    session fixture made once)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    # an xdist worker's base is <session base>/popen-gwN: the workers' common folder is above
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "orchestration"
    with FileLock(shared / "orchestration.lock"):
        if (root / FAILED).exists():
            pytest.fail(f"the shared pipeline run failed:\n{(root / FAILED).read_text()}")
        if (root / STATE).exists():
            p = Pipelines.load(root)
        else:
            root.mkdir(exist_ok=True)
            try:
                p = build_pipelines(root)
            except BaseException as exc:
                (root / FAILED).write_text(f"{type(exc).__name__}: {str(exc)[-5000:]}")
                raise
            p.save()
    yield p
    if p._server is not None:
        stop(p._server.proc)


@pytest.fixture(scope="session")
def pristine_pipelines(pipelines) -> Pipelines:
    """:meth:`Pipelines.pristine`: for the tests that copy the repositories. Each is a group of
    its own (tests/conftest.py), queued last: the workers share them when they are done with
    everything else, by which time the run is built."""
    return pipelines.pristine()


def untracked() -> dict[str, str]:
    """The environment of a re-run on a copy of a pipeline repository: tracking off, as in the
    DVC run (the tracked run is the Snakemake one, read back by test_mlflow.py). A job then
    starts without MLflow: two seconds less per job."""
    return {**os.environ, "CONDI_TRACKING": "0"}


def copy_repo(src: Path, dest: Path) -> Path:
    """A copy of a pipeline repository (workspace, git, DVC cache): a test may change it."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def read_table3(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype={"K": str})


def dump(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False)
