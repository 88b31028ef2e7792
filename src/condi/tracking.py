"""MLflow tracking: one experiment per dataset, one run per pipeline job (docs/cluster.md,
"MLflow").

The store is SQLite at the repository root (``sqlite:///<abs>/mlflow.db``; MLflow 3 refuses
the file store), overridable by ``MLFLOW_TRACKING_URI`` (e.g. an ``mlflow server``). Tracking
never costs a result: every call is retried with jittered back-off (parallel jobs meet
SQLite's write lock), and when the store stays unreachable, locked or fails on the way the
run's whole record is kept as JSON under ``.mlflow_pending/`` for ``condi tracking import``
and the stage goes on with a warning. Create the store once before parallel jobs start
(``condi tracking init``; the Snakefile's ``onstart`` does).

A run is created when its job starts, with its params; its metrics are sent as they come (a
training sends one batch per epoch, so its curves grow while it runs); its artifacts (result
files and a trained model's checkpoint, under ``checkpoint/``) are copied into the artifact
store when it ends. With a SQLite store that is ``mlartifacts/`` beside the database, named
by relative ``mlflow-artifacts:/`` URIs, so ``mlflow ui`` started beside ``mlflow.db`` (in the
project or in a copy of it) shows that folder's files; a server keeps them where its
``--artifacts-destination`` says. A trained model is also an MLflow logged model (the
experiment's Models list) naming its DVC-tracked checkpoint (``dvc_path``, ``dvc_md5``).

Runs are named after their job, as DVC names it (``train_student@synthetic-1-...``), and
nested under the run they belong to (``mlflow.parentRunId``): a job that works with a trained
teacher (its stage has the ``teacher`` wildcard: pseudo-labels, students, scores, evaluation,
timing, the ablation's jobs) under the latest finished run that trained that teacher
(:func:`teacher_stage`: ``train_teacher``, or ``ablation_train_teacher`` of the job's
protocol); every other job (data, pre-training, teacher training, tables, figures), or one
whose teacher has no run, under
its pipeline invocation's run: a run named ``pipeline <invocation>`` per experiment, which the
Snakefile opens (``onstart``) and ends (``onsuccess``/``onerror``); the invocation id
(``CONDI_INVOCATION``) reaches every job through the environment. Jobs run by DVC or by hand
have no invocation unless ``CONDI_INVOCATION`` is set: they are top-level unless nested
under a teacher's run.

Tags (:func:`stage_tags`): MLflow's own context tags (``mlflow.user``, ``mlflow.source.name``,
``mlflow.source.type``, ``mlflow.source.git.commit``, ``mlflow.runName``, through
``mlflow.tracking.context.registry.resolve_tags``) and the pipeline's, none repeating them:

* ``stage`` and ``rule`` (the stage of condi.pipeline's table: Snakemake rule and DVC stage,
  given to every command by ``--stage``), ``dvc_stage`` (the job, e.g.
  ``train_student@synthetic-1-resnext-resnext8-condi_sr``), ``dataset`` and the job's other
  wildcards (``fold``, ``teacher``, ``student``, ``method``; the ablation's ``protocol``,
  ``source``, ``detach``, ``kd``, ``seed``), ``invocation``;
* ``git_dirty`` (the commit is ``mlflow.source.git.commit``, of the project's checkout);
* ``params_hash``: sha256 (16 hex digits) of the job's params values (the stage's keys in the
  table: the params logged with the run, DVC's ``params:``, the resume hash);
* ``dvc_md5/<path>`` for every input file of the job, the md5 DVC computes for it (taken from
  ``dvc.lock`` when its record matches the file, else computed), and ``inputs`` / ``outputs``
  (JSON lists of paths);
* ``model_path`` (the DVC path of the model the job trained, or the checkpoint it used) and,
  at the end, ``model_dvc_md5`` of a trained model.
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
# the pipeline invocation a job belongs to (the Snakefile exports it to every job)
INVOCATION_ENV = "CONDI_INVOCATION"
# "0" turns tracking off: no run, no store, no import of MLflow (:func:`tracking_enabled`)
TRACKING_ENV = "CONDI_TRACKING"
PIPELINE_STAGE = "pipeline"  # the stage tag of an invocation's parent run


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

    from condi.config import read_yaml

    path = Path(lock) if lock else project_root() / "dvc.lock"
    try:
        with open(path) as f:
            data = read_yaml(f) or {}
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
    if makes_model(stage) and outputs:
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


def tracking_enabled() -> bool:
    """Whether this process tracks: yes unless :data:`TRACKING_ENV` is ``0``. Off, a stage
    runs as it would with tracking on, but no MLflow run is created or kept, and neither
    ``condi tracking init`` nor ``end`` touches a store (a pipeline run with
    ``CONDI_TRACKING=0`` leaves no ``mlflow.db``)."""
    return os.environ.get(TRACKING_ENV, "1") != "0"


def init_store(params: dict[str, Any] | None = None) -> str:
    """Create the database (and its schema) once, before parallel jobs start, and, within a
    pipeline invocation (:data:`INVOCATION_ENV`), its parent run in the experiment of every
    dataset of ``params``; returns the store's URI for display (credentials redacted)."""
    _retry(lambda: _client().search_experiments(max_results=1))
    if invocation() and params is not None:
        for dataset in params.get("datasets", {}):
            Run(PIPELINE_STAGE, dataset).ensure_pipeline_run()
    return display_uri()


def end_invocation(status: str) -> int:
    """End this invocation's parent runs (every experiment) with ``status``; how many."""
    inv = invocation()
    if not inv:
        return 0
    client = _client()
    ended = 0
    for exp in client.search_experiments(max_results=1000):
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.invocation = '{inv}' and tags.stage = '{PIPELINE_STAGE}'",
            max_results=10,
        )
        for run in runs:
            if run.info.status == "RUNNING":
                _retry(lambda r=run: client.set_terminated(r.info.run_id, status))
                ended += 1
    return ended


def invocation() -> str | None:
    """The pipeline invocation this process belongs to (:data:`INVOCATION_ENV`, exported by
    the Snakefile to every job), if it is a safe name."""
    value = os.environ.get(INVOCATION_ENV, "")
    return value if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) else None


def export_invocation() -> str:
    """Give this process (and so every job it starts) an invocation id, unless it has one (a
    SLURM job inherits its submitter's): what the Snakefile calls."""
    if not invocation():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        os.environ[INVOCATION_ENV] = f"{stamp}-{uuid.uuid4().hex[:6]}"
    return os.environ[INVOCATION_ENV]


def makes_model(stage: str) -> bool:
    """The stage trains a model: its outputs are checkpoints (``.pt``)."""
    from condi.pipeline import STAGES

    s = STAGES.get(stage)
    return s is not None and any(o.pattern.endswith(".pt") for o in s.outputs.values())


def teacher_stage(stage: str) -> str | None:
    """The stage whose run trained the teacher a job of ``stage`` works with (its runs are
    nested under that run): ``train_teacher``, or ``ablation_train_teacher`` for a job of the
    ablation's protocols; None for a stage without the ``teacher`` wildcard and for one that
    trains a teacher itself (a model, no student: pre-training and training)."""
    from condi.pipeline import STAGES

    s = STAGES.get(stage)
    if s is None or "teacher" not in s.wildcards:
        return None
    if makes_model(stage) and "student" not in s.wildcards:
        return None
    return "ablation_train_teacher" if "protocol" in s.wildcards else "train_teacher"


_METRIC_KEY = re.compile(r"[^\w\-. /:]")


def metric_key(name: str) -> str:
    """``name`` as MLflow accepts a metric key: letters, digits, ``_ - . / :`` and space, and
    a path that stays itself when normalised (no empty, ``.`` or ``..`` part)."""
    parts = [p for p in _METRIC_KEY.sub("_", str(name)).split("/") if p.strip()]
    return "/".join("_" if p in (".", "..") else p for p in parts)[:250] or "_"


def _local_artifact_root(uri: str | None = None) -> Path | None:
    """Where ``mlflow-artifacts:/`` lives for a SQLite store (``uri``, default the tracking
    URI): ``mlartifacts/`` beside the database file (what ``mlflow ui`` or ``mlflow server``
    started there serves by default)."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).parent / "mlartifacts"


def local_artifact_dir(artifact_uri: str, store: str | None = None) -> Path | None:
    """The folder a ``mlflow-artifacts:/...`` URI names in the ``mlartifacts/`` of a SQLite
    store (``store``, default the tracking URI); None for a URI the MLflow client reaches
    itself (a server's, a file store's)."""
    root = _local_artifact_root(store)
    if root is None or not artifact_uri.startswith("mlflow-artifacts:"):
        return None
    rel = artifact_uri[len("mlflow-artifacts:") :].lstrip("/")
    path = (root / rel).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _inapplicable_context_providers() -> list[type]:
    """MLflow's context providers whose check cannot succeed in this process, and costs a third
    of a second per job (it imports IPython): the Jupyter one outside an IPython shell (which
    would have imported IPython already), the Databricks ones outside a Databricks runtime
    (MLflow's own test: ``DATABRICKS_RUNTIME_VERSION`` is set)."""
    import sys

    from mlflow.tracking.context import (
        databricks_cluster_context,
        databricks_command_context,
        databricks_job_context,
        databricks_notebook_context,
        databricks_repo_context,
        jupyter_notebook_context,
    )
    from mlflow.utils.databricks_utils import is_in_databricks_runtime

    skip: list[type] = []
    if "IPython" not in sys.modules:
        skip.append(jupyter_notebook_context.JupyterNotebookRunContext)
    if not is_in_databricks_runtime():
        skip += [
            databricks_notebook_context.DatabricksNotebookRunContext,
            databricks_job_context.DatabricksJobRunContext,
            databricks_cluster_context.DatabricksClusterRunContext,
            databricks_command_context.DatabricksCommandRunContext,
            databricks_repo_context.DatabricksRepoRunContext,
        ]
    return skip


def _context_tags(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` over MLflow's own context tags (``mlflow.user``, ``mlflow.source.name``,
    ``mlflow.source.type``, ...: ``mlflow.tracking.context.registry.resolve_tags``); the
    given ones win, so a kept record imported later keeps its own. Providers that cannot apply
    are skipped (:func:`_inapplicable_context_providers`)."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        resolved = resolve_tags(tags, ignore=_inapplicable_context_providers())
        return {str(k): str(v) for k, v in resolved.items()}
    except Exception as exc:  # metadata only: never fail the job for it
        log.warning("MLflow context tags unavailable: %s", exc)
        return dict(tags)


class Run:
    """A tracked job: ``with Run("train_teacher", dataset="synthetic", tags={...}) as run: ...``
    (stage commands make theirs with ``condi.cli.common.StageContext.run``).

    The run is created when the block starts, with its params, its tags (the pipeline's and
    MLflow's context tags) and its parent (see the module docstring); metrics are sent as they
    are logged (one batch per :meth:`log_metrics` call: an epoch of a training), artifacts and
    the end status when the block ends. When the store cannot be reached or fails on the way,
    the whole record is kept under ``.mlflow_pending/`` instead (and a run the store already
    holds is ended FAILED)."""

    def __init__(
        self,
        stage: str,
        dataset: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        enabled: bool = True,
        name: str | None = None,
    ) -> None:
        self.stage, self.dataset = stage, dataset
        self.name = name or stage
        self.params = flatten(params or {})
        commit = git_commit()
        self.tags = {
            "stage": stage,
            "dataset": dataset,
            "git_dirty": git_dirty(),
            **({"mlflow.source.git.commit": commit} if commit != "unknown" else {}),
            **({"invocation": invocation()} if invocation() else {}),
            **{k: str(v) for k, v in (tags or {}).items()},
        }
        # under torchrun only rank 0 records the run
        self.enabled = enabled and tracking_enabled() and os.environ.get("RANK", "0") == "0"
        self.metrics: list[tuple[str, float, int, int]] = []  # all of them (a kept record's)
        self._sent = 0  # how many of them the store has
        self.artifacts: list[str] = []
        self.client = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.artifact_uri: str = ""

    # -- public API --------------------------------------------------------
    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Record ``metrics`` at ``step`` and send them at once (one batch): the run's curves
        grow while it runs."""
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v:  # no NaN
                self.metrics.append((metric_key(k), float(v), ts, int(step)))
        self._stream()

    def log_artifact(self, path: str | Path) -> None:
        """Copy ``path`` (a file under the project) into the run's artifacts at the end; a
        trained model's checkpoint goes under ``checkpoint/``."""
        # absolute: a kept record may be imported from another directory
        self.artifacts.append(str(Path(path).resolve()))

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> Run:
        if not self.enabled:
            return self
        try:
            self.client = _client()
            self.tags = _context_tags(self.tags)

            def start():
                self.experiment_id = self._experiment_id()
                parent = self._parent(self.experiment_id)
                tags = {**self.tags, **({"mlflow.parentRunId": parent} if parent else {})}
                run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.name)
                self.artifact_uri = run.info.artifact_uri
                return run.info.run_id

            self.run_id = _retry(start)
            _retry(self._send_params)
        except Exception as exc:
            log.warning(
                "MLflow store %s unreachable (%s); keeping this run's record locally",
                display_uri(),
                redact(exc),
            )
            self._abandon()
        return self

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.dataset)
        if exp is not None:
            return exp.experiment_id
        # a SQLite store's artifacts go to mlartifacts/ beside it, by a relative URI (a copy
        # of the project shows its own files); a server chooses its own location
        location = (
            f"mlflow-artifacts:/{_safe_name(self.dataset)}" if _local_artifact_root() else None
        )
        try:
            return self.client.create_experiment(self.dataset, artifact_location=location)
        except Exception:  # created concurrently by another job
            return self.client.get_experiment_by_name(self.dataset).experiment_id

    def _parent(self, exp_id: str) -> str | None:
        """The run this one belongs to: the latest finished run that trained its teacher, else
        its pipeline invocation's run (none for a job run by DVC or by hand)."""
        if self.stage == PIPELINE_STAGE:
            return None
        trainer = teacher_stage(self.tags.get("rule", self.stage))
        if trainer and "teacher" in self.tags:
            filt = " and ".join(
                f"tags.{k} = '{self.tags[k]}'"
                for k in ("dataset", "fold", "teacher", "protocol")
                if k in self.tags
            )
            runs = self.client.search_runs(
                [exp_id],
                filter_string=f"tags.rule = '{trainer}' and attributes.status = 'FINISHED'"
                f" and {filt}",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if runs:
                return runs[0].info.run_id
        inv = self.tags.get("invocation", "")
        if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", inv):
            return self._pipeline_run(exp_id, inv)
        return None

    def _pipeline_run(self, exp_id: str, inv: str) -> str:
        """Invocation ``inv``'s parent run in the experiment (made when missing)."""
        runs = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.invocation = '{inv}' and tags.stage = '{PIPELINE_STAGE}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if runs:
            return runs[0].info.run_id
        tags = _context_tags({"stage": PIPELINE_STAGE, "dataset": self.dataset, "invocation": inv})
        commit = git_commit()
        if commit != "unknown":
            tags["mlflow.source.git.commit"] = commit
        run = self.client.create_run(exp_id, tags=tags, run_name=f"{PIPELINE_STAGE} {inv}")
        return run.info.run_id

    def ensure_pipeline_run(self) -> str | None:
        """Make this invocation's parent run in the experiment of :attr:`dataset`."""
        self.client = _client()
        exp_id = _retry(self._experiment_id)
        inv = invocation()
        return _retry(lambda: self._pipeline_run(exp_id, inv)) if inv else None

    def _send_params(self) -> None:
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in self.params.items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _send_metrics(self) -> None:
        from mlflow.entities import Metric

        while self._sent < len(self.metrics):
            batch = self.metrics[self._sent : self._sent + 1000]
            self.client.log_batch(self.run_id, metrics=[Metric(*m) for m in batch])
            self._sent += len(batch)

    def _stream(self) -> None:
        if self.client is None or self.run_id is None:
            return
        try:
            _retry(self._send_metrics)
        except Exception as err:
            log.warning(
                "MLflow logging failed (%s); keeping this run's record locally", redact(err)
            )
            self._abandon()

    def _abandon(self) -> None:
        """Stop sending to the store (its run, if any, ended FAILED): the record is kept."""
        if self.client is not None and self.run_id is not None:
            try:
                self.client.set_terminated(self.run_id, "FAILED")
            except Exception as end_err:
                log.warning(
                    "MLflow run %s could not be marked FAILED either (%s)",
                    self.run_id,
                    redact(end_err),
                )
        self.client, self.run_id = None, None

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        status = "FAILED" if exc_type else "FINISHED"
        model = self.tags.get("model_path")
        trained = status == "FINISHED" and makes_model(self.stage) and model
        local = _artifact_under_project(model, quiet=True) if trained else None
        if local is not None:
            self.tags["model_dvc_md5"] = file_md5(local)
            self.log_artifact(local)
        if self.client is not None and self.run_id is not None and self._upload(status):
            return
        self._write_pending(status)

    def _upload(self, status: str) -> bool:
        """Send what is left of the record and end the run with ``status``; False if that
        failed, in which case the run is ended FAILED (best effort), never left RUNNING."""
        try:
            _retry(self._flush_to_store)
            _retry(lambda: self.client.set_terminated(self.run_id, status))
            return True
        except Exception as err:
            log.warning(
                "MLflow logging failed (%s); keeping this run's record locally", redact(err)
            )
            self._abandon()
            return False

    def _flush_to_store(self) -> None:
        from mlflow.entities import RunTag

        self._send_metrics()
        if "model_dvc_md5" in self.tags:
            self.client.log_batch(
                self.run_id, tags=[RunTag("model_dvc_md5", self.tags["model_dvc_md5"])]
            )
        for path in self.artifacts:
            local = _artifact_under_project(path)
            if local is not None:
                self._store_artifact(local)
        if "model_dvc_md5" in self.tags:
            self._log_model()

    def _artifact_path(self, local: Path) -> str | None:
        """A trained model's checkpoint goes under ``checkpoint/``, the rest at the top."""
        model = self.tags.get("model_path")
        if model and local == _artifact_under_project(model, quiet=True):
            return "checkpoint"
        return None

    def _store_artifact(self, local: Path) -> None:
        sub = self._artifact_path(local)
        dest = local_artifact_dir(self.artifact_uri)
        if dest is None:
            self.client.log_artifact(self.run_id, str(local), sub)
            return
        import shutil

        folder = dest / sub if sub else dest
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, folder / local.name)

    def _log_model(self) -> None:
        """The trained model as an MLflow logged model (the experiment's Models list): it names
        its DVC-tracked checkpoint (path and md5) and the copy among the run's artifacts."""
        from mlflow.entities import LoggedModelStatus

        path = self.tags["model_path"]
        model = self.client.create_logged_model(
            self.experiment_id,
            name=_safe_name(self.tags.get("dvc_stage", self.stage)),
            source_run_id=self.run_id,
            tags={
                "dvc_path": path,
                "dvc_md5": self.tags["model_dvc_md5"],
                "checkpoint": f"runs:/{self.run_id}/checkpoint/{Path(path).name}",
                "stage": self.stage,
            },
            model_type="condi-checkpoint",
        )
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)

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
                "name": self.name,
                "tags": _context_tags(self.tags),
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


def _artifact_under_project(path: str | Path, quiet: bool = False) -> Path | None:
    """The file ``path`` names (relative paths are taken from the project directory) when it
    is a regular file under the project directory once links are resolved; else None, with
    a warning (an artifact is never uploaded from elsewhere, e.g. ``/etc/hostname``)."""
    root = project_root()
    p = Path(path)
    local = (p if p.is_absolute() else root / p).resolve()
    if not local.is_relative_to(root):
        if not quiet:
            log.warning("artifact %s is outside the project directory %s; not uploaded", path, root)
        return None
    if not local.is_file():
        if not quiet:
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
    # they go into MLflow search filters
    for key in ("dataset", "fold", "teacher", "rule", "invocation", "protocol"):
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
    name = rec.get("name", tags["stage"])
    if not isinstance(name, str) or not name:
        raise ValueError("'name' must be a non-empty string")
    return {
        "name": name,
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
        run = Run(rec["tags"]["stage"], rec["experiment"], tags=rec["tags"], name=rec["name"])
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
