"""Rerank retrieved chunks with a cross-encoder: the query and each candidate passage are read
together, which ranks better than comparing two separately made embeddings. All pairs of a batch
of queries go through the model in one pass (`predict` batches them). With a `first_stage_weight`
the final order fuses the cross-encoder's order with the first stage's, which keeps a reranker
trained on little data from discarding what the first stage ranked well."""

from __future__ import annotations

from dataclasses import replace

from ragtune.retrieval.config import RerankConfig
from ragtune.retrieval.embed import resolve_model
from ragtune.retrieval.fusion import reciprocal_rank_fusion
from ragtune.retrieval.hit import Hit


def load_cross_encoder(
    name: str, max_length: int | None, device: str | None = None, num_labels: int | None = None
):
    """A sentence-transformers CrossEncoder by name or folder (`num_labels=1` on a plain encoder
    gives it a new one-score head, to train); GPU when one is visible. Without `max_length` it reads
    the length its tokenizer was saved with (sentence-transformers caps it at the model's position
    embeddings)."""
    import torch
    from sentence_transformers import CrossEncoder

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return CrossEncoder(resolve_model(name), max_length=max_length, device=device, num_labels=num_labels)


class Reranker:
    """Reorders each query's candidates by the cross-encoder's score (fused with their first-stage
    order when `first_stage_weight` > 0) and keeps the best k."""

    def __init__(self, config: RerankConfig):
        self.config = config
        self.model = load_cross_encoder(config.model, config.max_length)

    def rerank(self, queries: list[str], candidates: list[list[Hit]], k: int) -> list[list[Hit]]:
        """The top `k` of each query's candidates (given in first-stage order) by cross-encoder
        score (`rerank_score`), or by its fusion with the first stage; their first-stage `score`
        is kept."""
        pairs = [(query, hit.text) for query, hits in zip(queries, candidates) for hit in hits]
        if not pairs:
            return [[] for _ in queries]
        scores = self.model.predict(pairs, batch_size=self.config.batch_size, show_progress_bar=False)
        reranked, position = [], 0
        for hits in candidates:
            scored = [replace(hit, rerank_score=float(s)) for hit, s in zip(hits, scores[position:])]
            position += len(hits)
            reranked.append([scored[i] for i in self._order(scored, k)])
        return reranked

    def _order(self, scored: list[Hit], k: int) -> list[int]:
        """Positions of the best `k` of the scored candidates, best first; at equal fused scores the
        cross-encoder's order wins."""
        by_model = sorted(range(len(scored)), key=lambda i: -scored[i].rerank_score)
        weight = self.config.first_stage_weight
        if not weight:
            return by_model[:k]
        fused = reciprocal_rank_fusion([(by_model, 1.0), (range(len(scored)), weight)], k)
        return [i for i, _ in fused]
