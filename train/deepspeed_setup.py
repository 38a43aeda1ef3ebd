"""DeepSpeed config and learning-rate schedule built from the typed train config."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ragtune.train.config import OptimizerConfig, TrainJobConfig


def deepspeed_config(config: TrainJobConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed JSON config. With optimizer offload DeepSpeed's own (CPU) Adam is used;
    otherwise the client AdamW, which needs no compiled op."""
    ds = config.deepspeed
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu"}
    result: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "train_batch_size": config.micro_batch_size * config.gradient_accumulation_steps * world_size,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.precision == "bf16"},
        "fp16": {"enabled": ds.precision == "fp16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if ds.gradient_clipping:
        result["gradient_clipping"] = ds.gradient_clipping
    if ds.offload_optimizer:
        result["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay},
        }
    return result


def lr_lambda(optimizer: OptimizerConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak LR at each step: linear warm-up, then the configured decay."""
    warmup, schedule = optimizer.warmup_steps, optimizer.schedule

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
