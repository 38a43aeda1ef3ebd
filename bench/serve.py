"""Benchmark: the Serve app over HTTP vs the same pipeline called in-process.

    .venv/bin/python bench/serve.py [--requests 120] [--no-access-log]

Builds a small index (Python-docs corpus if `make python-docs` ran, else generated text) and a
tiny generator, deploys the app on an embedded Ray, and drives `/v1/retrieve` and
`/v1/chat/completions` at concurrency 1, 4 and 16. The in-process baseline calls `Retriever`
and `GeneratorModel` directly from the same number of threads. Prints p50/p99 latency, requests/s,
the HTTP/in-process ratios, and the retriever replica count autoscaling reached (each measurement
starts once no replica is starting or stopping).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from served_app import QUESTIONS, deploy_bench_app

PORT = 8130


def drive(call, concurrency: int, total: int) -> dict[str, float]:
    """Latency percentiles (ms) and throughput of `total` calls from `concurrency` threads."""
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        call(QUESTIONS[i % len(QUESTIONS)])
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "rps": total / elapsed,
    }


def main() -> None:
    import httpx
    import ray
    from ray import serve

    from ragtune.retrieval.search import Retriever
    from ragtune.serve.generator import GenerationParams, GeneratorModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--no-access-log", action="store_true", help="serve with access_log: false")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    config, url = deploy_bench_app(tmp, PORT, access_log=not args.no_access_log)
    retriever = Retriever(tmp / "index")
    generator = GeneratorModel(config.generator)
    params = GenerationParams(16, 0.0, 1.0, ())

    def local_retrieve(q):
        return retriever.search(q, 3)

    def local_chat(q):
        hits = retriever.search(q, 3)
        prompt = generator.prompt([{"role": "user", "content": q}], [h.text for h in hits])
        return generator.generate_batch("base", [prompt], params)[0]

    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32))

    def http_retrieve(q):
        client.post(f"{url}/v1/retrieve", json={"query": q, "k": 3}).raise_for_status()

    def http_chat(q):
        body = {"messages": [{"role": "user", "content": q}], "max_tokens": 16}
        client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()

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

    rows, peak = [], 0
    for name, local, remote, total in (
        ("retrieve", local_retrieve, http_retrieve, args.requests),
        ("chat", local_chat, http_chat, args.requests // 3),
    ):
        for concurrency in (1, 4, 16):
            drive(remote, concurrency, min(total, 8))  # warm-up
            base = drive(local, concurrency, total)
            served = drive(remote, concurrency, total)
            rows.append((name, concurrency, base, served))
            peak = max(peak, replica_states()["RetrieverDeployment"].get("RUNNING", 0))
            settle()
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
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
