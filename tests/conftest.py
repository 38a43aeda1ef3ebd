"""Shared fixtures: one real local Ray cluster per test session, advertising the `local` tier."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")


@pytest.fixture(scope="session")
def local_tier():
    from ragtune.cluster.tiers import embedded_tier

    return embedded_tier()


@pytest.fixture(scope="session")
def ray_cluster(local_tier):
    """A real embedded Ray for the whole session, shaped like the `local` tier."""
    import ray

    ray.init(
        address="local",  # a fresh cluster, never one another process left running
        num_cpus=int(local_tier.cpus),
        resources=local_tier.node_resources(),
        include_dashboard=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()
