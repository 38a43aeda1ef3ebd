"""Reciprocal rank fusion (Cormack et al. 2009): one ranking from several, each weighted. Hybrid
search fuses dense and BM25 with it; a reranker can fuse its order with the first stage's."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

RRF_K = 60  # the constant from Cormack et al. (2009); robust across corpora
Id = TypeVar("Id", bound=Hashable)


def reciprocal_rank_fusion(
    weighted_rankings: Iterable[tuple[Sequence[Id], float]], k: int
) -> list[tuple[Id, float]]:
    """The top `k` ids by Σ weight / (RRF_K + rank of the id in each ranking); at equal scores
    the earlier ranking's order wins."""
    fused: dict[Id, float] = {}
    for ranking, weight in weighted_rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (RRF_K + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])[:k]
