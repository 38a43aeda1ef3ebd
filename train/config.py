"""Typed config of `ragtune train`: model, data, LoRA, DeepSpeed, schedule, tier and tracking."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import TierName, get_tier
from ragtune.core.config import ModelName, StrictModel
from ragtune.core.prompt import DEFAULT_SYSTEM_PROMPT
from ragtune.core.tracking import TrackingConfig

NO_BF16_ACCELERATORS = {"T4", "V100", "P100", "K80", "M60"}  # before compute capability 8.0


class RaftConfig(StrictModel):
    """How a RAFT row (question, answer, oracle passage, distractors) becomes a prompt: `passages`
    chunks, the oracle among them with probability `oracle_probability`, shuffled (Zhang et al.
    2024, "RAFT: Adapting Language Model to Domain Specific RAG")."""

    passages: int = Field(3, ge=1, description="Passages in each prompt (the k served with).")
    oracle_probability: float = Field(
        0.8, ge=0, le=1, description="Chance the oracle passage is among them (else a distractor)."
    )
    random_distractors: int = Field(
        1, ge=0, description="Distractor slots filled from random passages; the rest are hard ones."
    )
    cite: bool = Field(
        False, description="End the answer with [n], the oracle's number, when the oracle supports it."
    )
    seed: int = Field(0, description="Seed of the per-row draws (oracle in or out, order).")


class DataConfig(StrictModel):
    """Training data: files, their format, how prompts are rendered and split."""

    train_files: list[str] = Field(min_length=1, description="JSONL or Parquet files.")
    validation_files: list[str] = Field(
        default_factory=list, description="Held-out files; default: split off the train files."
    )
    format: Literal["auto", "instruction", "chat", "rag", "raft"] = Field(
        "auto",
        description="instruction (instruction/input/output), chat (messages), rag "
        "(question/context/answer), raft (question/answer/oracle/distractors); auto detects per row.",
    )
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Split when no val files.")
    max_length: int = Field(512, ge=16, description="Longest tokenised example; longer are bad rows.")
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System message of every prompt.")
    raft: RaftConfig = Field(default_factory=RaftConfig, description="How raft rows become prompts.")


class LoraConfig(StrictModel):
    """PEFT LoRA adapter settings."""

    r: int = Field(8, ge=1, description="Rank.")
    alpha: int = Field(16, ge=1, description="Scaling numerator (alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear."
    )
    layers_to_transform: list[int] | None = Field(
        None, description="Adapt only these decoder layers (backprop then stops at the lowest)."
    )

    @model_validator(mode="after")
    def _layers_need_module_names(self) -> LoraConfig:
        if self.layers_to_transform is not None and self.target_modules == "all-linear":
            raise ValueError("layers_to_transform needs target_modules as a list of names (PEFT)")
        return self


class DeepSpeedConfig(StrictModel):
    """DeepSpeed ZeRO stage, offload and precision."""

    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="ZeRO optimisation stage.")
    offload_optimizer: bool = Field(False, description="Keep optimizer state on CPU (ZeRO ≥ 1).")
    offload_params: bool = Field(False, description="Keep parameters on CPU (ZeRO-3 only).")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Training precision.")
    gradient_clipping: float = Field(1.0, ge=0, description="Max gradient norm; 0 disables.")

    @model_validator(mode="after")
    def _offload_needs_stage(self) -> DeepSpeedConfig:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        return self


class OptimizerConfig(StrictModel):
    """AdamW and its learning-rate schedule."""

    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="LR decay.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")


class AnswerEvalConfig(StrictModel):
    """Validation answer F1 at each evaluation: greedy answers to the first validation prompts,
    scored by token F1 against their reference answers (slower than the loss: it decodes)."""

    max_examples: int = Field(
        32, ge=1, description="Validation prompts answered per evaluation, all workers."
    )
    max_new_tokens: int = Field(64, ge=1, description="Longest answer decoded.")
    batch_size: int = Field(16, ge=1, description="Prompts decoded together.")


class TrainJobConfig(StrictModel):
    """`ragtune train`: fine-tune a causal LM with Ray Train × DeepSpeed (× LoRA) on a tier."""

    kind: Literal["train"] = "train"
    base_model: ModelName = Field(description="HF model name or local directory.")
    gguf_file: str | None = Field(None, description="GGUF file inside base_model to load.")
    data: DataConfig
    lora: LoraConfig | None = Field(
        default_factory=LoraConfig, description="LoRA settings; null for a full fine-tune."
    )
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    epochs: int | None = Field(1, ge=1, description="Passes over the data (unless max_steps).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    global_batch_size: int = Field(8, ge=1, description="Examples per optimizer step, all workers.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass per worker.")
    eval_every_steps: int = Field(20, ge=1, description="Validation loss every N steps.")
    checkpoint_every_steps: int = Field(50, ge=1, description="Checkpoint every N steps.")
    log_every_steps: int = Field(5, ge=1, description="Progress line and metrics every N steps.")
    answer_eval: AnswerEvalConfig | None = Field(
        None, description="Also report val_answer_f1 at each evaluation; off by default."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after N evaluations without a better validation loss."
    )
    max_failures: int = Field(2, ge=0, description="Worker failures to recover from.")
    seed: int = Field(0, description="Seed for data split, init and dropout.")
    tier: TierName = Field("local", description="Hardware tier of the workers.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel ranks).")
    output_dir: Path = Field(description="Run directory: checkpoints, model, manifest.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainJobConfig:
        per_step = self.micro_batch_size * self.num_workers
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"micro_batch_size × num_workers ({per_step})"
            )
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps")
        self._check_precision()
        return self

    def _check_precision(self) -> None:
        """Refuse a precision the tier's device cannot train in."""
        tier = get_tier(self.tier)
        precision = self.deepspeed.precision
        if precision == "fp16" and not tier.gpus:
            raise ValueError(f"precision fp16 needs a GPU; tier '{tier.name}' has none (use fp32 or bf16)")
        if precision == "bf16" and tier.accelerator_type in NO_BF16_ACCELERATORS:
            raise ValueError(
                f"{tier.accelerator_type} GPUs (tier '{tier.name}') cannot do bf16; use fp16 or fp32"
            )

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.num_workers)

    def tracking_uri(self) -> str:
        """Where the job's MLflow run goes (`TrackingConfig.uri`)."""
        return self.tracking.uri(self.output_dir)
