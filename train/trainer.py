"""`ragtune train`: prepare data → TorchTrainer on the tier → model directory + MLflow run."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragtune.cluster.resources import (
    check_schedulable,
    cpus_per_worker,
    scaling_config,
    torch_threads,
    worker_resources,
)
from ragtune.cluster.tiers import HardwareTier, get_tier
from ragtune.core.artifacts import MANIFEST_FILE, ModelManifest
from ragtune.core.atomic import atomic_dir, write_json_atomic
from ragtune.core.config import require_model
from ragtune.core.errors import InputError, RagtuneError
from ragtune.core.tracking import STORE_FILE, RunLogger, start_job_run
from ragtune.train.config import TrainJobConfig
from ragtune.train.data import prepare_data
from ragtune.train.loop import MODEL_DIR, train_loop_per_worker

RUN_NAME = "train"  # Ray Train run name inside <output_dir>/ray; reused on --resume


class TrainError(RagtuneError):
    """A training job that cannot start or did not finish."""


@dataclass
class TrainResult:
    """What a training job produced."""

    model_dir: Path
    metrics: dict[str, Any]
    seconds: float
    estimated_cost_usd: float
    mlflow_run_id: str | None

    def summary(self) -> str:
        shown = "".join(
            f"{name} {self.metrics[name]:.4f}, "
            for name in ("val_loss", "val_answer_f1")
            if name in self.metrics
        )
        return (
            f"model {self.model_dir}: step {self.metrics.get('step')}, {shown}"
            f"{self.seconds:.0f}s, ~${self.estimated_cost_usd:.4f}, mlflow run {self.mlflow_run_id}"
        )


def run_train_job(
    config: TrainJobConfig,
    resume: bool = False,
    callbacks: list | None = None,
    progress: Callable[[str], None] = print,
) -> TrainResult:
    """Fine-tune per `config`; with `resume`, continue the run in its output dir. `callbacks` are
    Ray Train callbacks (a sweep's forwards each report to Ray Tune); `progress` takes the data
    line before training starts."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    check_inputs(config)
    tier = get_tier(config.tier)
    cpus = cpus_per_worker(tier, config.num_workers)
    check_schedulable(tier, worker_resources(tier, cpus), config.num_workers)
    run_dir = config.output_dir.resolve()
    storage = run_dir / "ray"
    state_file = run_dir / "run.json"
    if resume and not state_file.exists():
        raise TrainError(f"nothing to resume in {run_dir}", "run without --resume to start it")
    if not resume and state_file.exists():
        raise TrainError(f"{run_dir} holds a run", "pass --resume to continue it, or pick another output_dir")
    run_dir.mkdir(parents=True, exist_ok=True)

    data = prepare_data(config.data, config.base_model, config.seed, tier)
    progress(data.summary())
    total_steps = planned_steps(config, data.train_rows)
    tracker = _open_tracking(config, tier, state_file, data)
    run_id = tracker.run_id
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": config,  # the validated config itself: workers need no tiers file
            "total_steps": total_steps,
            "mlflow_run_id": run_id,
            "tracking_uri": tracker.tracking_uri,
            "torch_threads": torch_threads(tier, cpus or 1),
        },
        scaling_config=scaling_config(tier, config.num_workers, cpus),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks or [],
        ),
        datasets={"train": data.train, "validation": data.validation},
    )
    started = time.perf_counter()
    try:
        result = trainer.fit()
    except Exception:
        tracker.finish("FAILED")
        raise
    seconds = time.perf_counter() - started
    cost = estimated_cost(tier, config.num_workers, seconds)
    with result.checkpoint.as_directory() as checkpoint_dir:
        model_dir = _publish_model(config, Path(checkpoint_dir) / MODEL_DIR, run_dir, result.metrics, run_id)
    tracker.log_metrics(
        {"train_seconds": seconds, "estimated_cost_usd": cost}, int(result.metrics.get("step", total_steps))
    )
    tracker.log_artifact(model_dir / MANIFEST_FILE)
    tracker.log_artifact(run_dir / "config.yaml")
    if config.lora is not None:
        tracker.log_artifact(model_dir, "adapter")
    tracker.finish()
    return TrainResult(model_dir, dict(result.metrics), seconds, cost, run_id)


def planned_steps(config: TrainJobConfig, train_rows: int) -> int:
    """Optimizer steps of the run: max_steps, or what the epochs amount to per worker."""
    if config.max_steps:
        return config.max_steps
    rows_per_worker = train_rows // config.num_workers
    micro_batches = math.ceil(rows_per_worker / config.micro_batch_size) * config.epochs
    steps = micro_batches // config.gradient_accumulation_steps
    if steps == 0:
        raise TrainError(
            f"{train_rows} training rows make no full step of global_batch_size "
            f"{config.global_batch_size}; add data or lower the batch size"
        )
    return steps


def estimated_cost(tier: HardwareTier, num_workers: int, seconds: float) -> float:
    """Price of the nodes the workers occupy for `seconds`, from the tier's hourly price."""
    per_node = tier.gpus or max(1, int(tier.cpus // (cpus_per_worker(tier, num_workers) or 1)))
    return math.ceil(num_workers / per_node) * tier.cost_per_hour * seconds / 3600


def _open_tracking(config: TrainJobConfig, tier: HardwareTier, state_file: Path, data) -> RunLogger:
    """Open the job's MLflow run, or reopen it on resume (one run per job, not per attempt) in the
    store the run began in."""
    if state_file.exists():
        state = json.loads(state_file.read_text())
        return RunLogger(state.get("tracking_uri") or _store_of_older_runs(config), state["mlflow_run_id"])
    tracker = start_job_run(
        config,
        "train",
        tier.name,
        {
            "tier.cost_per_hour": tier.cost_per_hour,
            "tier.accelerator_type": tier.accelerator_type,
            "data.train_rows": data.train_rows,
            "data.validation_rows": data.validation_rows,
            "data.bad_rows": sum(data.bad_rows.values()),
        },
    )
    run_dir = state_file.parent
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    write_json_atomic(state_file, {"mlflow_run_id": tracker.run_id, "tracking_uri": tracker.tracking_uri})
    return tracker


def _store_of_older_runs(config: TrainJobConfig) -> str:
    """Runs begun before run.json recorded their store kept `mlflow.db` inside the run dir."""
    inside = config.output_dir.resolve() / STORE_FILE
    return f"sqlite:///{inside}" if inside.is_file() else config.tracking_uri()


def _publish_model(config: TrainJobConfig, source: Path, run_dir: Path, metrics: dict, run_id: str) -> Path:
    """Copy the checkpoint's model, the tokenizer and a manifest into <run>/model atomically."""
    from transformers import AutoTokenizer

    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, **extra)
    target = run_dir / "model"
    manifest = ModelManifest(
        base_model=config.base_model,
        gguf_file=config.gguf_file,
        adapter=config.lora is not None,
        system_prompt=config.data.system_prompt,
        data_fingerprint=data_fingerprint(config.data.train_files + config.data.validation_files),
        final_metrics=metrics,
        mlflow_run_id=run_id,
        config=config.model_dump(mode="json"),
    )
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        tokenizer.save_pretrained(tmp)
        manifest.write(tmp)
    return target


def check_inputs(config: TrainJobConfig) -> None:
    """Fail before any work when a data file or a local base model is missing."""
    for path in [*config.data.train_files, *config.data.validation_files]:
        if not Path(path).is_file():
            raise InputError(f"data file {path} not found", "fix data.train_files / data.validation_files")
    require_model(config.base_model, "base_model")
    ModelManifest.check_replaceable(config.output_dir / "model")


def data_fingerprint(paths: list[str]) -> str:
    """Hash of the training files' contents, recorded in the model manifest."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
