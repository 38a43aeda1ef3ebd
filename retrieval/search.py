"""Query an index directory: dense (FAISS), lexical (BM25) or hybrid (reciprocal rank fusion),
optionally reranked by a cross-encoder."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from ragtune.retrieval.config import RerankConfig
from ragtune.retrieval.embed import encode, load_encoder
from ragtune.retrieval.fusion import reciprocal_rank_fusion
from ragtune.retrieval.hit import Hit
from ragtune.retrieval.index import gpu_count, load_index
from ragtune.retrieval.rerank import Reranker

SearchMode = Literal["dense", "bm25", "hybrid"]
# BM25's weight in the fusion (dense counts 1). Equal weights let a weak lexical ranking drag
# dense down. Python-docs FAQ benchmark (stemmed BM25 recall@10 0.531), hybrid recall@10 by
# weight 0.1 / 0.2 / 0.3: MiniLM (dense 0.834) 0.846 / 0.846 / 0.834; MiniLM adapted to the docs
# (dense 0.880) 0.886 / 0.880 / 0.869 (equal weights: 0.71 on the earlier raw-reST corpus).
DEFAULT_BM25_WEIGHT = 0.1


class Retriever:
    """Search an index directory built by `ragtune index`.

    The query encoder is the manifest's embedding model unless `embedding_model` is given, in
    which case it must match the manifest (an index is only valid with the model that built it).
    With `rerank`, each search takes `rerank.candidates` chunks and a cross-encoder keeps the best k.
    """

    def __init__(
        self,
        index_dir: str | Path,
        embedding_model: str | None = None,
        bm25_weight: float = DEFAULT_BM25_WEIGHT,
        rerank: RerankConfig | None = None,
    ):
        self.bm25_weight = bm25_weight
        self.reranker = Reranker(rerank) if rerank is not None else None
        self.loaded = load_index(index_dir, expect_model=embedding_model)
        self.manifest = self.loaded.manifest
        self.encoder = load_encoder(embedding_model or self.manifest.embedding_model)
        self.index = self.loaded.index
        if gpu_count() > 0 and self.manifest.index["type"] != "hnsw":
            self.index = faiss.index_cpu_to_all_gpus(self.index)

    def search(self, query: str, k: int = 5, mode: SearchMode = "dense", rerank: bool = True) -> list[Hit]:
        """The top `k` chunks for one query."""
        return self.search_batch([query], k, mode, rerank)[0]

    def search_batch(
        self, queries: list[str], k: int = 5, mode: SearchMode = "dense", rerank: bool = True
    ) -> list[list[Hit]]:
        """The top `k` chunks for each query, embedding all queries in one pass, then reranked
        (all candidate pairs in one cross-encoder pass) if there is a reranker and `rerank`."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.reranker is None or not rerank:
            return [self._hits(ids_scores) for ids_scores in self._ranked(queries, k, mode)]
        depth = max(k, self.reranker.config.candidates)
        candidates = [self._hits(ids_scores) for ids_scores in self._ranked(queries, depth, mode)]
        return self.reranker.rerank(queries, candidates, k)

    def _ranked(self, queries: list[str], k: int, mode: SearchMode) -> list[list[tuple[int, float]]]:
        """(chunk id, score) of the first stage's top k per query."""
        if mode == "dense":
            ranked = self._dense(queries, k)
        elif mode == "bm25":
            ranked = self._bm25(queries, k)
        elif mode == "hybrid":
            depth = max(4 * k, 50)
            ranked = [
                reciprocal_rank_fusion([(_ids(dense), 1.0), (_ids(lexical), self.bm25_weight)], k)
                for dense, lexical in zip(self._dense(queries, depth), self._bm25(queries, depth))
            ]
        else:
            raise ValueError(f"unknown search mode '{mode}'; use dense, bm25 or hybrid")
        return ranked

    def _dense(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        vectors = encode(self.encoder, queries)
        scores, ids = self.index.search(vectors, min(k, self.index.ntotal))
        if self.manifest.index["metric"] == "l2":
            scores = -scores  # smaller distance is better; keep "higher is better"
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
            for row_ids, row_scores in zip(ids, scores)
        ]

    def _bm25(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        positions, scores = self._bm25_index.retrieve(
            _bm25_tokens(queries), k=min(k, self.loaded.chunks.num_rows), show_progress=False, n_threads=1
        )
        ids = self.loaded.id_column
        return [
            [(int(ids[p]), float(s)) for p, s in zip(row_pos, row_scores) if s > 0]
            for row_pos, row_scores in zip(positions, scores)
        ]

    @cached_property
    def _bm25_index(self):
        """BM25 over the chunk texts, built on first lexical query (seconds for 100k chunks)."""
        import bm25s

        index = bm25s.BM25()
        index.index(_bm25_tokens(self.loaded.chunks.column("text").to_pylist()), show_progress=False)
        return index

    def _hits(self, ids_scores: list[tuple[int, float]]) -> list[Hit]:
        if not ids_scores:
            return []
        rows = self.loaded.rows(np.array([i for i, _ in ids_scores], dtype=np.int64))
        return [
            Hit(
                id=int(row["id"]),
                score=score,
                text=row["text"],
                source=row["source"],
                heading=row["heading"],
                doc_id=row["doc_id"],
                start=row["start"],
                end=row["end"],
            )
            for row, (_, score) in zip(rows, ids_scores)
        ]


def _bm25_tokens(texts: list[str]):
    """BM25 terms: lower-cased words, English stopwords dropped, Snowball-stemmed ("copying" and
    "copies" both match "copy"); stemming lifts BM25 recall@10 0.497 → 0.531 on the FAQ benchmark."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def _ids(ranking: list[tuple[int, float]]) -> list[int]:
    return [chunk_id for chunk_id, _ in ranking]
