"""MLflow tracking: one experiment per dataset, one run per pipeline job.

The store is SQLite at the repository root (``sqlite:///<abs>/mlflow.db``; MLflow 3 refuses
the file store), overridable by ``MLFLOW_TRACKING_URI`` (e.g. an ``mlflow server``). Metrics
are buffered and sent with ``log_batch``. Tracking never costs a result: every call is retried
with jittered back-off (parallel jobs meet SQLite's write lock), and when the store stays
unreachable or locked the run's record is kept as JSON under ``.mlflow_pending/`` for
``condi tracking import`` and the stage goes on with a warning. Create the store once before
parallel jobs start (``condi tracking init``; the Snakefile's ``onstart`` does).

Every run is tagged so that it can be traced to the pipeline and to DVC (:func:`stage_tags`):

* ``stage`` and ``rule`` (the stage of condi.pipeline's table: Snakemake rule and DVC stage,
  given to every command by ``--stage``), ``dvc_stage`` (the job, e.g.
  ``train_student@synthetic-1-resnext-resnext8-condi_sr``), ``dataset`` and the job's other
  wildcards (``fold``, ``teacher``, ``student``, ``method``; the ablation's ``source``,
  ``detach``, ``seed``);
* ``git_commit`` (also as MLflow's ``mlflow.source.git.commit``) and ``git_dirty``;
* ``params_hash``: sha256 (16 hex digits) of the job's params values (the stage's keys in the
  table: the params logged with the run, DVC's ``params:``, the resume hash);
* ``dvc_md5/<path>`` for every input file of the job, the md5 DVC computes for it (taken from
  ``dvc.lock`` when its record matches the file, else computed), and ``inputs`` / ``outputs``
  (JSON lists of paths);
* ``model_path`` (the DVC path of the model the job trained, or the checkpoint it used) and,
  at the end, ``model_dvc_md5`` of a trained model;
* ``mlflow.parentRunId``: the jobs that depend on a teacher (pseudo-labels, students,
  evaluation) are nested under the run that trained that teacher (the latest finished one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PENDING_DIR = ".mlflow_pending"
NESTED_UNDER_TEACHER = {"pseudo_labels", "train_student", "evaluate_baselines", "evaluate_students"}
TRAINING_STAGES = ("train_teacher", "train_student", "ablation_train_student")


def project_root() -> Path:
    return Path(os.environ.get("CONDI_ROOT", Path.cwd())).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=project_root()
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_commit() -> str:
    return _git("rev-parse", "HEAD") or "unknown"


def git_dirty() -> str:
    """ "true" when tracked files differ from the commit, "false", or "unknown"."""
    if git_commit() == "unknown":
        return "unknown"
    return "true" if _git("status", "--porcelain", "--untracked-files=no") else "false"


# -- DVC hashes ------------------------------------------------------------------------------


def file_md5(path: str | Path, chunk: int = 1 << 22) -> str:
    """The md5 DVC 3 records for a file (of its bytes)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dvc_lock_md5s(lock: str | Path | None = None) -> dict[str, tuple[str, int | None]]:
    """``{path: (md5, size)}`` of every dep and out recorded in ``dvc.lock`` ({} without it)."""
    import yaml

    path = Path(lock) if lock else project_root() / "dvc.lock"
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, tuple[str, int | None]] = {}
    for st in (data.get("stages") or {}).values():
        for entry in [*st.get("deps", []), *st.get("outs", [])]:
            if isinstance(entry, dict) and entry.get("md5"):
                out[entry["path"]] = (entry["md5"], entry.get("size"))
    return out


def dvc_md5(path: str | Path, lock: dict[str, tuple[str, int | None]] | None = None) -> str | None:
    """DVC's md5 of ``path``: dvc.lock's record when it describes the current file (same size,
    lock written after the file), else computed for a file; None for an unrecorded directory."""
    p = Path(path)
    rel = _rel(p)
    lock = dvc_lock_md5s() if lock is None else lock
    rec = lock.get(rel)
    lock_file = project_root() / "dvc.lock"
    if rec is not None and p.exists():
        md5, size = rec
        fresh = lock_file.stat().st_mtime >= p.stat().st_mtime if lock_file.exists() else False
        if p.is_dir() and fresh:
            return md5
        if p.is_file() and fresh and size == p.stat().st_size:
            return md5
    if p.is_file():
        return file_md5(p)
    return None


def _rel(p: Path) -> str:
    try:
        return p.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return p.as_posix()


# -- the job's tags ---------------------------------------------------------------------------


def stage_tags(
    stage: str,
    wildcards: dict[str, Any],
    values: dict[str, Any],
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> dict[str, str]:
    """The pipeline and DVC tags of a job (see the module docstring)."""
    from condi.pipeline import job_name, params_hash

    out: dict[str, str] = {"rule": stage, "dvc_stage": job_name(stage, wildcards)}
    out.update({k: str(v) for k, v in wildcards.items()})
    out["params_hash"] = params_hash(values)
    lock = dvc_lock_md5s()
    for p in inputs:
        md5 = dvc_md5(p, lock) if Path(p).is_file() else None
        key = f"dvc_md5/{_rel(Path(p))}"
        if md5 and len(key) <= 250:
            out[key] = md5
    out["inputs"] = json.dumps([_rel(Path(p)) for p in inputs])[:8000]
    out["outputs"] = json.dumps([_rel(Path(p)) for p in outputs])[:8000]
    if stage in TRAINING_STAGES and outputs:
        out["model_path"] = _rel(Path(outputs[0]))
    else:
        ckpts = [p for p in inputs if str(p).endswith(".pt")]
        if ckpts:
            out["model_path"] = _rel(Path(ckpts[0]))
    return out


# MLflow's HTTP client retries a refused connection 7 times with exponential back-off (minutes
# per request); a job must go on within seconds when the server is down. A user's own settings
# win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def _client():
    import mlflow

    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return mlflow.MlflowClient(tracking_uri())


def _retry(fn: Callable[[], Any], tries: int = 4, delay: float = 0.2) -> Any:
    """Call ``fn`` until it succeeds, ``tries`` times at most, with jittered exponential
    back-off (0.2 s, 0.4 s, 0.8 s): parallel jobs writing to one SQLite store meet 'database
    is locked' (each try also waits out SQLite's own 5 s busy timeout)."""
    for attempt in range(tries):
        try:
            return fn()
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(delay * (2**attempt) * (0.5 + random.random()))
    return None


def init_store() -> str:
    """Create the database (and its schema) once, before parallel jobs start."""
    _retry(lambda: _client().search_experiments(max_results=1))
    return tracking_uri()


class Run:
    """A tracked job: ``with Run("train_teacher", dataset="synthetic", tags={...}) as run: ...``
    (stage commands make theirs with ``condi.cli.common.StageContext.run``)."""

    def __init__(
        self,
        stage: str,
        dataset: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> None:
        self.stage, self.dataset = stage, dataset
        self.params = flatten(params or {})
        commit = git_commit()
        self.tags = {
            "stage": stage,
            "dataset": dataset,
            "git_commit": commit,
            "git_dirty": git_dirty(),
            "mlflow.source.git.commit": commit,
            **{k: str(v) for k, v in (tags or {}).items()},
        }
        # under torchrun only rank 0 records the run
        self.enabled = (
            enabled
            and os.environ.get("CONDI_TRACKING", "1") != "0"
            and os.environ.get("RANK", "0") == "0"
        )
        self.metrics: list[tuple[str, float, int, int]] = []
        self.artifacts: list[str] = []
        self.client = None
        self.run_id: str | None = None

    # -- public API --------------------------------------------------------
    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, int | float) and v == v:  # skip NaN
                self.metrics.append((k, float(v), ts, int(step)))

    def log_artifact(self, path: str | Path) -> None:
        # absolute: a kept record may be imported from another directory
        self.artifacts.append(str(Path(path).resolve()))

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> Run:
        if not self.enabled:
            return self
        try:
            self.client = _client()

            def start():
                exp = self.client.get_experiment_by_name(self.dataset)
                exp_id = exp.experiment_id if exp else self._create_experiment()
                parent = self._teacher_run(exp_id)
                tags = {**self.tags, **({"mlflow.parentRunId": parent} if parent else {})}
                run = self.client.create_run(
                    exp_id, tags=tags, run_name=self.tags.get("run_name", self.stage)
                )
                return run.info.run_id

            self.run_id = _retry(start)
        except Exception as exc:
            log.warning(
                "MLflow store %s unreachable (%s); keeping this run's record locally",
                tracking_uri(),
                exc,
            )
            self.client = None
        return self

    def _create_experiment(self) -> str:
        try:
            return self.client.create_experiment(self.dataset)
        except Exception:  # created concurrently by another job
            return self.client.get_experiment_by_name(self.dataset).experiment_id

    def _teacher_run(self, exp_id: str) -> str | None:
        """The latest finished run that trained this job's teacher (its MLflow parent)."""
        if self.tags.get("rule") not in NESTED_UNDER_TEACHER or "teacher" not in self.tags:
            return None
        filt = " and ".join(
            f"tags.{k} = '{self.tags[k]}'" for k in ("dataset", "fold", "teacher") if k in self.tags
        )
        runs = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.rule = 'train_teacher' and attributes.status = 'FINISHED' and {filt}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        status = "FAILED" if exc_type else "FINISHED"
        model = self.tags.get("model_path")
        trained = self.tags.get("rule") in TRAINING_STAGES
        if status == "FINISHED" and trained and model and Path(model).is_file():
            self.tags["model_dvc_md5"] = file_md5(model)
        if self.client is not None and self.run_id is not None:
            try:
                _retry(self._flush_to_store)
                _retry(lambda: self.client.set_terminated(self.run_id, status))
                return
            except Exception as err:
                log.warning("MLflow logging failed (%s); keeping this run's record locally", err)
        self._write_pending(status)

    def _flush_to_store(self) -> None:
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(k, v[:6000]) for k, v in self.params.items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        metrics = [Metric(k, v, ts, s) for k, v, ts, s in self.metrics]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        if "model_dvc_md5" in self.tags:
            self.client.log_batch(
                self.run_id, tags=[RunTag("model_dvc_md5", self.tags["model_dvc_md5"])]
            )
        self.params, self.metrics = {}, []
        for path in self.artifacts:
            if Path(path).exists():
                self.client.log_artifact(self.run_id, path)
            else:
                log.warning("artifact %s no longer exists; not logged", path)
        self.artifacts = []

    def _write_pending(self, status: str) -> None:
        from condi.io import write_json

        path = project_root() / PENDING_DIR / f"{self.stage}-{uuid.uuid4().hex[:12]}.json"
        write_json(
            path,
            {
                "experiment": self.dataset,
                "tags": self.tags,
                "params": self.params,
                "metrics": self.metrics,
                "artifacts": self.artifacts,
                "status": status,
            },
        )
        log.warning("MLflow record kept in %s (import later with `condi tracking import`)", path)


def import_pending() -> int:
    """Send the locally kept records to the store; returns how many were imported."""
    n = 0
    for path in sorted((project_root() / PENDING_DIR).glob("*.json")):
        rec = json.loads(path.read_text())
        run = Run(rec["tags"]["stage"], rec["experiment"], tags=rec["tags"])
        run.tags = rec["tags"]
        run.params = rec["params"]
        run.metrics = [tuple(m) for m in rec["metrics"]]
        run.artifacts = rec["artifacts"]
        run.__enter__()
        if run.client is None:
            break
        failed = rec.get("status") == "FAILED"
        run.__exit__(RuntimeError if failed else None, None, None)
        path.unlink()
        n += 1
    return n
