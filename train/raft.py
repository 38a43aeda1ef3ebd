"""RAFT rows → the passages a prompt shows and the answer it is trained to give.

A RAFT row is {question, answer, oracle, distractors, random_distractors?}: the passage that
answers the question, the retriever's best wrong passages (hard, best first) and random ones.
Each row draws, from a seed of its own, whether the oracle is shown (`oracle_probability`) and the
order, so training learns both to use the right passage and to answer when it is missing.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from ragtune.core.text import supported_share
from ragtune.train.config import RaftConfig

CITED = 0.5  # the oracle must hold this share of the answer's content words to be cited


class BadRaftRow(ValueError):
    """A RAFT row without the passages it needs."""


def _passages(row: dict[str, Any], key: str) -> list[str]:
    value = row.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRaftRow(f"{key} must be a string or a list of strings")
    return [v for v in value if v.strip()]


def row_rng(question: str, seed: int) -> random.Random:
    """A generator of this row's own, the same in every run and on every worker."""
    digest = hashlib.sha256(f"{seed}\0{question}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def raft_context(
    row: dict[str, Any], question: str, answer: str, config: RaftConfig
) -> tuple[list[str], str]:
    """(passages shown, target answer) for one RAFT row."""
    oracle = _passages(row, "oracle")
    hard, scattered = _passages(row, "distractors"), _passages(row, "random_distractors")
    if not oracle:
        raise BadRaftRow("missing oracle passage")
    rng = row_rng(question, config.seed)
    with_oracle = rng.random() < config.oracle_probability
    slots = config.passages - with_oracle
    from_random = min(config.random_distractors, slots, len(scattered))
    chosen = hard[: slots - from_random]
    chosen += scattered[: slots - len(chosen)]
    if len(chosen) < slots:
        raise BadRaftRow(f"needs {slots} distractors, has {len(hard) + len(scattered)}")
    passages = [oracle[0], *chosen] if with_oracle else chosen
    rng.shuffle(passages)
    if config.cite and with_oracle and (supported_share(answer, oracle[:1]) or 0) >= CITED:
        answer = f"{answer.rstrip()} [{passages.index(oracle[0]) + 1}]"
    return passages, answer
