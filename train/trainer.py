"""`ragtune train`: prepare data → TorchTrainer on the tier → model directory + MLflow run."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.atomic import atomic_dir, write_json_atomic
from cluster.tiers import (
    HardwareTier,
    check_schedulable,
    get_tier,
    scaling_config,
    worker_resources,
)
from train.config import TrainJobConfig
from train.data import prepare_data
from train.loop import MODEL_DIR, train_loop_per_worker
from train.tracking import flatten, start_run

RUN_NAME = "train"  # Ray Train run name inside <output_dir>/ray; reused on --resume
MANIFEST_FILE = "ragtune_manifest.json"


class TrainError(RuntimeError):
    """A training job that cannot start or did not finish."""


@dataclass
class TrainResult:
    """What a training job produced."""

    model_dir: Path
    metrics: dict[str, Any]
    seconds: float
    estimated_cost_usd: float
    mlflow_run_id: str

    def summary(self) -> str:
        loss = self.metrics.get("val_loss")
        shown = f"val_loss {loss:.4f}, " if loss is not None else ""
        return (
            f"model {self.model_dir}: step {self.metrics.get('step')}, {shown}"
            f"{self.seconds:.0f}s, ~${self.estimated_cost_usd:.4f}, mlflow run {self.mlflow_run_id}"
        )


def run_train_job(config: TrainJobConfig, resume: bool = False) -> TrainResult:
    """Fine-tune per `config`; with `resume`, continue the run in its output dir."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    tier = get_tier(config.tier)
    cpus = cpus_per_worker(tier, config.num_workers)
    check_schedulable(tier, worker_resources(tier, cpus), config.num_workers)
    run_dir = config.output_dir.resolve()
    storage = run_dir / "ray"
    state_file = run_dir / "run.json"
    if resume != state_file.exists():
        raise TrainError(
            f"{run_dir} holds a run: pass --resume to continue it, or pick another output_dir"
            if not resume
            else f"nothing to resume in {run_dir}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)

    data = prepare_data(config.data, config.base_model, config.seed)
    print(data.summary())
    total_steps = planned_steps(config, data.train_rows)
    tracker, run_id = _open_tracking(config, tier, state_file, data)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": config.model_dump(mode="json"),
            "total_steps": total_steps,
            "mlflow_run_id": run_id,
            "tracking_uri": config.tracking_uri(),
            "torch_threads": int(cpus) if cpus else None,
        },
        scaling_config=scaling_config(tier, config.num_workers, cpus),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
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
        model_dir = _publish_model(config, Path(checkpoint_dir) / MODEL_DIR, run_dir, result.metrics,
                                   run_id)  # fmt: skip
    tracker.log_metrics({"train_seconds": seconds, "estimated_cost_usd": cost},
                        int(result.metrics.get("step", total_steps)))  # fmt: skip
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


def cpus_per_worker(tier: HardwareTier, num_workers: int) -> float | None:
    """On CPU tiers workers split a node's cores (torch threads follow); GPU tiers: default."""
    if tier.gpus:
        return None
    return float(max(1, int(tier.cpus) // num_workers))


def estimated_cost(tier: HardwareTier, num_workers: int, seconds: float) -> float:
    """Price of the nodes the workers occupy for `seconds`, from the tier's hourly price."""
    per_node = tier.gpus or max(1, int(tier.cpus // (cpus_per_worker(tier, num_workers) or 1)))
    return math.ceil(num_workers / per_node) * tier.cost_per_hour * seconds / 3600


def _open_tracking(config: TrainJobConfig, tier: HardwareTier, state_file: Path, data):
    """Open the job's MLflow run, or reopen it on resume (one run per job, not per attempt)."""
    from train.tracking import RunLogger

    if state_file.exists():
        run_id = json.loads(state_file.read_text())["mlflow_run_id"]
        return RunLogger(config.tracking_uri(), run_id), run_id
    tracker = start_run(config.tracking_uri(), config.tracking.experiment,
                        config.output_dir.name, {"tier": tier.name, "ragtune.job": "train"})  # fmt: skip
    tracker.log_params({
        **flatten(config.model_dump(mode="json")),
        "tier.cost_per_hour": tier.cost_per_hour, "tier.accelerator_type": tier.accelerator_type,
        "data.train_rows": data.train_rows, "data.validation_rows": data.validation_rows,
        "data.bad_rows": sum(data.bad_rows.values()),
    })  # fmt: skip
    run_dir = state_file.parent
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    write_json_atomic(state_file, {"mlflow_run_id": tracker.run_id})
    return tracker, tracker.run_id


def _publish_model(config: TrainJobConfig, source: Path, run_dir: Path, metrics: dict,
                   run_id: str) -> Path:  # fmt: skip
    """Copy the checkpoint's model, the tokenizer and a manifest into <run>/model atomically."""
    from transformers import AutoTokenizer

    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, **extra)
    target = run_dir / "model"
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / MANIFEST_FILE, {
            "base_model": config.base_model,
            "gguf_file": config.gguf_file,
            "adapter": config.lora is not None,
            "system_prompt": config.data.system_prompt,
            "data_fingerprint": data_fingerprint(config.data.train_files
                                                 + config.data.validation_files),
            "final_metrics": metrics,
            "mlflow_run_id": run_id,
            "config": config.model_dump(mode="json"),
        })  # fmt: skip
    return target


def data_fingerprint(paths: list[str]) -> str:
    """Hash of the training files' contents, recorded in the model manifest."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
