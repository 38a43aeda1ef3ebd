"""Typed config of `ragtune demo`: inputs, split, and the settings each stage's job takes.

The demo owns the paths between its stages (under `work_dir`); `index`, `train`, `serve` and
`answers` hold any other field of that stage's own job config, checked when this file loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import TierName
from ragtune.core.config import StrictModel, validate_data
from ragtune.core.errors import ConfigError
from ragtune.eval.answers import AnswerEvalConfig
from ragtune.retrieval.config import IndexJobConfig
from ragtune.serve.config import ServeJobConfig
from ragtune.train.config import TrainJobConfig

BASE_MODEL_NAME = "base"
ADAPTER_NAME = "fine-tuned"


class DemoConfig(StrictModel):
    """`ragtune demo`: index the docs → LoRA on RAG examples → serve → four systems compared."""

    kind: Literal["demo"] = "demo"
    tier: TierName = Field("local", description="Tier every stage runs on.")
    work_dir: Path = Field(Path("runs/demo"), description="Where every stage writes its output.")
    benchmark_dir: Path = Field(
        Path("data/python-docs"), description="corpus.jsonl and faq.jsonl from `ragtune data python-docs`."
    )
    base_model: str = Field(
        "data/models/smollm2", description="Foundation model folder (`ragtune model import`)."
    )
    knowledge_base: list[str] = Field(
        default_factory=list, description="Document-id prefixes indexed (e.g. faq/); empty: all."
    )
    held_out: int = Field(30, ge=1, description="FAQ pairs kept out of training, for evaluation.")
    seed: int = Field(0, description="Seed of the train/held-out split.")
    context_k: int = Field(3, ge=1, description="Chunks retrieved per question, in training and eval.")
    index: dict[str, Any] = Field(default_factory=dict, description="More fields of the index job.")
    train: dict[str, Any] = Field(default_factory=dict, description="More fields of the train job.")
    serve: dict[str, Any] = Field(default_factory=dict, description="More fields of the serve job.")
    answers: dict[str, Any] = Field(default_factory=dict, description="More fields of the answer eval.")
    quick: dict[str, Any] = Field(
        default_factory=dict, description="Fields replaced by `--quick` (a smaller, faster run)."
    )

    @model_validator(mode="after")
    def _stage_configs_valid(self) -> DemoConfig:
        for build in (self.index_job, self.train_job, self.serve_job, self.answer_eval):
            try:
                build()
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def faq_file(self) -> Path:
        return self.benchmark_dir / "faq.jsonl"

    @property
    def corpus_file(self) -> Path:
        return self.benchmark_dir / "corpus.jsonl"

    def path(self, name: str) -> Path:
        """A stage's output under the work dir."""
        return self.work_dir / name

    def quick_variant(self) -> DemoConfig:
        """This config with the `quick` fields applied."""
        return DemoConfig.model_validate(_merged({**self.model_dump(), "quick": {}}, self.quick))

    def index_job(self) -> IndexJobConfig:
        owned = {
            "tier": self.tier,
            "documents": [str(self.path("knowledge_base.jsonl"))],
            "output_dir": str(self.path("index")),
        }
        return _stage(IndexJobConfig, self.index, owned, "index")

    def train_job(self) -> TrainJobConfig:
        owned = {
            "base_model": self.base_model,
            "tier": self.tier,
            "output_dir": str(self.path("train")),
            "data": {
                **_section(self.train, "data", "train"),
                "train_files": [str(self.path("train.jsonl"))],
                "format": "rag",
            },
            "tracking": {
                "experiment": "ragtune-demo",
                **_section(self.train, "tracking", "train"),
                "tracking_uri": f"sqlite:///{self.path('mlflow.db').resolve()}",
            },
        }
        return _stage(TrainJobConfig, self.train, owned, "train")

    def serve_job(self) -> ServeJobConfig:
        owned = {
            "tier": self.tier,
            "retriever": {
                **_section(self.serve, "retriever", "serve"),
                "index_dir": str(self.path("index")),
                "k": self.context_k,
            },
            "generator": {
                **_section(self.serve, "generator", "serve"),
                "base_model": self.base_model,
                "model_name": BASE_MODEL_NAME,
                "adapters": {ADAPTER_NAME: str(self.path("train") / "model")},
            },
        }
        return _stage(ServeJobConfig, self.serve, owned, "serve")

    def answer_eval(self, url: str = "http://127.0.0.1:8000") -> AnswerEvalConfig:
        train = self.train_job()
        owned = {
            "url": url,
            "questions": str(self.path("held_out.jsonl")),
            "base_model": BASE_MODEL_NAME,
            "fine_tuned_model": ADAPTER_NAME,
            "k": self.context_k,
            "output_dir": str(self.path("report")),
            "tracking": {"experiment": train.tracking.experiment, "tracking_uri": train.tracking_uri()},
        }
        return _stage(AnswerEvalConfig, self.answers, owned, "answers")


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied, mappings merged key by key."""
    result = dict(base)
    for key, value in changes.items():
        both_maps = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = _merged(result[key], value) if both_maps else value
    return result


def _section(settings: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    """A mapping inside a stage's settings, which the demo adds its own fields to."""
    value = settings.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"demo {name}", key, f"must be a mapping, got {type(value).__name__}")
    return value


def _stage(model, settings: dict[str, Any], owned: dict[str, Any], name: str):
    """A stage's job config: its settings from the demo file, the paths the demo owns."""
    clash = sorted(set(settings) & set(owned) - {"data", "retriever", "generator", "tracking"})
    if clash:
        raise ConfigError(f"demo {name}", clash[0], "set by the demo itself; remove it")
    return validate_data(model, {**settings, **owned}, f"demo {name}")
