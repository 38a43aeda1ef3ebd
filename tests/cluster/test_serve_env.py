"""Serve's fast path reaches the Ray processes a ragtune cluster starts, not the caller."""

from __future__ import annotations

import os

from ragtune.cluster.serve_env import SERVE_NODE_ENV, node_env, node_processes_env


def test_node_processes_get_the_fast_path_and_the_caller_keeps_its_own(monkeypatch):
    monkeypatch.delenv("RAY_SERVE_USE_GRPC_BY_DEFAULT", raising=False)
    monkeypatch.setenv("RAY_SERVE_FREEZE_GC_ON_STARTUP", "0")  # the user's choice wins
    with node_processes_env():
        inside = {name: os.environ.get(name) for name in SERVE_NODE_ENV}
    assert inside["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1"
    assert inside["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "0"
    assert inside["RAY_SERVE_FREEZE_GC_ON_STARTUP"] == "0"
    assert inside["RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS"] == "1"
    assert "RAY_SERVE_USE_GRPC_BY_DEFAULT" not in os.environ
    assert os.environ["RAY_SERVE_FREEZE_GC_ON_STARTUP"] == "0"
    assert node_env()["RAY_SERVE_FREEZE_GC_ON_STARTUP"] == "0"


def test_the_test_cluster_replicas_run_with_the_fast_path(ray_cluster):
    """Node processes started inside `node_processes_env` (as `ragtune`'s embedded Ray and the
    session's are) hand the flags to the workers they spawn later: replicas among them."""

    @ray_cluster.remote(num_cpus=0)
    def worker_env() -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in SERVE_NODE_ENV}

    seen = ray_cluster.get(worker_env.remote())
    assert seen == node_env()
