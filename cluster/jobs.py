"""Run any `ragtune VERB CONFIG` as a Ray job through the Jobs SDK; list, follow and stop jobs.

A submitted job carries its config and the submitter's tiers file in its working dir, so the
cluster validates and places it against the same tiers.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ragtune.cluster.local import running_cluster, use_cluster_token
from ragtune.cluster.tiers import TIERS_ENV, tiers_file
from ragtune.core.errors import ClusterError

AGENT_WAIT_S = 60
DEBUG_ENV = "RAGTUNE_DEBUG"
JOB_TIERS_FILE = "ragtune-tiers.yaml"  # the submitter's tiers file, inside the job's working dir
Result = TypeVar("Result")


def jobs_address(address: str | None) -> str:
    """The dashboard URL: given, else the `ragtune up` cluster's, else RAY_ADDRESS."""
    if address:
        return address if "://" in address else f"http://{address}"
    if (cluster := running_cluster()) is not None:
        return cluster.dashboard_url
    if os.environ.get("RAY_ADDRESS", "").startswith("http"):
        return os.environ["RAY_ADDRESS"]
    raise ClusterError("no cluster to submit to", "pass --address http://HEAD:8265 or run `ragtune up`")


def require_secure_transport(url: str, insecure: bool) -> None:
    """Refuse plain http to a Jobs API off this machine (the cluster token would cross the
    network in clear) unless `insecure` says so."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if urlsplit(url).scheme == "http" and not loopback and not insecure:
        raise ClusterError(
            f"plain http to {host} would send the cluster token in clear",
            "use https (an authenticated ingress) or a tunnel to 127.0.0.1 (`kubectl "
            "port-forward`, `ray dashboard`), or pass --insecure on a network you trust",
        )


def _call(address: str | None, action: Callable[..., Result]) -> Result:
    """Run `action(client)` against the cluster's Jobs API; its failures as ClusterErrors."""
    url = jobs_address(address)
    use_cluster_token()  # the Jobs API wants the token too (auth is on by default in Ray 2.60)
    from ray.job_submission import JobSubmissionClient

    try:
        return action(JobSubmissionClient(url))
    except (ConnectionError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"Jobs API at {url}: {first_line}", "check --address: the dashboard URL") from None


def submit_job(
    verb: str, config: Path, address: str | None, overrides: list[str], env: dict[str, str] | None = None
) -> str:
    """Upload the config and the tiers file as the job's working dir; run `ragtune VERB CONFIG`
    there. The caller has validated the config for the verb."""
    with tempfile.TemporaryDirectory() as package:
        shutil.copy(config, Path(package) / config.name)
        shutil.copy(tiers_file(), Path(package) / JOB_TIERS_FILE)
        args = [*verb.split(), config.name, *(f"--set={item}" for item in overrides)]
        debug = {DEBUG_ENV: "1"} if os.environ.get(DEBUG_ENV) == "1" else {}  # tracebacks in its logs too
        env_vars = {**(env or {}), **debug, TIERS_ENV: JOB_TIERS_FILE}
        runtime_env = {"working_dir": package, "env_vars": env_vars}

        def submit(client) -> str:
            deadline = time.monotonic() + AGENT_WAIT_S
            while True:
                try:
                    return client.submit_job(
                        entrypoint="ragtune " + shlex.join(args),
                        runtime_env=runtime_env,
                        metadata={"ragtune.verb": verb, "ragtune.config": str(config)},
                    )
                except RuntimeError as exc:  # a fresh head's job agent may not be up yet
                    if "No available agent" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(2)

        return _call(address, submit)


def list_jobs(address: str | None) -> list[dict[str, str]]:
    jobs = _call(address, lambda client: client.list_jobs())
    return [
        {"id": job.submission_id, "status": str(job.status), "entrypoint": job.entrypoint}
        for job in jobs
        if job.submission_id
    ]


def job_status(job_id: str, address: str | None) -> str:
    return str(_call(address, lambda client: client.get_job_status(job_id)))


def job_logs(job_id: str, address: str | None) -> str:
    return _call(address, lambda client: client.get_job_logs(job_id))


def follow_logs(job_id: str, address: str | None) -> Iterator[str]:
    """Stream a job's log lines until it ends."""
    import asyncio

    def existing(client):
        client.get_job_status(job_id)  # a missing job fails here, not inside the log stream
        return client

    client = _call(address, existing)

    async def collect():
        async for lines in client.tail_job_logs(job_id):
            yield lines

    loop = asyncio.new_event_loop()
    stream = collect()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def stop_job(job_id: str, address: str | None) -> bool:
    return _call(address, lambda client: client.stop_job(job_id))
