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

    def uri(self, output: Path) -> str:
        """The one rule for where a job's run goes: the configured URI, else MLflow's own
        MLFLOW_TRACKING_URI, else `mlflow.db` in the folder holding `output` (outputs are replaced
        whole, and sibling jobs share one store, so their runs compare in one MLflow UI)."""
        configured = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return configured or f"sqlite:///{(Path(output).resolve().parent / STORE_FILE)}"


class RunLogger:
    """Logs to an existing MLflow run through the client API (no global active-run state)."""

    def __init__(self, tracking_uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.client, self.run_id, self.tracking_uri = MlflowClient(tracking_uri), run_id, tracking_uri

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        else:
            self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def start_run(tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> RunLogger:
    """Create (or reuse) the experiment and open a new run in it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return RunLogger(tracking_uri, run.info.run_id)


def start_job_run(config, job: str, tier: str, extra_params: dict[str, Any]) -> RunLogger:
    """A job's run: named after its output folder, tagged with the job and tier, with the job's
    config (flattened) and `extra_params` as params. `config` has `tracking`, `tracking_uri()` and
    `output_dir`, as the job configs do."""
    tags = {"tier": tier, "ragtune.job": job}
    tracker = start_run(config.tracking_uri(), config.tracking.experiment, config.output_dir.name, tags)
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
