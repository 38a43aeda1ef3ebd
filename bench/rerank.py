"""Benchmark: what reranking adds to a search, in-process, on this machine.

    .venv/bin/python bench/rerank.py [--index data/indexes/python-docs] [--model FOLDER]
                                     [--candidates 30] [--lengths 256 128 64]

Searches an index (`ragtune index configs/index/python-docs.yaml` makes the default one) dense
for k=3, then the same searches reranked from `--candidates` by a cross-encoder at each
`--lengths` (max tokens of query + passage). `--model` defaults to the shipped MiniLM with a fresh
one-score head: the compute of `tune-reranker`'s default model, untrained. Prints p50 latency of
one query, the time per query when 16 are reranked as one batch (as a Serve replica's batch
does), and the ratio against the dense search measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.helpers; an installed ragtune comes first

from served_app import QUESTIONS  # noqa: E402


def p50_ms(call, runs: int) -> float:
    times = []
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    from ragtune.retrieval.config import RerankConfig
    from ragtune.retrieval.search import Retriever
    from tests.helpers import cross_encoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=str(ROOT / "data" / "indexes" / "python-docs"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 128, 64])
    args = parser.parse_args()
    model = args.model or str(cross_encoder(Path(tempfile.mkdtemp()) / "cross-encoder"))
    batch = (QUESTIONS * 3)[:16]
    plain = Retriever(args.index)
    dense = p50_ms(lambda i: plain.search(QUESTIONS[i % len(QUESTIONS)], 3), 12)
    print(f"\ndense k=3: p50 {dense:.1f} ms per query")
    print(f"{'max_length':>10}{'1 query p50':>14}{'added':>10}{'x dense':>9}{'batch of 16, per query':>25}")
    for length in args.lengths:
        rerank = RerankConfig(model=model, candidates=args.candidates, max_length=length)
        reranking = Retriever(args.index, rerank=rerank)
        one = p50_ms(lambda i, r=reranking: r.search(QUESTIONS[i % len(QUESTIONS)], 3), 6)
        per_query = p50_ms(lambda i, r=reranking: r.search_batch(batch, 3), 2) / len(batch)
        print(f"{length:>10}{one:>11.0f} ms{one - dense:>7.0f} ms{one / dense:>8.1f}x{per_query:>22.0f} ms")


if __name__ == "__main__":
    main()
