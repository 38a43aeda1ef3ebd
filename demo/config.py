"""Typed config of `ragtune demo`: inputs, split, and the settings each stage's job takes.

The demo owns the paths between its stages (under `work_dir`); `index`, `train`, `raft`, `serve`
and `answers` hold any other field of that stage's own job config, checked when this file loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import TierName
from ragtune.core.config import StrictModel, validate_data
from ragtune.core.errors import ConfigError
from ragtune.eval.answers import AnswerEvalConfig
from ragtune.retrieval.config import IndexJobConfig, RerankConfig
from ragtune.serve.config import ServeJobConfig
from ragtune.train.config import TrainJobConfig

BASE_MODEL_NAME = "base"
ADAPTER_NAME = "fine-tuned"
RAFT_ADAPTER_NAME = "raft"


class RaftRowsConfig(StrictModel):
    """What each RAFT training row carries besides its oracle passage."""

    hard: int = Field(5, ge=0, description="Distractors: the retriever's best chunks of other documents.")
    random: int = Field(2, ge=0, description="Distractors: random chunks of other documents.")


class DemoConfig(StrictModel):
    """`ragtune demo`: index documents → LoRA on RAG and on RAFT examples → serve → systems
    compared on held-out questions, with every choice made on a validation split."""

    kind: Literal["demo"] = "demo"
    tier: TierName = Field("local", description="Tier every stage runs on.")
    work_dir: Path = Field(Path("runs/demo"), description="Where every stage writes its output.")
    documents: list[str] = Field(
        default_factory=lambda: ["data/python-docs/corpus.jsonl"],
        min_length=1,
        description="What the index job indexes: files, folders or globs in any format it reads.",
    )
    questions: Path = Field(
        Path("data/python-docs/faq.jsonl"),
        description="JSONL of {question, answer, sources?: [document id, ...]} pairs.",
    )
    base_model: str = Field(
        "data/models/smollm2", description="Foundation model folder (`ragtune model import`)."
    )
    knowledge_base: list[str] = Field(
        default_factory=list,
        description="Keep only JSONL documents whose id starts with one of these (e.g. faq/); empty: all.",
    )
    held_out: int = Field(
        50,
        ge=1,
        description="Questions kept out of training and choices, for the report (a repeat comes along).",
    )
    validation: int = Field(
        25,
        ge=1,
        description="Questions kept out of training, for validation and choices (a repeat comes along).",
    )
    seed: int = Field(0, description="Seed of the train/validation/held-out split.")
    context_k: int = Field(3, ge=1, description="Chunks retrieved per question, in training and eval.")
    raft_rows: RaftRowsConfig = Field(default_factory=RaftRowsConfig)
    raft_eval_k: list[int] = Field(
        default_factory=lambda: [1, 5], description="More test-time k at which RAFT + RAG answers."
    )
    rerank: RerankConfig | None = Field(
        None,
        description="A reranker to try: kept for training rows and serving only if it puts more "
        "validation questions' sources in the top context_k than the first stage alone.",
    )
    index: dict[str, Any] = Field(default_factory=dict, description="More fields of the index job.")
    train: dict[str, Any] = Field(default_factory=dict, description="More fields of the train jobs.")
    raft: dict[str, Any] = Field(
        default_factory=dict, description="Fields of the RAFT train job that differ from `train`."
    )
    serve: dict[str, Any] = Field(default_factory=dict, description="More fields of the serve job.")
    answers: dict[str, Any] = Field(default_factory=dict, description="More fields of the answer eval.")
    quick: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields replaced by `--quick` (a smaller, faster run); it writes to "
        "WORK_DIR-quick unless these name a work_dir.",
    )

    @model_validator(mode="after")
    def _stage_configs_valid(self) -> DemoConfig:
        if self.rerank is not None and "rerank" in _section(self.serve, "retriever", "serve"):
            raise ValueError("rerank is set both at the top and in serve.retriever; keep one")
        if self.knowledge_base and not all(doc.endswith(".jsonl") for doc in self.documents):
            raise ValueError(
                "knowledge_base filters JSONL documents by id; every document must be a .jsonl file"
            )
        for build in (self.index_job, self.train_job, self.raft_job, self.serve_job, self.answer_eval):
            try:
                build()
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def path(self, name: str) -> Path:
        """A stage's output under the work dir."""
        return self.work_dir / name

    def quick_variant(self) -> DemoConfig:
        """This config with the `quick` fields applied, written beside the full run (WORK_DIR-quick
        unless `quick` names a work_dir), so a quick run never replaces the full run's index,
        adapters or report."""
        quick = {"work_dir": f"{self.work_dir}-quick", **self.quick}
        return DemoConfig.model_validate(_merged({**self.model_dump(), "quick": {}}, quick))

    def indexed_documents(self) -> list[str]:
        """The index job's documents: the filtered knowledge base when `knowledge_base` is set."""
        return [str(self.path("knowledge_base.jsonl"))] if self.knowledge_base else self.documents

    def index_job(self) -> IndexJobConfig:
        owned = {
            "tier": self.tier,
            "documents": self.indexed_documents(),
            "output_dir": str(self.path("index")),
        }
        return _stage(IndexJobConfig, self.index, owned, "index")

    def train_job(self) -> TrainJobConfig:
        """The plain fine-tune: LoRA on each training question's top-k retrieved chunks."""
        return self._train_stage(self.train, "train", "train.jsonl")

    def raft_job(self) -> TrainJobConfig:
        """The RAFT fine-tune: `train` with `raft`'s fields, on the RAFT rows."""
        passages = {"data": {"raft": {"passages": self.context_k}}}
        settings = _merged(_merged(passages, self.train), self.raft)
        return self._train_stage(settings, "train-raft", "train_raft.jsonl")

    def _train_stage(self, settings: dict[str, Any], output: str, rows: str) -> TrainJobConfig:
        """A train job on `rows`, validated on the validation questions' RAG rows (the prompts
        serving shows), so both adapters' validation losses compare."""
        owned = {
            "base_model": self.base_model,
            "tier": self.tier,
            "output_dir": str(self.path(output)),
            "data": {
                **_section(settings, "data", "train"),
                "train_files": [str(self.path(rows))],
                "validation_files": [str(self.path("validation_rag.jsonl"))],
                "format": "auto",
            },
            "tracking": {
                "experiment": "ragtune-demo",
                **_section(settings, "tracking", "train"),
                "tracking_uri": f"sqlite:///{self.path('mlflow.db').resolve()}",
            },
        }
        return _stage(TrainJobConfig, settings, owned, "train")

    def serve_job(self) -> ServeJobConfig:
        owned = {
            "tier": self.tier,
            "retriever": {
                **_section(self.serve, "retriever", "serve"),
                "index_dir": str(self.path("index")),
                "k": self.context_k,
                **({"rerank": self.rerank.model_dump(mode="json")} if self.rerank else {}),
            },
            "generator": {
                **_section(self.serve, "generator", "serve"),
                "base_model": self.base_model,
                "model_name": BASE_MODEL_NAME,
                "adapters": {
                    ADAPTER_NAME: str(self.path("train") / "model"),
                    RAFT_ADAPTER_NAME: str(self.path("train-raft") / "model"),
                },
            },
        }
        return _stage(ServeJobConfig, self.serve, owned, "serve")

    def answer_eval(self, url: str = "http://127.0.0.1:8000") -> AnswerEvalConfig:
        train = self.train_job()
        systems = [
            {"name": "base", "model": BASE_MODEL_NAME},
            {"name": "RAG", "model": BASE_MODEL_NAME, "retrieval": True},
            {"name": "fine-tuned", "model": ADAPTER_NAME},
            {"name": "fine-tuned + RAG", "model": ADAPTER_NAME, "retrieval": True},
            {"name": "RAFT + RAG", "model": RAFT_ADAPTER_NAME, "retrieval": True},
            *(
                {"name": f"RAFT + RAG (k={k})", "model": RAFT_ADAPTER_NAME, "retrieval": True, "k": k}
                for k in self.raft_eval_k
                if k != self.context_k
            ),
        ]
        owned = {
            "url": url,
            "questions": str(self.path("held_out.jsonl")),
            "systems": systems,
            "comparisons": [
                ["fine-tuned + RAG", "RAG"],
                ["RAFT + RAG", "fine-tuned + RAG"],
                ["RAFT + RAG", "RAG"],
                ["fine-tuned + RAG", "fine-tuned"],
            ],
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
