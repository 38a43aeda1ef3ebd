"""Run any `ragtune VERB CONFIG` as a Ray job through the Jobs SDK; list, follow and stop jobs."""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

JOB_VERBS = ("index", "tune-embedder", "train", "serve", "eval retrieval")
AGENT_WAIT_S = 60


def jobs_address(address: str | None) -> str:
    """The dashboard URL: given, else the `ragtune up` cluster's, else RAY_ADDRESS."""
    import os

    from cluster.local import ClusterError, running_cluster

    if address:
        return address if "://" in address else f"http://{address}"
    if (cluster := running_cluster()) is not None:
        return cluster.dashboard_url
    if os.environ.get("RAY_ADDRESS", "").startswith("http"):
        return os.environ["RAY_ADDRESS"]
    raise ClusterError("no cluster to submit to: pass --address http://HEAD:8265 or `ragtune up`")


def _client(address: str | None):
    from cluster.local import use_cluster_token

    use_cluster_token()  # the Jobs API wants the token too (auth is on by default in Ray 2.60)
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(jobs_address(address))


def submit_job(verb: str, config: Path, address: str | None, overrides: list[str],
               env: dict[str, str] | None = None) -> str:  # fmt: skip
    """Upload the config as the job's working dir and run `ragtune VERB CONFIG` there."""
    if verb not in JOB_VERBS:
        raise ValueError(f"cannot submit '{verb}'; job verbs: {', '.join(JOB_VERBS)}")
    from cluster.cli import load_job_config

    load_job_config(config, overrides)  # fail here, not on the cluster
    with tempfile.TemporaryDirectory() as package:
        shutil.copy(config, Path(package) / config.name)
        args = [*verb.split(), config.name, *(f"--set={item}" for item in overrides)]
        client = _client(address)
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                return client.submit_job(
                    entrypoint="ragtune " + shlex.join(args),
                    runtime_env={"working_dir": package, "env_vars": dict(env or {})},
                    metadata={"ragtune.verb": verb, "ragtune.config": str(config)},
                )
            except RuntimeError as exc:  # a fresh head's job agent may not be up yet
                if "No available agent" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(2)


def list_jobs(address: str | None) -> list[dict[str, str]]:
    return [
        {"id": job.submission_id, "status": str(job.status), "entrypoint": job.entrypoint}
        for job in _client(address).list_jobs()
        if job.submission_id
    ]


def job_status(job_id: str, address: str | None) -> str:
    return str(_client(address).get_job_status(job_id))


def job_logs(job_id: str, address: str | None) -> str:
    return _client(address).get_job_logs(job_id)


def follow_logs(job_id: str, address: str | None) -> Iterator[str]:
    """Stream a job's log lines until it ends."""
    import asyncio

    client = _client(address)

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
    return _client(address).stop_job(job_id)
