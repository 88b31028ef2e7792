"""MLflow tracking: one experiment per dataset, one run per pipeline job.

The store is SQLite at the repository root (``sqlite:///<abs>/mlflow.db``; MLflow 3 refuses
the file store), overridable by ``MLFLOW_TRACKING_URI``. Metrics are buffered and sent with
``log_batch``. Tracking never costs a result: every call is retried briefly, and when the
store stays unreachable or locked the run's record is kept as JSON under
``.mlflow_pending/`` for ``condi tracking import`` and the stage goes on with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PENDING_DIR = ".mlflow_pending"


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


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=project_root(),
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _retry(fn: Callable[[], Any], tries: int = 3, delay: float = 0.5) -> Any:
    for attempt in range(tries):
        try:
            return fn()
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(delay * (2**attempt))
    return None


def init_store() -> str:
    """Create the database (and its schema) once, before parallel jobs start."""
    import mlflow

    uri = tracking_uri()
    mlflow.MlflowClient(uri).search_experiments(max_results=1)
    return uri


class Run:
    """A tracked job: ``with Run("train_teacher", dataset="synthetic", tags={...}) as run: ...``."""

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
        self.tags = {
            "stage": stage,
            "dataset": dataset,
            "git_commit": git_commit(),
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
        self.artifacts.append(str(path))

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> Run:
        if not self.enabled:
            return self
        try:
            import mlflow

            self.client = mlflow.MlflowClient(tracking_uri())

            def start():
                exp = self.client.get_experiment_by_name(self.dataset)
                exp_id = exp.experiment_id if exp else self._create_experiment()
                run = self.client.create_run(
                    exp_id, tags=self.tags, run_name=self.tags.get("run_name", self.stage)
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

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        status = "FAILED" if exc_type else "FINISHED"
        if self.client is not None and self.run_id is not None:
            try:
                _retry(self._flush_to_store)
                _retry(lambda: self.client.set_terminated(self.run_id, status))
                return
            except Exception as err:
                log.warning("MLflow logging failed (%s); keeping this run's record locally", err)
        self._write_pending(status)

    def _flush_to_store(self) -> None:
        from mlflow.entities import Metric, Param

        params = [Param(k, v[:6000]) for k, v in self.params.items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        metrics = [Metric(k, v, ts, s) for k, v, ts, s in self.metrics]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        self.params, self.metrics = {}, []
        for path in self.artifacts:
            if Path(path).exists():
                self.client.log_artifact(self.run_id, path)
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
        run.params = rec["params"]
        run.metrics = [tuple(m) for m in rec["metrics"]]
        run.artifacts = rec["artifacts"]
        run.__enter__()
        if run.client is None:
            break
        run.__exit__(None, None, None)
        path.unlink()
        n += 1
    return n
