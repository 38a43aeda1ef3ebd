"""What a search returns: one chunk, its scores and where it came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its first-stage score (higher is better), its cross-encoder score
    when reranked, and where it came from."""

    id: int
    score: float
    text: str
    source: str
    heading: str
    doc_id: str
    start: int
    end: int
    rerank_score: float | None = None
