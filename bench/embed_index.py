"""Benchmark: Ray Data embedding vs plain SentenceTransformer.encode, and FAISS index types.

    .venv/bin/python bench/embed_index.py [--chunks 20000] [--vectors 100000] [--tier local]
        [--dtype bfloat16]

Part 1 chunks the Python-docs corpus (`make python-docs`, or --corpus) and embeds the same chunks
twice in one run: with `embed_chunks` (Ray Data actor pool on the tier) and with one in-process
`SentenceTransformer.encode` at the same batch size, both in `--dtype` (`embedding.dtype`); prints
chunks/s of each and their ratio.
Part 2 builds flat, ivf and hnsw indexes (ragtune's own builders) on a clustered synthetic set of
unit vectors (two cluster regimes) and prints build time, search QPS, QPS ratio vs flat and recall@10 vs flat.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CORPUS = Path("data/python-docs/corpus.jsonl")


def chunk_texts(corpus: Path, count: int, max_tokens: int, model: str) -> list[str]:
    """`count` chunk texts from a JSONL corpus (the Python docs'), cycling if it is smaller."""
    from ragtune.retrieval.config import ChunkingConfig
    from ragtune.retrieval.embed import resolve_model
    from ragtune.retrieval.ingest import Chunker

    if not corpus.is_file():
        raise SystemExit(f"{corpus} missing: run `make python-docs` first")
    chunker = Chunker(
        ChunkingConfig(max_tokens=max_tokens, overlap_tokens=0).model_dump(),
        resolve_model(model),
    )
    texts = [row["text"] for row in chunker.chunk_file(str(corpus))]
    return [texts[i % len(texts)] for i in range(count)]


def bench_embedding(corpus: Path, count: int, max_tokens: int, tier_name: str, config) -> None:
    import os

    import ray
    import torch

    from ragtune.cluster.tiers import get_tier
    from ragtune.retrieval.embed import embed_chunks, encode, load_encoder

    texts = chunk_texts(corpus, count, max_tokens, config.model)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"embedding {len(texts)} chunks (<= {max_tokens} tokens) on {device}, "
        f"torch threads {torch.get_num_threads()}, map_batches batch {config.batch_size}, {config.dtype}"
    )
    tier = get_tier(tier_name)

    ray.init(
        address="local",
        num_cpus=min(int(tier.cpus), os.cpu_count() or 1),
        resources=tier.node_resources(),
        include_dashboard=False,
        configure_logging=False,
    )
    from ragtune.retrieval.ingest import ROWS_PER_BLOCK

    dataset = (
        ray.data.from_items([{"text": t} for t in texts])
        .repartition(max(1, len(texts) // ROWS_PER_BLOCK))
        .materialize()
    )
    started = time.perf_counter()
    rows = 0
    for batch in embed_chunks(dataset, config, tier).iter_batches(batch_size=4096, batch_format="numpy"):
        rows += len(batch["embedding"])
    ray_seconds = time.perf_counter() - started
    ray.shutdown()
    assert rows == len(texts)

    model = load_encoder(config.model, dtype=config.dtype)
    started = time.perf_counter()
    vectors = encode(model, texts, batch_size=config.batch_size)  # the batch Ray Data hands an actor
    plain_seconds = time.perf_counter() - started
    assert len(vectors) == len(texts)

    ray_rate, plain_rate = len(texts) / ray_seconds, len(texts) / plain_seconds
    print(f"ray data embed_chunks: {ray_seconds:7.1f}s  {ray_rate:7.1f} chunks/s")
    print(f"plain encode         : {plain_seconds:7.1f}s  {plain_rate:7.1f} chunks/s")
    print(f"ratio ray/plain      : {ray_rate / plain_rate:.2f}x")


# (centres, noise per dimension): "tight" clusters of ~100 points whose top-10 lie inside one
# cluster; "diffuse" clusters of ~10 points blurred into each other (a cluster-mate at cosine ~0.4
# over a floor of ~0.05), which is much harder for IVF's k-means lists.
REGIMES = {"tight": (1_000, 1.5), "diffuse": (10_000, 1.2)}


def clustered_vectors(count: int, dim: int, seed: int, regime: str) -> np.ndarray:
    """Unit vectors scattered around random centres, as set by REGIMES[regime]."""
    centres_count, noise = REGIMES[regime]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((centres_count, dim)).astype(np.float32)
    data = centres[rng.integers(0, centres_count, count)] + noise * rng.standard_normal((count, dim))
    data = data.astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def bench_faiss(count: int, regime: str, dim: int = 384, queries: int = 1000, k: int = 10):
    from ragtune.retrieval.config import IndexConfig
    from ragtune.retrieval.index import IndexBuilder

    data = clustered_vectors(count + queries, dim, seed=0, regime=regime)
    base, probe = data[:count], data[count:]
    ids = np.arange(count, dtype=np.int64)
    print(f"\nFAISS on {count} x {dim} unit vectors ({regime} clusters), {queries} queries, k={k}")
    print(f"{'index':<22}{'build s':>9}{'QPS':>10}{'QPS/flat':>10}{'recall@10':>11}")
    truth, flat_qps = None, None
    variants = [
        ("flat", {}),
        ("ivf", {"nprobe": 8}),
        ("ivf", {"nprobe": 16}),
        ("ivf", {"nprobe": 32}),
        ("hnsw", {"ef_search": 64}),
        ("hnsw", {"ef_search": 128}),
    ]
    for kind, params in variants:
        config = IndexConfig(type=kind, **params)
        started = time.perf_counter()
        builder = IndexBuilder(config, count, None)
        for start in range(0, count, config.add_batch_size):
            builder.add(
                base[start : start + config.add_batch_size],
                ids[start : start + config.add_batch_size],
            )
        index = builder.finish()
        build = time.perf_counter() - started
        index.search(probe[:10], k)  # warm up
        started = time.perf_counter()
        _, found = index.search(probe, k)
        qps = queries / (time.perf_counter() - started)
        if truth is None:
            truth, flat_qps = found, qps
        recall = np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)])
        label = kind + "".join(f" {key}={value}" for key, value in params.items())
        print(f"{label:<22}{build:>9.2f}{qps:>10.0f}{qps / flat_qps:>9.1f}x{recall:>11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="JSONL corpus with a text field")
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--tier", default="local", help="tier the embedding actors run on")
    parser.add_argument("--model", default=None, help="embedding model name or path")
    parser.add_argument("--batch-size", type=int, default=None, help="map_batches batch size")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="embedding precision")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--skip-faiss", action="store_true")
    args = parser.parse_args()
    if not args.skip_embedding:
        from ragtune.retrieval.config import EmbeddingConfig

        overrides = {"model": args.model, "batch_size": args.batch_size, "dtype": args.dtype}
        config = EmbeddingConfig(**{key: value for key, value in overrides.items() if value})
        bench_embedding(args.corpus, args.chunks, args.max_tokens, args.tier, config)
    if args.skip_faiss:
        return
    for regime in REGIMES:
        bench_faiss(args.vectors, regime)


if __name__ == "__main__":
    main()
