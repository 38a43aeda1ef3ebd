"""Benchmark: the Serve app over HTTP vs the same pipeline called in-process.

    .venv/bin/python bench/serve.py [--requests 120] [--no-access-log] [--trace] [--replica-threads N]
                                    [--serve-defaults]
                                    [--rerank [--rerank-model FOLDER] [--rerank-length 256]]

Builds a small index (Python-docs corpus if `make python-docs` ran, else generated text) and a
tiny generator, deploys the app on an embedded Ray, and drives `/v1/retrieve` and
`/v1/chat/completions` at concurrency 1, 4 and 16, in rounds that alternate with the in-process
baseline (the machine's speed drifts). The baseline calls `Retriever` and `GeneratorModel`
directly from the same number of threads, on torch's default threads (every
core); each replica computes on `--replica-threads` (default: the resource policy's one thread
for a fractional-CPU replica; two per replica make decoding 3x slower here, as the processes'
OpenMP threads contend for the 2 cores). Prints p50/p99 latency, requests/s, the
HTTP/in-process ratios, and the retriever replica count autoscaling reached (each measurement
starts once no replica is starting or stopping); then streamed chat: time to the first token and
decode tokens/s per stream.

`--trace` adds where a request's time goes, per hop, at concurrency 1 and 16: the medians of the
spans the ingress and replicas report in each response's `Server-Timing` header, and the client's
own latency less the ingress's total (the proxy and the HTTP exchange).

`--serve-defaults` starts Ray without ragtune's Serve fast path (`ragtune.cluster.serve_env`), to
measure what it saves.

`--rerank` measures `/v1/retrieve` only, with the retriever reranking 30 candidates by a
cross-encoder (default: the shipped MiniLM with a fresh head, `tune-reranker`'s default model) in
the app and in the baseline, and prints what reranking adds to the p50 over a plain search
in-process, at concurrency 1 and 16.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from served_app import QUESTIONS, deploy_bench_app

PORT = 8130
MAX_TOKENS = 16
ROUNDS = 4
# Per-hop rows of --trace: a name, and how it comes from the Server-Timing spans (+ "client").
HOPS: list[tuple[str, Callable[[dict[str, float]], float]]] = [
    ("proxy + HTTP (client - ingress total)", lambda s: s["client"] - s["total"]),
    ("ingress: body read + checks", lambda s: s["read"]),
    ("ingress: query processing", lambda s: s["plan"]),
    ("retriever call overhead", lambda s: s["retrieve"] - s["retrieve.queue"] - s["retrieve.search"]),
    ("retriever: batch wait", lambda s: s["retrieve.queue"]),
    ("retriever: search", lambda s: s["retrieve.search"]),
    (
        "generator call overhead",
        lambda s: s["generate"] - s["generate.prompt"] - s["generate.queue"] - s["generate.decode"],
    ),
    ("generator: prompt build", lambda s: s["generate.prompt"]),
    ("generator: batch wait", lambda s: s["generate.queue"]),
    ("generator: decode", lambda s: s["generate.decode"]),
    (
        "ingress: other (response, routing)",
        lambda s: s["total"] - s["read"] - s.get("plan", 0) - s["retrieve"] - s.get("generate", 0),
    ),
]


def drive(call, concurrency: int, total: int) -> dict:
    """`total` calls from `concurrency` threads: each latency (ms), the seconds they took, and
    what each call returned (its spans or stream figures, when it returns any)."""
    latencies: list[float] = []
    returned: list = []

    def one(i: int) -> None:
        started = time.perf_counter()
        result = call(QUESTIONS[i % len(QUESTIONS)])
        latencies.append((time.perf_counter() - started) * 1000)
        if result is not None:
            returned.append(result)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    return {"latencies": latencies, "seconds": time.perf_counter() - started, "returned": returned}


def summary(runs: list[dict]) -> dict:
    """p50/p99 latency (ms) and throughput over `drive` runs taken together."""
    latencies = sorted(ms for run in runs for ms in run["latencies"])
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "rps": len(latencies) / sum(run["seconds"] for run in runs),
        "returned": [result for run in runs for result in run["returned"]],
    }


def compare(local, remote, concurrency: int, total: int) -> tuple[dict, dict]:
    """The in-process and the HTTP figures of `total` calls each, taken in ROUNDS alternating
    rounds, so a change in the machine's speed (it is shared) weighs on both alike."""
    base, served = [], []
    per_round = max(concurrency, total // ROUNDS)
    for _ in range(ROUNDS):
        base.append(drive(local, concurrency, per_round))
        served.append(drive(remote, concurrency, per_round))
    return summary(base), summary(served)


def stream_figures(pieces, started: float) -> dict[str, float]:
    """Time to the first non-empty piece (ms) and tokens/s after it, from (text, tokens) pairs."""
    first = None
    tokens = 0
    for text, count in pieces:
        if text and first is None:
            first = time.perf_counter()
        tokens += count
    ended = time.perf_counter()
    first = first or ended
    decode_s = ended - first
    return {"ttft": (first - started) * 1000, "tok_s": (tokens - 1) / decode_s if decode_s > 0 else 0.0}


def main() -> None:
    import json

    import httpx
    import ray
    from ray import serve

    from ragtune.retrieval.search import Retriever
    from ragtune.serve.generator import GenerationParams, GeneratorModel
    from ragtune.serve.timing import parse_header

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--no-access-log", action="store_true", help="serve with access_log: false")
    parser.add_argument("--trace", action="store_true", help="per-hop breakdown of chat requests")
    parser.add_argument("--replica-threads", type=int, help="torch threads per replica (default: policy)")
    parser.add_argument(
        "--serve-defaults", action="store_true", help="Ray Serve's default data path, not ragtune's fast path"
    )
    parser.add_argument("--rerank", action="store_true", help="retrieve only, reranking 30 candidates")
    parser.add_argument("--rerank-model", help="cross-encoder folder (default: MiniLM, fresh head)")
    parser.add_argument("--rerank-length", type=int, default=256, help="rerank max_length")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rerank = None
    if args.rerank:
        from tests.helpers import cross_encoder

        model = args.rerank_model or str(cross_encoder(tmp / "cross-encoder"))
        rerank = {"model": model, "candidates": 30, "max_length": args.rerank_length}
    access_log = not args.no_access_log
    config, url = deploy_bench_app(
        tmp, PORT, access_log, rerank=rerank, threads=args.replica_threads, fast_path=not args.serve_defaults
    )
    retriever = Retriever(tmp / "index", rerank=config.retriever.rerank)
    generator = GeneratorModel(config.generator)
    params = GenerationParams(MAX_TOKENS, 0.0, 1.0, ())

    def local_retrieve(q):
        retriever.search(q, 3)

    def local_prompt(q):
        hits = retriever.search(q, 3)
        return generator.prompt([{"role": "user", "content": q}], [h.text for h in hits])

    def local_chat(q):
        generator.generate_batch("base", [local_prompt(q)], params)

    def local_stream(q):
        started = time.perf_counter()
        pieces = generator.stream("base", local_prompt(q), params)
        return stream_figures(((p["text"], 1 if p["text"] else 0) for p in pieces), started)

    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32))
    body = {"max_tokens": MAX_TOKENS}

    def timed_post(path: str, payload: dict) -> dict[str, float]:
        started = time.perf_counter()
        response = client.post(f"{url}{path}", json=payload)
        client_ms = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return {**parse_header(response.headers["server-timing"]), "client": client_ms}

    def http_retrieve(q):
        return timed_post("/v1/retrieve", {"query": q, "k": 3})

    def http_chat(q):
        return timed_post("/v1/chat/completions", {**body, "messages": [{"role": "user", "content": q}]})

    def http_stream(q):
        payload = {**body, "messages": [{"role": "user", "content": q}], "stream": True}
        started = time.perf_counter()
        with client.stream("POST", f"{url}/v1/chat/completions", json=payload) as response:
            response.raise_for_status()
            chunks = (json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {"))
            texts = (c["choices"][0]["delta"].get("content") or "" for c in chunks)
            return stream_figures(((text, 1 if text else 0) for text in texts), started)

    def replica_states() -> dict[str, dict[str, int]]:
        deployments = serve.status().applications[config.app_name].deployments
        return {name: dict(d.replica_states) for name, d in deployments.items()}

    def settle(quiet_s: float = 5, timeout_s: float = 60) -> None:
        """Wait until every replica has been running for `quiet_s` (autoscaling decides a few
        seconds after the load), so no scaling step lands inside a measurement."""
        started = quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s and time.monotonic() - started < timeout_s:
            if any(set(states) - {"RUNNING"} for states in replica_states().values()):
                quiet_since = time.monotonic()
            time.sleep(0.5)

    endpoints = [
        ("retrieve", local_retrieve, http_retrieve, args.requests),
        ("chat", local_chat, http_chat, args.requests // 3),
        ("stream", local_stream, http_stream, args.requests // 3),
    ]
    rows, streams, peak = [], [], 0
    for name, local, remote, total in endpoints[:1] if rerank else endpoints:
        for concurrency in (1, 4, 16):
            for warm_up in (local, remote):
                drive(warm_up, concurrency, min(total, 8))
            base, served = compare(local, remote, concurrency, total)
            (streams if name == "stream" else rows).append((name, concurrency, base, served))
            peak = max(peak, replica_states()["RetrieverDeployment"].get("RUNNING", 0))
            settle()
    print_requests(rows, peak)
    if rerank:
        plain = Retriever(tmp / "index")
        searches = [summary([drive(lambda q: plain.search(q, 3), c, args.requests)]) for _, c, _, _ in rows]
        print_rerank(rows, searches, args.rerank_length)
    else:
        print_streams(streams)
    if args.trace:
        print_trace(rows)
    serve.shutdown()
    ray.shutdown()


def print_requests(rows: list, peak: int) -> None:
    print(
        f"\n{'endpoint':<10}{'conc':>5}{'in-proc p50':>13}{'http p50':>10}{'+ms p50':>9}"
        f"{'http p99':>10}{'in-proc rps':>13}{'http rps':>10}{'rps ratio':>11}"
    )
    for name, concurrency, base, served in rows:
        print(
            f"{name:<10}{concurrency:>5}{base['p50']:>12.1f}ms{served['p50']:>8.1f}ms"
            f"{served['p50'] - base['p50']:>8.1f}{served['p99']:>8.1f}ms{base['rps']:>13.1f}"
            f"{served['rps']:>10.1f}{served['rps'] / base['rps']:>10.2f}x"
        )
    print(f"retriever replicas reached (autoscaling 1..2): {peak}")


def print_rerank(rows: list, searches: list[dict], length: int) -> None:
    """What reranking adds to the p50 of a plain search in-process, in-process and over HTTP."""
    print(f"\nreranking 30 candidates, max_length {length}: added p50 over a plain in-process search")
    print(f"{'conc':>4}{'plain search':>14}{'in-process':>12}{'over HTTP':>11}")
    for (_, concurrency, base, served), search in zip(rows, searches):
        plain = search["p50"]
        added = f"{base['p50'] - plain:>10.1f}ms{served['p50'] - plain:>9.1f}ms"
        print(f"{concurrency:>4}{plain:>12.1f}ms{added}")


def print_streams(streams: list) -> None:
    print(
        f"\nstreamed chat ({MAX_TOKENS} tokens)\n{'conc':>4}{'in-proc TTFT':>14}{'http TTFT':>11}"
        f"{'+ms':>8}{'in-proc tok/s':>15}{'http tok/s':>12}"
    )
    for _, concurrency, base, served in streams:
        local_ttft, http_ttft = (_median(r["returned"], "ttft") for r in (base, served))
        local_rate, http_rate = (_median(r["returned"], "tok_s") for r in (base, served))
        print(
            f"{concurrency:>4}{local_ttft:>12.1f}ms{http_ttft:>9.1f}ms{http_ttft - local_ttft:>8.1f}"
            f"{local_rate:>15.1f}{http_rate:>12.1f}"
        )


def _median(records: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in records)


def print_trace(rows: list) -> None:
    """Median ms per hop of the chat requests at concurrency 1 and 16 (and of retrieve's hops)."""
    measured = {(name, c): served["returned"] for name, c, _, served in rows if c in (1, 16)}
    columns = "".join(f"{name:>10}" for name in ("chat c1", "chat c16", "retr c1", "retr c16"))
    print(f"\n{'where the time goes (median ms)':<39}{columns}")
    for label, hop in HOPS:
        cells = []
        for key in (("chat", 1), ("chat", 16), ("retrieve", 1), ("retrieve", 16)):
            try:
                cells.append(f"{statistics.median(hop(s) for s in measured[key]):.1f}")
            except KeyError:  # a hop retrieve does not make
                cells.append("-")
        print(f"{label:<39}" + "".join(f"{cell:>10}" for cell in cells))
    for (name, concurrency), spans in measured.items():
        print(f"client p50 {name} c{concurrency}: {_median(spans, 'client'):.1f} ms")


if __name__ == "__main__":
    main()
