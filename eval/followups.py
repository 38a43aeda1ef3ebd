"""Multi-turn retrieval benchmark: FAQ questions asked as pronoun follow-ups, and how much of the
standalone recall@k each query rewrite strategy recovers.

Each judged query becomes a conversation: a first user turn about the question's most specific
phrase (the span of 1-3 words with the highest IDF in the corpus), a short assistant reply, and
the question with that phrase replaced by "it". `ragtune eval followups CONFIG` prints recall@k
of the standalone question, the raw follow-up, and each rewrite, side by side.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ragtune.core.config import StrictModel, require_model
from ragtune.core.errors import InputError
from ragtune.core.table import markdown_table
from ragtune.eval.report import read_lines
from ragtune.eval.retrieval import ranked_documents, read_judgements, recall_at_k
from ragtune.serve.query import normalise, recent_turns_query

STOPWORDS = frozenset(
    "a an and are as at be by can do does did for from how i in is it its my of on or should so "
    "that the this to was what when where which who why will with would you your me we there "
    "their they them than then there these those not no yes if into about use using get make".split()
)
_WORD = re.compile(r"[A-Za-z0-9_.'+-]+")
ASSISTANT_REPLY = "Sure, what would you like to know about it?"


class FollowupEvalConfig(StrictModel):
    """`ragtune eval followups`: recall@k of standalone vs follow-up vs rewritten queries."""

    kind: Literal["followup-eval"] = "followup-eval"
    index_dir: Path = Field(description="Index directory to search.")
    queries: Path = Field(description="Judged queries JSONL ({query, relevant}).")
    corpus: Path = Field(description="Corpus JSONL whose `text` gives the IDF that picks the phrase.")
    k: int = Field(10, ge=1, description="Cut-off of recall@k.")
    mode: Literal["dense", "bm25", "hybrid"] = Field("dense", description="Search mode.")
    recent_turns: int = Field(2, ge=1, description="User turns the cheap rewrite combines.")
    max_query_chars: int = Field(500, ge=16, description="Longest search query after normalisation.")
    condense_model: str | None = Field(
        None, description="Causal LM folder for the generator rewrite; omitted: that row is skipped."
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N queries.")


@dataclass(frozen=True)
class FollowupEvalResult:
    """recall@k per query form, and one example conversation."""

    recall: dict[str, float]
    k: int
    example: list[dict]

    def table(self) -> str:
        """Each query form's recall@k and the share of standalone recall it keeps."""
        standalone = self.recall["standalone question"]
        rows = [
            [name, f"{recall:.3f}", f"{recall / standalone:.0%}" if standalone else "—"]
            for name, recall in self.recall.items()
        ]
        return markdown_table(["query form", f"recall@{self.k}", "of standalone"], rows)


def document_frequencies(corpus: Path) -> tuple[Counter[str], int]:
    """How many corpus documents contain each lower-cased word, and the document count."""
    frequencies: Counter[str] = Counter()
    documents = 0
    for number, line in enumerate(read_lines(corpus), 1):
        if line.strip():
            try:
                text = json.loads(line)["text"]
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{corpus}:{number}: expected a JSON object with a 'text' field", "fix `corpus`"
                ) from None
            frequencies.update({w.lower() for w in _WORD.findall(str(text))})
            documents += 1
    return frequencies, documents


def key_phrase(question: str, frequencies: Counter[str], documents: int) -> str:
    """The 1-3 word span (no stopword at either end, not the first word) with the highest IDF sum."""
    words = question.rstrip("?").split()
    best, best_score = words[-1], -1.0
    for start in range(1, len(words)):
        for end in range(start + 1, min(start + 3, len(words)) + 1):
            span = words[start:end]
            if span[0].lower() in STOPWORDS or span[-1].lower() in STOPWORDS:
                continue
            score = sum(math.log(documents / (1 + frequencies[w.lower().strip(".,'")])) for w in span)
            if score > best_score:
                best, best_score = " ".join(span), score
    return best


def followup_conversation(question: str, frequencies: Counter[str], documents: int) -> list[dict]:
    """[first user turn naming the phrase, assistant reply, the question with the phrase as "it"]."""
    phrase = key_phrase(question, frequencies, documents)
    followup = question.replace(phrase, "it", 1)
    return [
        {"role": "user", "content": f"I have a question about {phrase}."},
        {"role": "assistant", "content": ASSISTANT_REPLY},
        {"role": "user", "content": followup},
    ]


def run_followup_eval(config: FollowupEvalConfig) -> FollowupEvalResult:
    """recall@k per query form."""
    from ragtune.retrieval.search import Retriever

    if config.condense_model:
        require_model(config.condense_model, "condense_model")
    judgements = read_judgements(config.queries)[: config.limit]
    frequencies, documents = document_frequencies(config.corpus)
    conversations = [followup_conversation(j.query, frequencies, documents) for j in judgements]
    forms = {
        "standalone question": [j.query for j in judgements],
        "raw follow-up": [c[-1]["content"] for c in conversations],
        f"recent_turns ({config.recent_turns})": [
            recent_turns_query(c, config.recent_turns) for c in conversations
        ],
    }
    if config.condense_model:
        from ragtune.serve.config import GeneratorDeploymentConfig
        from ragtune.serve.generator import GeneratorModel

        model = GeneratorModel(GeneratorDeploymentConfig(base_model=config.condense_model))
        forms["condense (generator)"] = model.condense_batch(conversations)
    retriever = Retriever(config.index_dir)
    results = {}
    for name, queries in forms.items():
        queries = [normalise(q, config.max_query_chars) for q in queries]
        rankings = ranked_documents(retriever, queries, config.k, config.mode)
        results[name] = sum(
            recall_at_k(ranking, set(j.relevant), config.k) for ranking, j in zip(rankings, judgements)
        ) / len(judgements)
    return FollowupEvalResult(results, config.k, conversations[0])
