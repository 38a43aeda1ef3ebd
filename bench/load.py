"""Benchmark: the Serve app under sustained load, for errors, tail latency and replica memory.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 60] [--soak] [--replicas 2]
                                   [--kill Generator] [--redeploy 3]

Deploys the bench app (bench/served_app.py) on an embedded Ray, warms it up under the same load
(so batches have reached their full size), then runs one client for a baseline and `--clients`
clients for `--seconds` (`--soak`: 600 s), each alternating `/v1/retrieve` and a chat completion
over loopback, and stops by itself. Prints errors, p50/p99 and requests/s of both runs with their
ratio, and the RSS of every replica and the HTTP proxy before, at peak and after the load (sampled
each second), with its growth. `--replicas N` keeps N replicas of the retriever and the generator.
`--kill DEPLOYMENT` kills replicas of it a third into the loaded run (every one with one replica,
one of them with more) and reports, per route, failed requests, the seconds to the first success
and the longest gap between successes after the kill. `--redeploy N` redeploys the app N times
during each of three loaded runs: with Serve's rollout defaults (old replicas stop before their
replacements start and are force-killed after 20 s) as the baseline, with ragtune's default (old
replicas finish requests up to their deadline) and with `surge_percent: 100` (replacements ready
first), and prints the failed requests and the longest wait of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from served_app import QUESTIONS, deploy_bench_app

PORT = 8131
MB = 2**20


def serve_processes() -> dict[str, int]:
    """Name → pid of every live Serve replica and proxy, by their process titles."""
    import psutil

    found = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith(("ray::ServeReplica:", "ray::ProxyActor")):
            name = title.split()[0].removeprefix("ray::").split(".")[0]
            found[f"{name}#{process.info['pid']}"] = process.info["pid"]
    return found


class MemoryWatch:
    """RSS of the Serve processes, sampled every second in a background thread."""

    def __init__(self):
        import psutil

        self.psutil = psutil
        self.before = self._sample()
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, int]:
        rss = {}
        for name, pid in serve_processes().items():
            try:
                rss[name] = self.psutil.Process(pid).memory_info().rss
            except self.psutil.NoSuchProcess:
                continue
        return rss

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for name, rss in self._sample().items():
                self.peak[name] = max(self.peak.get(name, 0), rss)

    def finish(self) -> dict[str, tuple[int, int, int]]:
        """name → (before, peak, after) bytes."""
        self._stop.set()
        self._thread.join()
        after = self._sample()
        names = sorted(set(self.before) | set(after))
        return {n: (self.before.get(n, 0), self.peak.get(n, 0), after.get(n, 0)) for n in names}


def run_clients(url: str, clients: int, seconds: float) -> dict:
    """`clients` threads alternating retrieve and chat for `seconds`; latencies and outcomes."""
    import httpx

    latencies: list[float] = []
    outcomes: Counter = Counter()
    events: list[tuple[float, str, object]] = []  # (time answered, path, status)
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        with httpx.Client(timeout=60) as http:
            turn = number
            while time.monotonic() < deadline:
                question = QUESTIONS[turn % len(QUESTIONS)]
                if turn % 2:
                    path, body = "/v1/retrieve", {"query": question, "k": 3}
                else:
                    path, body = (
                        "/v1/chat/completions",
                        {
                            "messages": [{"role": "user", "content": question}],
                            "max_tokens": 16,
                        },
                    )
                started = time.perf_counter()
                try:
                    status = http.post(f"{url}{path}", json=body).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                outcomes[status] += 1
                events.append((time.monotonic(), path, status))
                turn += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": sum(n for status, n in outcomes.items() if status != 200),
        "outcomes": dict(outcomes),
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "max": latencies[-1] * 1000,
        "rps": len(latencies) / elapsed,
        "events": events,
    }


def kill_replicas_later(deployment: str, delay: float, spare: int) -> list[float]:
    """Kill the replicas of `deployment` but `spare` of them after `delay` s (in a thread); the
    kill time lands in the returned list."""
    import ray

    killed: list[float] = []

    def kill() -> None:
        time.sleep(delay)
        replicas = [
            actor
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if f"#{deployment}#" in actor["name"]
        ]
        for actor in replicas[spare:]:
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
        killed.append(time.monotonic())

    threading.Thread(target=kill, daemon=True).start()
    return killed


def redeploy_during(config, times: int, seconds: float) -> threading.Thread:
    """A started thread that starts `times` redeploys of the app evenly over `seconds` (one at a
    time: a redeploy still running when the next is due delays it)."""
    from ragtune.serve.app import deploy

    def redeploy() -> None:
        started = time.monotonic()
        for number in range(1, times + 1):
            time.sleep(max(0.0, started + number * seconds / (times + 1) - time.monotonic()))
            deploy(config)

    thread = threading.Thread(target=redeploy, daemon=True)
    thread.start()
    return thread


def with_rollout(config, surge_percent: int, request_timeout_s: float | None = None):
    """`config` with every deployment's `surge_percent`, and another request deadline (the
    replicas' shutdown grace is that plus 5 s)."""
    data = config.model_dump()
    data["request_timeout_s"] = request_timeout_s or config.request_timeout_s
    for scaling in (data["retriever"]["scaling"], data["generator"]["scaling"], data["ingress"]):
        scaling["surge_percent"] = surge_percent
    return type(config).model_validate(data)


def rollout_runs(config, url: str, clients: int, seconds: float, times: int) -> dict[str, dict]:
    """`clients` for `seconds` while the app is redeployed `times` times: with Serve's rollout
    defaults (no surge, replicas force-killed after 20 s), with ragtune's default (no surge,
    replicas finish requests up to their deadline), and with a full surge."""
    from ragtune.serve.app import deploy

    variants = {
        # 15 + ragtune's 5 s margin: Serve's 20 s grace (a request past 15 s shows as a 504)
        "Serve's defaults": with_rollout(config, 0, request_timeout_s=15),
        "ragtune, surge 0": with_rollout(config, 0),
        "ragtune, surge 100": with_rollout(config, 100),
    }
    runs = {}
    for name, variant in variants.items():
        deploy(variant)  # not measured: a replica is stopped with the grace it was deployed with
        redeploys = redeploy_during(variant, times, seconds)
        runs[name] = run_clients(url, clients, seconds)
        redeploys.join()
    return runs


def recovery(events: list, killed_at: float) -> dict[str, tuple[int, int, float, float]]:
    """Per path: requests answered after the kill, how many failed, the seconds from the kill to
    the first success after it, and the longest gap between successes from the kill on."""
    report = {}
    for path in sorted({path for _, path, _ in events}):
        after = [(t, status) for t, p, status in events if p == path and t >= killed_at]
        successes = [killed_at] + sorted(t for t, status in after if status == 200)
        gaps = [later - earlier for earlier, later in zip(successes, successes[1:])]
        failed = sum(status != 200 for _, status in after)
        first_ok = gaps[0] if gaps else float("nan")
        report[path] = (len(after), failed, first_ok, max(gaps, default=float("nan")))
    return report


def print_rollouts(runs: dict[str, dict], times: int) -> None:
    """Each rollout's requests, failures and waits; the baseline (Serve's defaults) first."""
    print(f"\n{f'{times} redeploys under load':<32}{'requests':>9}{'failed':>8}{'p99 ms':>9}{'max ms':>9}")
    for name, run in runs.items():
        print(
            f"{name:<32}{run['requests']:>9}{run['errors']:>8}{run['p99']:>9.1f}{run['max']:>9.1f}"
            f"  {run['outcomes']}"
        )
    baseline = next(iter(runs.values()))
    for name, run in list(runs.items())[1:]:
        print(f"requests made, {name} / Serve's defaults: {run['requests'] / baseline['requests']:.2f}x")


def main() -> None:
    import ray
    from ray import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", action="store_true", help="run the load for 600 s")
    parser.add_argument("--replicas", type=int, default=1, help="replicas of retriever and generator")
    parser.add_argument(
        "--kill",
        choices=["RetrieverDeployment", "Generator"],
        help="a third into the loaded run, kill every replica of this deployment (one of them "
        "with --replicas > 1)",
    )
    parser.add_argument(
        "--redeploy",
        type=int,
        default=0,
        help="redeploy the app this many times under load, in each of three rollout settings "
        "(instead of the one-client baseline and --kill)",
    )
    args = parser.parse_args()
    seconds = 600 if args.soak else args.seconds
    config, url = deploy_bench_app(Path(tempfile.mkdtemp()), PORT, access_log=False, replicas=args.replicas)
    run_clients(url, args.clients, min(20, seconds / 3))  # warm-up: batches reach their full size
    if args.redeploy:
        print_rollouts(rollout_runs(config, url, args.clients, seconds, args.redeploy), args.redeploy)
    else:
        measure_load(url, args, seconds)
    serve.shutdown()
    ray.shutdown()


def measure_load(url: str, args: argparse.Namespace, seconds: float) -> None:
    """One client, then `args.clients` (with the kill, if any): latency, errors, memory."""
    baseline = run_clients(url, 1, min(20, seconds / 3))
    watch = MemoryWatch()
    spare = args.replicas - 1 if args.replicas > 1 else 0
    killed = kill_replicas_later(args.kill, seconds / 3, spare) if args.kill else []
    loaded = run_clients(url, args.clients, seconds)
    time.sleep(5)  # let replicas settle before the "after" sample
    memory = watch.finish()
    print(f"\n{'run':<14}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}  outcomes")
    for name, run in (("1 client", baseline), (f"{args.clients} clients", loaded)):
        print(
            f"{name:<14}{run['requests']:>9}{run['errors']:>8}{run['p50']:>9.1f}{run['p99']:>9.1f}"
            f"{run['rps']:>8.1f}  {run['outcomes']}"
        )
    print(f"throughput ratio {args.clients} clients / 1 client: {loaded['rps'] / baseline['rps']:.2f}x")
    if killed:
        which = "every" if spare == 0 else f"{args.replicas - spare} of {args.replicas}"
        print(f"\nafter killing {which} {args.kill} replica(s):")
        for path, (answered, failed, to_ok, gap) in recovery(loaded["events"], killed[0]).items():
            print(
                f"  {path:<22} {answered} answered, {failed} failed, first success {to_ok:.1f} s "
                f"after, longest gap between successes {gap:.1f} s"
            )
    print(f"\n{'process':<44}{'before MB':>10}{'peak MB':>9}{'after MB':>9}{'growth MB':>10}")
    for name, (before, peak, after) in memory.items():
        print(
            f"{name:<44}{before / MB:>10.0f}{peak / MB:>9.0f}{after / MB:>9.0f}{(after - before) / MB:>10.1f}"
        )


if __name__ == "__main__":
    main()
