"""What a search returns: one chunk, its scores and where it came from."""

from __future__ import annotations

from collections.abc import Iterable
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


def from_sources(doc_id: str, sources: Iterable[str]) -> bool:
    """Whether a chunk's document is one of `sources`: its id as the index stores it, or for a
    file the end of its path (`guide.md` or `docs/guide.md` match `/data/docs/guide.md`)."""
    named = [source.removeprefix("./") for source in sources if source]
    return any(doc_id == name or doc_id.endswith("/" + name) for name in named)
