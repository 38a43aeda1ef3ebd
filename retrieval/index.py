"""FAISS indexes (flat, ivf, hnsw; GPU when present) and the index directory on disk.

An index directory holds `index.faiss`, `chunks.parquet` (id, doc_id, text, source, heading,
offsets) and its manifest (`IndexManifest`), written last with the other files' checksums, so a
half-written or corrupt directory is detected on load. Directories are replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ragtune.core.artifacts import IndexManifest
from ragtune.core.atomic import atomic_dir
from ragtune.core.errors import ArtifactError, InputError
from ragtune.retrieval.config import IndexConfig

INDEX_FILE, CHUNKS_FILE = "index.faiss", "chunks.parquet"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")  # files whose bytes are a model's weights
MIN_POINTS_PER_CENTROID = 39  # FAISS warns below this many training vectors per IVF list
CHUNK_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("source_hash", pa.string()),
        ("heading", pa.string()),
        ("text", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu); the one place the GPU path is chosen."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def ivf_lists(config: IndexConfig, expected_vectors: int) -> int:
    """IVF list count: configured, or 4·sqrt(n), never more than the data can train."""
    wanted = config.nlist or int(4 * math.sqrt(max(expected_vectors, 1)))
    trainable = max(1, min(expected_vectors, config.train_sample) // MIN_POINTS_PER_CENTROID)
    return max(1, min(wanted, trainable))


def new_index(dimension: int, config: IndexConfig, expected_vectors: int) -> faiss.Index:
    """An empty index that takes explicit int64 ids (so chunks can be deleted by id)."""
    metric = faiss_metric(config.metric)
    if config.type == "ivf":
        quantizer = faiss.IndexFlat(dimension, metric)
        index = faiss.IndexIVFFlat(quantizer, dimension, ivf_lists(config, expected_vectors), metric)
        index.nprobe = config.nprobe
        index.own_fields = True
        quantizer.this.disown()
        return index
    if config.type == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, config.hnsw_m, metric)
        inner.hnsw.efConstruction = config.ef_construction
        inner.hnsw.efSearch = config.ef_search
    else:
        inner = faiss.IndexFlat(dimension, metric)
    return faiss.IndexIDMap2(inner)


class IndexBuilder:
    """Adds vectors shard by shard; an IVF index is trained on the first `train_sample` ones.

    The index is created on the first shard (its width comes from the vectors) unless given.
    """

    def __init__(self, config: IndexConfig, expected_vectors: int, index: faiss.Index | None):
        self.config, self.expected_vectors, self.index = config, expected_vectors, index
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._on_gpu = False

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if self.index is None:
            self.index = new_index(vectors.shape[1], self.config, self.expected_vectors)
        if self.index.is_trained:
            self.index.add_with_ids(vectors, ids)
            return
        self._pending.append((vectors, ids))
        if sum(len(v) for v, _ in self._pending) >= self.config.train_sample:
            self._train_and_flush()

    def finish(self) -> faiss.Index:
        """Train on what was buffered if needed; return a CPU index ready to save."""
        if self.index is None:
            raise InputError(
                "no chunks to index: every document was empty or skipped",
                "see the skipped files and their reasons",
            )
        if self._pending:
            self._train_and_flush()
        if self._on_gpu:
            self.index = faiss.index_gpu_to_cpu(self.index)
            self._on_gpu = False
        return self.index

    def _train_and_flush(self) -> None:
        vectors = np.concatenate([v for v, _ in self._pending])
        ids = np.concatenate([i for _, i in self._pending])
        self._pending = []
        if gpu_count() > 0:  # IVF k-means and assignment are where a GPU pays off
            self.index = faiss.index_cpu_to_all_gpus(self.index)
            self._on_gpu = True
        self.index.train(vectors[: self.config.train_sample])
        self.index.add_with_ids(vectors, ids)


def remove_ids(index: faiss.Index, config: IndexConfig, ids: np.ndarray) -> faiss.Index:
    """Remove chunk ids; HNSW cannot delete in place, so it is rebuilt from its own vectors."""
    if len(ids) == 0:
        return index
    if config.type != "hnsw":
        index.remove_ids(np.asarray(ids, dtype=np.int64))
        return index
    all_ids = faiss.vector_to_array(index.id_map)
    vectors = index.index.reconstruct_n(0, index.ntotal)
    keep = ~np.isin(all_ids, ids)
    rebuilt = new_index(index.d, config, int(keep.sum()))
    rebuilt.add_with_ids(vectors[keep], all_ids[keep])
    return rebuilt


@dataclass
class LoadedIndex:
    """An index directory in memory: the FAISS index, its chunk store and manifest."""

    index: faiss.Index
    chunks: pa.Table
    manifest: IndexManifest

    def rows(self, ids: np.ndarray) -> list[dict[str, Any]]:
        """Chunk rows for FAISS ids (ids are kept sorted in the store)."""
        positions = np.searchsorted(self.id_column, ids)
        return self.chunks.take(pa.array(positions)).to_pylist()

    @cached_property
    def id_column(self) -> np.ndarray:
        return self.chunks.column("id").to_numpy()


def rewrite_index(
    out_dir: Path,
    config: IndexConfig,
    base: LoadedIndex | None,
    drop_sources: set[str],
    new_batches: Iterable[tuple[dict[str, np.ndarray], np.ndarray]],
    expected_new: int,
    manifest_fields: dict[str, Any],
) -> IndexManifest:
    """Write the index directory `base` minus `drop_sources` plus `new_batches`, atomically.

    `new_batches` yields (chunk columns, vectors) shards; they get ids after the base's. With
    no base a new index is built. `manifest_fields` are the manifest's fields about the model
    and the producing config. Nothing at `out_dir` changes unless everything succeeds.
    """
    kept_rows, index, next_id = None, None, 0
    if base is not None:
        doomed = pc.is_in(base.chunks["source"], pa.array(sorted(drop_sources), pa.string()))
        kept_rows = base.chunks.filter(pc.invert(doomed))
        dropped_ids = base.chunks.filter(doomed).column("id").to_numpy()
        index = remove_ids(base.index, config, dropped_ids)
        next_id = base.manifest.next_id
    expected = expected_new + (kept_rows.num_rows if kept_rows is not None else 0)
    builder = IndexBuilder(config, expected, index)
    with atomic_dir(out_dir) as tmp:
        with pq.ParquetWriter(tmp / CHUNKS_FILE, CHUNK_SCHEMA) as store:
            if kept_rows is not None:
                store.write_table(kept_rows.cast(CHUNK_SCHEMA))
            for columns, vectors in new_batches:
                ids = np.arange(next_id, next_id + len(vectors), dtype=np.int64)
                next_id += len(vectors)
                builder.add(np.ascontiguousarray(vectors, dtype=np.float32), ids)
                store.write_table(
                    pa.table({**columns, "id": ids}).select(CHUNK_SCHEMA.names).cast(CHUNK_SCHEMA)
                )
        index = builder.finish()
        faiss.write_index(index, str(tmp / INDEX_FILE))
        manifest = IndexManifest(
            **manifest_fields,
            **_store_stats(tmp / CHUNKS_FILE),
            index=config.model_dump(),
            num_chunks=int(index.ntotal),
            next_id=next_id,
            files={name: _sha256(tmp / name) for name in (INDEX_FILE, CHUNKS_FILE)},
        )
        manifest.write(tmp)
    return manifest


def _store_stats(chunks_file: Path) -> dict[str, Any]:
    """Counts and a corpus fingerprint (sources and their content hashes) of a chunk store."""
    table = pq.read_table(chunks_file, columns=["doc_id", "source", "source_hash"])
    sources = sorted(set(zip(table["source"].to_pylist(), table["source_hash"].to_pylist())))
    fingerprint = hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]
    return {
        "num_documents": len(set(table["doc_id"].to_pylist())),
        "num_sources": len(sources),
        "corpus_fingerprint": fingerprint,
    }


def load_index(index_dir: str | Path, expect_model: str | None = None) -> LoadedIndex:
    """Load and verify an index directory; refuse corruption and embedding-model mismatches."""
    from ragtune.retrieval.embed import model_identity

    index_dir = Path(index_dir)
    manifest = IndexManifest.read(index_dir)
    rebuild = f"rebuild it with `{IndexManifest.REBUILD}`"
    for name, digest in manifest.files.items():
        path = index_dir / name
        if not path.is_file() or _sha256(path) != digest:
            raise ArtifactError(f"{path}: missing or corrupt (checksum differs from manifest)", rebuild)
    if expect_model and model_identity(expect_model) != manifest.embedding_model:
        raise ArtifactError(
            f"{index_dir} was built with embedding model '{manifest.embedding_model}', "
            f"not '{model_identity(expect_model)}'",
            f"{rebuild}, or use that model",
        )
    built_with = manifest.embedding_fingerprint
    if built_with and model_fingerprint(manifest.embedding_model) not in (None, built_with):
        raise ArtifactError(
            f"{index_dir}: the embedding model folder {manifest.embedding_model} has changed since "
            "the index was built (re-trained in place?)",
            rebuild,
        )
    index = faiss.read_index(str(index_dir / INDEX_FILE))
    chunks = pq.read_table(index_dir / CHUNKS_FILE)
    if not index.ntotal == chunks.num_rows == manifest.num_chunks:
        raise ArtifactError(
            f"{index_dir}: {index.ntotal} vectors, {chunks.num_rows} chunks, manifest says "
            f"{manifest.num_chunks}",
            rebuild,
        )
    return LoadedIndex(index, chunks, manifest)


def model_fingerprint(name: str) -> str | None:
    """A content hash of a local model folder's weights (None for a hub name): an index records
    it, so a folder re-trained in place (`tune-embedder`) is told apart from the one it used."""
    folder = Path(name)
    if not folder.is_dir():
        return None
    weights = sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    return hashlib.sha256(b"".join(bytes.fromhex(_sha256(p)) for p in weights)).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
