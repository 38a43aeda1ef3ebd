"""Typed configs of the retrieval jobs: chunking, embedding, the FAISS index, and the index job."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import TierName
from ragtune.core.config import ModelName, StrictModel
from ragtune.core.tracking import TrackingConfig

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DOCUMENT_EXTENSIONS = (".txt", ".md", ".rst", ".html", ".htm", ".jsonl", ".pdf")


class ChunkingConfig(StrictModel):
    """How documents are split: by headings and paragraphs, packed to a token budget."""

    max_tokens: int = Field(256, ge=16, le=8192, description="Most tokens in one chunk.")
    overlap_tokens: int = Field(32, ge=0, description="Tokens repeated from the previous chunk.")
    text_field: str = Field("text", description="Field holding the text in .jsonl documents.")
    title_field: str = Field("title", description="Optional title field in .jsonl documents.")
    id_field: str = Field("id", description="Optional document id field in .jsonl documents.")
    max_file_mb: float = Field(
        256, gt=0, description="A bigger document file is skipped (and reported), not read."
    )
    follow_symlinks: bool = Field(
        False, description="Index files that links under a document folder or glob lead to outside it."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below max_tokens ({self.max_tokens})"
            )
        return self


class EmbeddingConfig(StrictModel):
    """The sentence-transformers model and how the Ray Data embedding stage runs."""

    model: ModelName = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers name or path; all-MiniLM-L6-v2 resolves offline.",
    )
    batch_size: int = Field(256, ge=1, description="Chunks per map_batches call.")
    num_actors: int | None = Field(
        None, ge=1, description="Embedding actors; default one per GPU, else one per node."
    )
    cpus_per_actor: float | None = Field(
        None, gt=0, description="CPUs each actor reserves; default 1 (it may use more threads)."
    )
    threads_per_actor: int | None = Field(
        None, ge=1, description="torch threads per actor; default the tier's CPUs on CPU tiers."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Precision the chunks are embedded in: bfloat16 is ~2x faster on a CPU with "
        "AVX-512 BF16 or AMX (cosine to the float32 vector >= 0.998); queries stay float32.",
    )


class IndexConfig(StrictModel):
    """Which FAISS index to build and its parameters."""

    type: Literal["flat", "ivf", "hnsw"] = Field("flat", description="FAISS index family.")
    metric: Literal["ip", "l2"] = Field(
        "ip", description="ip: inner product on normalised vectors (cosine); l2: distance."
    )
    nlist: int | None = Field(None, ge=1, description="ivf: number of clusters; default 4·sqrt(vectors).")
    nprobe: int = Field(16, ge=1, description="ivf: clusters visited per query.")
    train_sample: int = Field(50_000, ge=1000, description="ivf: vectors used to train.")
    hnsw_m: int = Field(32, ge=4, description="hnsw: neighbours per node.")
    ef_construction: int = Field(80, ge=8, description="hnsw: build-time search depth.")
    ef_search: int = Field(64, ge=8, description="hnsw: query-time search depth.")
    add_batch_size: int = Field(8192, ge=1, description="Vectors added to FAISS per shard.")


class RerankConfig(StrictModel):
    """A second stage: a cross-encoder rescoring the first stage's candidates, keeping the best k."""

    model: ModelName = Field(
        description="sentence-transformers CrossEncoder name or folder (`ragtune tune-reranker` makes one)."
    )
    candidates: int = Field(
        30, ge=1, le=1000, description="Chunks the first stage retrieves per query for rescoring."
    )
    batch_size: int = Field(64, ge=1, description="(query, passage) pairs per forward pass.")
    max_length: int | None = Field(
        None,
        ge=16,
        le=512,
        description="Tokens of query and passage read together; by default the model's own, as its "
        "tokenizer was saved (a `ragtune tune-reranker` model keeps the length it was trained at).",
    )
    first_stage_weight: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Weight of the first stage's order, fused with the cross-encoder's (reciprocal rank "
        "fusion, the cross-encoder counting 1 and winning ties); 0 orders by the cross-encoder alone. "
        "Hits keep both scores, so fused hits need not be in rerank_score order.",
    )


class IndexJobConfig(StrictModel):
    """`ragtune index`: read documents, chunk, embed on a tier, build and save a FAISS index."""

    kind: Literal["index"] = "index"
    tier: TierName = Field("local", description="Hardware tier the embedding actors run on.")
    documents: list[str] = Field(min_length=1, description="Files, directories or globs of documents.")
    output_dir: Path = Field(description="Index directory to write (replaced atomically).")
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)


class PairTuneConfig(StrictModel):
    """What the jobs that learn from a corpus's own (heading → section) pairs share."""

    tier: TierName = Field("local", description="Hardware tier the training task runs on.")
    documents: list[str] = Field(min_length=1, description="Files, directories or globs of documents.")
    exclude: list[str] = Field(
        default_factory=list,
        description="Globs of document ids or source paths kept out of training (held-out queries).",
    )
    base_model: ModelName = Field(
        DEFAULT_EMBEDDING_MODEL, description="sentence-transformers name or path to start from."
    )
    output_dir: Path = Field(description="Where the trained model is saved (replaced atomically).")
    passage_tokens: int = Field(
        128, ge=16, le=512, description="Tokens of each section's opening used as its passage."
    )
    epochs: int = Field(1, ge=1, description="Passes over the training pairs.")
    batch_size: int = Field(
        32, ge=2, description="Pairs per step; the others in a batch are each pair's negatives."
    )
    learning_rate: float = Field(1e-5, gt=0, description="Peak AdamW learning rate (warm-up, then decay).")
    validation_fraction: float = Field(
        0.05, gt=0, lt=1, description="Share of pairs held out to measure the model before and after."
    )
    seed: int = Field(0, description="Seed for the split, shuffling and dropout.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def tracking_uri(self) -> str:
        """Where the job's MLflow run goes (`TrackingConfig.uri`): beside the model folder, which
        is replaced whole on every run."""
        return self.tracking.uri(self.output_dir)


class EmbedderTuneConfig(PairTuneConfig):
    """`ragtune tune-embedder`: adapt an embedding model to a corpus, headings → their sections."""

    kind: Literal["embedder"] = "embedder"


class RerankerTuneConfig(PairTuneConfig):
    """`ragtune tune-reranker`: train a cross-encoder on a corpus's headings → their sections,
    against hard negatives that the corpus's index retrieves for each heading."""

    kind: Literal["reranker"] = "reranker"
    index_dir: Path = Field(description="An index of these documents (`ragtune index`): hard negatives.")
    hard_negatives: int = Field(3, ge=0, description="Top retrieved chunks of other sections, per heading.")
    random_negatives: int = Field(1, ge=0, description="Passages of random other sections, per heading.")
    batch_size: int = Field(8, ge=1, description="Headings per step, each with its passage and negatives.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak AdamW learning rate (warm-up, then decay).")
    max_length: int = Field(256, ge=32, le=512, description="Tokens of heading and passage read together.")
    max_pairs: int | None = Field(
        None, ge=2, description="Train on at most this many pairs (a seeded sample), to bound the run."
    )

    @model_validator(mode="after")
    def _some_negatives(self) -> RerankerTuneConfig:
        if self.hard_negatives + self.random_negatives == 0:
            raise ValueError("hard_negatives + random_negatives must be at least 1")
        return self
