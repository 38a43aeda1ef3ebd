"""Shared fixtures: one real local Ray cluster per test session, advertising the `local` tier."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")


@pytest.fixture(scope="session")
def local_tier():
    from ragtune.cluster.tiers import embedded_tier

    return embedded_tier()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster(local_tier):
    """A real embedded Ray for the whole session, shaped like the `local` tier."""
    import ray

    from ragtune.cluster.serve_env import node_processes_env

    with node_processes_env():  # as `ragtune`'s own embedded Ray starts
        ray.init(
            address="local",  # a fresh cluster, never one another process left running
            num_cpus=int(local_tier.cpus),
            resources=local_tier.node_resources(),
            # As `ragtune`'s own Ray does: the dashboard serves the State API that Ray Train's
            # placement-group cleaner polls; without it the workers of a trial that Ray Tune stops
            # keep their CPUs, and the next job waits for them forever.
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),  # never the 8265 a `ragtune up` in another test takes
            configure_logging=False,
        )
    yield ray
    ray.shutdown()
