"""Training rows from question/answer pairs and an index: the passages a generator learns from.

- `rag_rows`: each question's top-k retrieved chunks as its context (what serving will show).
- `raft_rows`: each question's oracle chunk (the best chunk of a document its pair names in
  `sources`), the retriever's best chunks from other documents as hard distractors, and random
  chunks from other documents; `ragtune.train.raft` composes the prompt from them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ragtune.retrieval.hit import from_sources
from ragtune.retrieval.search import Retriever

ORACLE_SEARCH_DEPTH = 50  # chunks searched for the oracle and the hard distractors


@dataclass
class RaftRows:
    """RAFT rows, how many of them had their oracle among the retrieved chunks, and the pairs
    skipped (no `sources`, or none of them in the index)."""

    rows: list[dict[str, Any]]
    oracle_retrieved: int
    skipped: int

    def summary(self) -> str:
        return (
            f"{len(self.rows)} RAFT rows ({self.oracle_retrieved} with the oracle retrieved, "
            f"{self.skipped} pairs skipped: no source in the index)"
        )


def source_recall(pairs: list[dict], found: list[list]) -> float | None:
    """Share of pairs with `sources` that have one among their hits; None when no pair has any."""
    judged = [(pair["sources"], hits) for pair, hits in zip(pairs, found) if pair.get("sources")]
    if not judged:
        return None
    return sum(any(from_sources(hit.doc_id, sources) for hit in hits) for sources, hits in judged) / len(
        judged
    )


def rag_rows(retriever: Retriever, pairs: list[dict], k: int) -> tuple[list[dict], float | None]:
    """(question, top-k context, answer) rows, and the share whose source was retrieved."""
    found = retriever.search_batch([pair["question"] for pair in pairs], k)
    rows = [
        {"question": pair["question"], "context": [hit.text for hit in hits], "answer": pair["answer"]}
        for pair, hits in zip(pairs, found)
    ]
    return rows, source_recall(pairs, found)


def first_chunks(retriever: Retriever) -> dict[str, str]:
    """Each document's first chunk (its opening), by document id."""
    table = retriever.loaded.chunks.select(["doc_id", "start", "text"]).to_pylist()
    first: dict[str, tuple[int, str]] = {}
    for chunk in table:
        if chunk["doc_id"] not in first or chunk["start"] < first[chunk["doc_id"]][0]:
            first[chunk["doc_id"]] = (chunk["start"], chunk["text"])
    return {doc_id: text for doc_id, (_, text) in first.items()}


def raft_rows(retriever: Retriever, pairs: list[dict], hard: int, scattered: int, seed: int = 0) -> RaftRows:
    """A RAFT row per pair whose sources are in the index: the oracle (the best-ranked chunk of a
    source document, else its first chunk), `hard` distractors (best-ranked chunks of other
    documents) and `scattered` random chunks of other documents."""
    openings = first_chunks(retriever)
    texts = retriever.loaded.chunks.select(["doc_id", "text"]).to_pylist()
    rng = random.Random(seed)
    found = retriever.search_batch([pair["question"] for pair in pairs], max(ORACLE_SEARCH_DEPTH, hard + 1))
    rows, retrieved, skipped = [], 0, 0
    for pair, hits in zip(pairs, found):
        sources = pair.get("sources") or []
        oracle = next((hit.text for hit in hits if from_sources(hit.doc_id, sources)), None)
        retrieved += oracle is not None
        oracle = oracle or next((text for doc, text in openings.items() if from_sources(doc, sources)), None)
        if oracle is None:
            skipped += 1
            continue
        distractors = [hit.text for hit in hits if not from_sources(hit.doc_id, sources)][:hard]
        others: list[str] = []
        for chunk in rng.sample(texts, min(len(texts), 4 * scattered + 8)):
            if len(others) == scattered:
                break
            if not from_sources(chunk["doc_id"], sources) and chunk["text"] not in distractors:
                others.append(chunk["text"])
        rows.append(
            {
                "question": pair["question"],
                "answer": pair["answer"],
                "oracle": oracle,
                "distractors": distractors,
                "random_distractors": others,
            }
        )
    return RaftRows(rows, retrieved, skipped)
