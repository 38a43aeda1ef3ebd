"""`ragtune index`: documents → chunks → embeddings → FAISS index directory, as one job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragtune.cluster.resources import check_schedulable, worker_resources
from ragtune.cluster.tiers import get_tier
from ragtune.core.artifacts import IndexManifest
from ragtune.core.atomic import writer_lock
from ragtune.core.config import require_model
from ragtune.retrieval.config import IndexConfig, IndexJobConfig
from ragtune.retrieval.embed import embed_chunks, model_identity, resolve_model
from ragtune.retrieval.index import LoadedIndex, load_index, model_fingerprint, rewrite_index
from ragtune.retrieval.ingest import (
    SkippedFile,
    file_fingerprint,
    find_documents,
    read_chunks,
    require_documents,
)


@dataclass
class IndexResult:
    """What an index job produced."""

    output_dir: Path
    num_chunks: int
    added_sources: int
    removed_sources: int
    skipped: list[SkippedFile]
    seconds: float

    def summary(self) -> str:
        return (
            f"index {self.output_dir}: {self.num_chunks} chunks "
            f"(+{self.added_sources} / -{self.removed_sources} sources, "
            f"{len(self.skipped)} skipped) in {self.seconds:.1f}s"
        )


def check_inputs(config: IndexJobConfig, update: bool = False) -> list[Path]:
    """Fail before any work when there is nothing to index, or (`update`) no index to sync;
    the documents found."""
    require_model(config.embedding.model, "embedding.model")
    if update:
        IndexManifest.read(config.output_dir)
        return find_documents(
            config.documents, config.chunking.follow_symlinks
        )  # none left: the update empties the index
    IndexManifest.check_replaceable(config.output_dir)
    return require_documents(config.documents, config.chunking.follow_symlinks)


def run_index_job(config: IndexJobConfig, update: bool = False) -> IndexResult:
    """Build the index, or with `update` sync it: embed new or changed files, drop gone ones.
    One writer at a time: an update reads the index, then rewrites it."""
    with writer_lock(config.output_dir):
        return _index(config, update)


def _index(config: IndexJobConfig, update: bool) -> IndexResult:
    started = time.perf_counter()
    paths = check_inputs(config, update)
    tier = get_tier(config.tier)
    check_schedulable(tier, worker_resources(tier, config.embedding.cpus_per_actor))
    base = load_index(config.output_dir, config.embedding.model) if update else None

    todo, gone = plan_changes(paths, base)
    batches, expected, skipped = iter([]), 0, []
    if todo:
        tokenizer = resolve_model(config.embedding.model)
        chunks, skipped = read_chunks([str(p) for p in todo], config.chunking, tokenizer, tier)
        for item in skipped:
            print(f"skipped {item.source}: {item.reason}")
        expected = chunks.count()
        batches = _embedded_batches(embed_chunks(chunks, config.embedding, tier), config.index)
    manifest = rewrite_index(
        config.output_dir,
        config.index,
        base,
        gone | {str(p) for p in todo},
        batches,
        expected,
        {
            "embedding_model": model_identity(config.embedding.model),
            "embedding_fingerprint": model_fingerprint(config.embedding.model),
            "chunking": config.chunking.model_dump(),
            "tier": tier.name,
            "config": config.model_dump(mode="json"),
        },
    )
    return IndexResult(
        config.output_dir,
        manifest.num_chunks,
        len(todo) - len(skipped),
        len(gone),
        skipped,
        time.perf_counter() - started,
    )


def delete_sources(index_dir: Path, sources: list[str]) -> int:
    """Remove every chunk of the given source paths; returns how many chunks went."""
    with writer_lock(index_dir):
        return _delete_sources(index_dir, sources)


def _delete_sources(index_dir: Path, sources: list[str]) -> int:
    base = load_index(index_dir)
    before = base.index.ntotal
    kept = ("embedding_model", "embedding_fingerprint", "chunking", "tier", "config")
    fields = {k: getattr(base.manifest, k) for k in kept}
    resolved = {str(Path(s).resolve()) for s in sources} | set(sources)
    manifest = rewrite_index(
        index_dir, IndexConfig(**base.manifest.index), base, resolved, iter([]), 0, fields
    )
    return before - manifest.num_chunks


def plan_changes(paths: list[Path], base: LoadedIndex | None) -> tuple[list[Path], set[str]]:
    """(files to embed, sources to drop): new or changed files, and files no longer present."""
    if base is None:
        return paths, set()
    stored = dict(zip(base.chunks["source"].to_pylist(), base.chunks["source_hash"].to_pylist()))
    todo = [p for p in paths if stored.get(str(p)) != file_fingerprint(p.read_bytes())]
    gone = set(stored) - {str(p) for p in paths}
    return todo, gone


def _embedded_batches(dataset, config: IndexConfig) -> Iterator[tuple[dict, np.ndarray]]:
    """Stream (chunk columns, vectors) shards to the driver, `add_batch_size` at a time."""
    for batch in dataset.iter_batches(batch_size=config.add_batch_size, batch_format="numpy"):
        vectors = np.stack(batch.pop("embedding"))
        yield batch, vectors
