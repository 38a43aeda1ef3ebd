"""Retrieval evaluation: recall@k, MRR@k and nDCG@k against relevance judgements (JSONL)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ragtune.core.atomic import write_json_atomic
from ragtune.core.config import StrictModel, require_model
from ragtune.core.errors import InputError
from ragtune.core.table import markdown_table
from ragtune.eval.report import read_lines
from ragtune.eval.uncertainty import Interval, paired_difference
from ragtune.retrieval.config import RerankConfig
from ragtune.retrieval.search import Retriever, SearchMode


class Judgement(StrictModel):
    """One query and the document ids that answer it (a line of the queries JSONL)."""

    query: str = Field(min_length=1)
    relevant: list[str] = Field(min_length=1)


class RetrievalEvalConfig(StrictModel):
    """`ragtune eval retrieval`: score an index on queries with known relevant documents."""

    kind: Literal["retrieval-eval"] = "retrieval-eval"
    index_dir: Path = Field(description="Index directory built by `ragtune index`.")
    queries: Path = Field(description='JSONL lines {"query": ..., "relevant": [doc_id, ...]}.')
    k: list[int] = Field([1, 5, 10], min_length=1, description="Cut-offs to report.")
    modes: list[Literal["dense", "bm25", "hybrid"]] = Field(
        ["dense", "bm25", "hybrid"], min_length=1, description="Search modes to compare."
    )
    rerank: RerankConfig | None = Field(
        None, description="Also score each mode reranked by this cross-encoder (rows `MODE+rerank`)."
    )
    output: Path | None = Field(None, description="Write the figures here as JSON.")


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    return len(set(ranked[:k]) & relevant) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-gain nDCG: DCG of the ranking over DCG of an ideal one."""
    dcg = sum(1 / math.log2(rank + 1) for rank, d in enumerate(ranked[:k], 1) if d in relevant)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def read_judgements(path: Path) -> list[Judgement]:
    """Parse the queries JSONL, naming the line of any bad record."""
    judgements = []
    for line_no, line in enumerate(read_lines(path), start=1):
        if line.strip():
            try:
                judgements.append(Judgement.model_validate_json(line))
            except ValueError as exc:
                reason = str(exc).splitlines()[-1].strip() if str(exc).strip() else "invalid"
                raise InputError(
                    f"{path}:{line_no}: not a judged query ({reason})",
                    'each line must be {"query": ..., "relevant": [doc_id, ...]}',
                ) from None
    if not judgements:
        raise InputError(f"{path}: no queries")
    return judgements


def ranked_documents(
    retriever: Retriever, queries: list[str], k: int, mode: SearchMode, rerank: bool = False
):
    """For each query, the distinct doc ids of its hits in rank order (k of them at most)."""
    rankings = []
    for hits in retriever.search_batch(queries, 3 * k, mode, rerank):
        docs = list(dict.fromkeys(hit.doc_id for hit in hits))
        rankings.append(docs[:k])
    return rankings


METRICS = (("recall", recall_at_k), ("mrr", mrr_at_k), ("ndcg", ndcg_at_k))
GAIN_KEY = "rerank_gain"  # in the JSON output, beside the modes


def evaluate(
    retriever: Retriever, judgements: list[Judgement], ks: list[int], modes: list[SearchMode]
) -> dict[str, dict[str, list[float]]]:
    """Each query's recall@k, MRR@k and nDCG@k per search mode, and per mode reranked
    (`MODE+rerank`) when the retriever has a reranker."""
    queries = [j.query for j in judgements]
    runs = [(mode, mode, False) for mode in modes]
    if retriever.reranker is not None:
        runs += [(f"{mode}+rerank", mode, True) for mode in modes]
    per_query = {}
    for row, mode, rerank in runs:
        rankings = ranked_documents(retriever, queries, max(ks), mode, rerank)
        per_query[row] = {
            f"{name}@{k}": [metric(r, set(j.relevant), k) for r, j in zip(rankings, judgements)]
            for k in ks
            for name, metric in METRICS
        }
    return per_query


@dataclass(frozen=True)
class RetrievalEvalResult:
    """Mean scores per search mode, e.g. scores["dense"]["recall@10"], and for each reranked mode
    its gain over the same mode unreranked, query by query, with a paired 95% bootstrap interval."""

    scores: dict[str, dict[str, float]]
    rerank_gains: dict[str, dict[str, Interval]]

    @classmethod
    def of(cls, per_query: dict[str, dict[str, list[float]]]) -> RetrievalEvalResult:
        """From `evaluate`'s per-query values: the means, and each `MODE+rerank` row paired with `MODE`."""
        scores = {row: {m: sum(v) / len(v) for m, v in metrics.items()} for row, metrics in per_query.items()}
        gains = {
            row: {
                m: paired_difference(v, per_query[row.removesuffix("+rerank")][m]) for m, v in metrics.items()
            }
            for row, metrics in per_query.items()
            if row.endswith("+rerank")
        }
        return cls(scores, gains)

    def table(self) -> str:
        """One row per mode, one column per metric; then the reranking gains, if any."""
        columns = list(next(iter(self.scores.values())))
        rows = [[mode, *(f"{scores[c]:.3f}" for c in columns)] for mode, scores in self.scores.items()]
        table = markdown_table(["mode", *columns], rows)
        if not self.rerank_gains:
            return table
        gains = [[row, *(str(gain[c]) for c in columns)] for row, gain in self.rerank_gains.items()]
        return (
            f"{table}\n\nreranked − first stage, per query (paired bootstrap 95% interval):\n"
            f"{markdown_table(['mode', *columns], gains)}"
        )

    def to_json(self) -> dict:
        """{mode: {metric: mean}}, plus, when something was reranked, {GAIN_KEY: {"MODE+rerank":
        {metric: {"mean", "low", "high"}}}} beside the modes."""
        gains = {
            row: {m: asdict(interval) for m, interval in gain.items()}
            for row, gain in self.rerank_gains.items()
        }
        return {**self.scores, **({GAIN_KEY: gains} if gains else {})}


def run_retrieval_eval(config: RetrievalEvalConfig) -> RetrievalEvalResult:
    """Evaluate the index in `config`; write the scores as JSON if asked."""
    judgements = read_judgements(config.queries)
    if config.rerank is not None:
        require_model(config.rerank.model, "rerank.model")
    retriever = Retriever(config.index_dir, rerank=config.rerank)
    result = RetrievalEvalResult.of(evaluate(retriever, judgements, config.k, config.modes))
    if config.output:
        write_json_atomic(config.output, result.to_json())
    return result
