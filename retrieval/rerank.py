"""Rerank retrieved chunks with a cross-encoder: the query and each candidate passage are read
together, which ranks better than comparing two separately made embeddings. All pairs of a batch
of queries go through the model in one pass (`predict` batches them)."""

from __future__ import annotations

from dataclasses import replace

from ragtune.retrieval.config import RerankConfig
from ragtune.retrieval.embed import resolve_model
from ragtune.retrieval.hit import Hit


def load_cross_encoder(name: str, max_length: int, device: str | None = None, num_labels: int | None = None):
    """A sentence-transformers CrossEncoder by name or folder (`num_labels=1` on a plain encoder
    gives it a new one-score head, to train); GPU when one is visible."""
    import torch
    from sentence_transformers import CrossEncoder

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return CrossEncoder(resolve_model(name), max_length=max_length, device=device, num_labels=num_labels)


class Reranker:
    """Reorders each query's candidates by the cross-encoder's score and keeps the best k."""

    def __init__(self, config: RerankConfig):
        self.config = config
        self.model = load_cross_encoder(config.model, config.max_length)

    def rerank(self, queries: list[str], candidates: list[list[Hit]], k: int) -> list[list[Hit]]:
        """The top `k` of each query's candidates by cross-encoder score (`rerank_score`); their
        first-stage `score` is kept."""
        pairs = [(query, hit.text) for query, hits in zip(queries, candidates) for hit in hits]
        if not pairs:
            return [[] for _ in queries]
        scores = self.model.predict(pairs, batch_size=self.config.batch_size, show_progress_bar=False)
        reranked, position = [], 0
        for hits in candidates:
            scored = [replace(hit, rerank_score=float(s)) for hit, s in zip(hits, scores[position:])]
            position += len(hits)
            reranked.append(sorted(scored, key=lambda hit: -hit.rerank_score)[:k])
        return reranked
