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
  wildcards (``fold``, ``teacher``, ``student``, ``method``; the ablation's ``protocol``,
  ``source``, ``detach``, ``kd``, ``seed``);
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
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PENDING_DIR = ".mlflow_pending"
NESTED_UNDER_TEACHER = {"pseudo_labels", "train_student", "evaluate_baselines", "evaluate_students"}
TRAINING_STAGES = (
    "pretrain_teacher",
    "pretrain_student",
    "train_teacher",
    "train_student",
    "ablation_train_teacher",
    "ablation_train_student",
)


def project_root() -> Path:
    return Path(os.environ.get("CONDI_ROOT", Path.cwd())).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


# ``scheme://user:password@host``: the user info, up to the last ``@`` before the path (also
# after ``scheme:/``, what a URI given where a path is expected becomes: ``http:/u:pw@h``)
_URI_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*:/{1,3})[^/\s?#]*@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:access_token|token|password|passwd|pwd|secret|api_key|apikey|key|sig"
    r"|signature)=)[^&\s#]*",
    re.IGNORECASE,
)


def redact(text: object) -> str:
    """``text`` with the credentials of every URI in it replaced by ``***``: the user info
    (``http://user:pass@host`` -> ``http://***@host``) and secret-looking query values
    (``?token=...``). Used for everything condi prints or logs about the tracking store."""
    text = _URI_USERINFO.sub(r"\g<scheme>***@", str(text))
    return _SECRET_PARAM.sub(r"\g<key>***", text)


def display_uri() -> str:
    """:func:`tracking_uri` for messages (credentials redacted)."""
    return redact(tracking_uri())


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
    """Create the database (and its schema) once, before parallel jobs start; returns the
    store's URI for display (credentials redacted)."""
    _retry(lambda: _client().search_experiments(max_results=1))
    return display_uri()


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
                display_uri(),
                redact(exc),
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
        if self.client is not None and self.run_id is not None and self._upload(status):
            return
        self._write_pending(status)

    def _upload(self, status: str) -> bool:
        """Send the buffered record and end the run with ``status``; False if that failed,
        in which case the run is ended FAILED (best effort), never left RUNNING."""
        try:
            _retry(self._flush_to_store)
            _retry(lambda: self.client.set_terminated(self.run_id, status))
            return True
        except Exception as err:
            log.warning(
                "MLflow logging failed (%s); keeping this run's record locally", redact(err)
            )
            try:
                self.client.set_terminated(self.run_id, "FAILED")
            except Exception as end_err:
                log.warning(
                    "MLflow run %s could not be marked FAILED either (%s)",
                    self.run_id,
                    redact(end_err),
                )
            return False

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
            local = _artifact_under_project(path)
            if local is not None:
                self.client.log_artifact(self.run_id, str(local))
        self.artifacts = []

    def _write_pending(self, status: str) -> None:
        """Keep the record under ``.mlflow_pending/`` (never elsewhere: the file name is made
        of the stage's safe characters only); artifacts under the project directory are kept
        relative to it, so that a copy of the project can import the record."""
        from condi.io import write_json

        pending = project_root() / PENDING_DIR
        path = pending / f"{_safe_name(self.stage)}-{uuid.uuid4().hex[:12]}.json"
        if path.parent != pending:  # cannot happen with _safe_name; kept as a guard
            raise ValueError(f"{path}: a kept record must be in {pending}")
        write_json(
            path,
            {
                "experiment": self.dataset,
                "tags": self.tags,
                "params": self.params,
                "metrics": self.metrics,
                "artifacts": [_project_relative(a) for a in self.artifacts],
                "status": status,
            },
        )
        log.warning("MLflow record kept in %s (import later with `condi tracking import`)", path)


def _safe_name(stage: object) -> str:
    """A file-name part from a stage name: letters, digits, ``_``, ``-`` and inner dots only
    (``../../x`` -> ``x``), at most 64 characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(stage)).strip("._-")[:64]
    return name or "run"


def _project_relative(path: str) -> str:
    root = project_root()
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return str(path)


def _artifact_under_project(path: str | Path) -> Path | None:
    """The file ``path`` names (relative paths are taken from the project directory) when it
    is a regular file under the project directory once links are resolved; else None, with
    a warning (an artifact is never uploaded from elsewhere, e.g. ``/etc/hostname``)."""
    root = project_root()
    p = Path(path)
    local = (p if p.is_absolute() else root / p).resolve()
    if not local.is_relative_to(root):
        log.warning("artifact %s is outside the project directory %s; not uploaded", path, root)
        return None
    if not local.is_file():
        log.warning("artifact %s no longer exists (or is not a file); not logged", path)
        return None
    return local


STATUSES = ("FINISHED", "FAILED")


def _read_record(path: Path) -> dict[str, Any]:
    """A kept record, checked: raises ``ValueError`` saying what is wrong with it."""
    try:
        rec = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from exc
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    if not isinstance(rec.get("experiment"), str) or not rec["experiment"]:
        raise ValueError("'experiment' must be a non-empty string")
    tags, params = rec.get("tags"), rec.get("params", {})
    if not isinstance(tags, dict) or not isinstance(tags.get("stage"), str):
        raise ValueError("'tags' must be an object with a 'stage' string")
    if not isinstance(params, dict):
        raise ValueError("'params' must be an object")
    for key in ("dataset", "fold", "teacher", "rule"):  # they go into an MLflow search filter
        if "'" in str(tags.get(key, "")):
            raise ValueError(f"tag {key!r} has a quote: {tags[key]!r}")
    metrics = rec.get("metrics", [])
    ok = isinstance(metrics, list) and all(
        isinstance(m, list)
        and len(m) == 4
        and isinstance(m[0], str)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in m[1:])
        for m in metrics
    )
    if not ok:
        raise ValueError("'metrics' must be a list of [name, value, timestamp, step]")
    artifacts = rec.get("artifacts", [])
    if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
        raise ValueError("'artifacts' must be a list of paths")
    status = rec.get("status", "FINISHED")
    if status not in STATUSES:
        raise ValueError(f"'status' must be one of {STATUSES}, not {status!r}")
    return {
        "experiment": rec["experiment"],
        "tags": {str(k): str(v) for k, v in tags.items()},
        "params": {str(k): str(v) for k, v in params.items()},
        "metrics": [(m[0], float(m[1]), int(m[2]), int(m[3])) for m in metrics],
        "artifacts": artifacts,
        "status": status,
    }


@dataclass
class ImportResult:
    """What :func:`import_pending` did: runs imported, records refused (``(path, reason)``,
    left in place), and records left for a later try (the store failed)."""

    imported: int = 0
    bad: list[tuple[Path, str]] = field(default_factory=list)
    left: int = 0


def import_pending() -> ImportResult:
    """Send the locally kept records to the store. A record that is not valid is named (a
    warning and :attr:`ImportResult.bad`), left in place, and the others are still imported;
    when the store fails, the remaining records stay for a later try. A record is deleted
    only once its run is in the store; only its artifacts under the project directory are
    uploaded."""
    result = ImportResult()
    paths = sorted((project_root() / PENDING_DIR).glob("*.json"))
    for i, path in enumerate(paths):
        try:
            rec = _read_record(path)
        except (OSError, ValueError) as exc:
            log.warning("%s: not a valid kept record, left in place: %s", path, exc)
            result.bad.append((path, str(exc)))
            continue
        run = Run(rec["tags"]["stage"], rec["experiment"], tags=rec["tags"])
        run.tags = rec["tags"]
        run.params = rec["params"]
        run.metrics = rec["metrics"]
        run.artifacts = rec["artifacts"]
        run.__enter__()
        if run.client is None or run.run_id is None or not run._upload(rec["status"]):
            result.left = len(paths) - i
            break
        path.unlink()
        result.imported += 1
    return result
