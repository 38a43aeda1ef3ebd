"""MLflow tracking: the settings every job shares, and one run per job (the driver opens and
closes it; a training job's rank 0 logs its step metrics)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from ragtune.core.config import StrictModel

STORE_FILE = "mlflow.db"


class TrackingConfig(StrictModel):
    """MLflow experiment tracking."""

    experiment: str = Field("ragtune", description="MLflow experiment name.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default MLFLOW_TRACKING_URI, else a SQLite file "
        "`mlflow.db` beside the job's output folder.",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="More tags on the job's run.")

    def uri(self, output: Path) -> str:
        """The one rule for where a job's run goes: the configured URI, else MLflow's own
        MLFLOW_TRACKING_URI, else `mlflow.db` in the folder holding `output` (outputs are replaced
        whole, and sibling jobs share one store, so their runs compare in one MLflow UI)."""
        configured = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return configured or f"sqlite:///{(Path(output).resolve().parent / STORE_FILE)}"


class RunLogger:
    """Logs to an existing MLflow run through the client API (no global active-run state).

    Tracking is a side channel: if MLflow fails (unreachable, refusing), the first failure is
    said once and later calls are skipped, so the job carries on. `run_id` None: no run (MLflow
    was unreachable when the job began)."""

    def __init__(self, tracking_uri: str, run_id: str | None):
        from mlflow.tracking import MlflowClient

        _fail_fast()
        self.client, self.run_id, self.tracking_uri = MlflowClient(tracking_uri), run_id, tracking_uri
        self.failed = run_id is None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics_list = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._call("logging metrics", self.client.log_batch, self.run_id, metrics=metrics_list)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
        self._call("logging params", self.client.log_batch, self.run_id, params=params_list)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        log = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
        self._call("logging an artifact", log, self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        self._call("closing the run", self.client.set_terminated, self.run_id, status)

    def _call(self, action: str, method, *args, **kwargs) -> None:
        if self.failed:
            return
        try:
            method(*args, **kwargs)
        except Exception as exc:  # any failure of the side channel; the job itself goes on
            self.failed = True
            _warn(self.tracking_uri, action, exc)


def _warn(tracking_uri: str, action: str, exc: Exception) -> None:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(
        f"warning: MLflow at {tracking_uri}: {action} failed ({reason}); the job carries on without tracking"
    )


def _fail_fast() -> None:
    """A few quick retries for MLflow's HTTP client instead of its minutes of backoff, unless the
    user set them."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def start_run(tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> RunLogger:
    """Create (or reuse) the experiment and open a new run in it."""
    from mlflow.tracking import MlflowClient

    _fail_fast()
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return RunLogger(tracking_uri, run.info.run_id)


def start_job_run(config, job: str, tier: str, extra_params: dict[str, Any]) -> RunLogger:
    """A job's run: named after its output folder, tagged with the job and tier, with the job's
    config (flattened) and `extra_params` as params. `config` has `tracking`, `tracking_uri()` and
    `output_dir`, as the job configs do. MLflow unreachable: a RunLogger without a run, said once."""
    tags = {**config.tracking.tags, "tier": tier, "ragtune.job": job}
    uri = config.tracking_uri()
    try:
        tracker = start_run(uri, config.tracking.experiment, config.output_dir.name, tags)
    except Exception as exc:  # tracking must not stop the job
        _warn(uri, "starting a run", exc)
        return RunLogger(uri, None)
    tracker.log_params({**flatten(config.model_dump(mode="json")), **extra_params})
    return tracker


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config → MLflow params `a.b.c`."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
