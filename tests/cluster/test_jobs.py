"""A real two-node Ray cluster on this machine (`ragtune up --network`, auth on): tier placement
and `ragtune submit`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtune.core.artifacts import IndexManifest
from tests.helpers import ROOT, run_cli

PORT, DASHBOARD = "6393", "8293"
ADDRESS = f"http://127.0.0.1:{DASHBOARD}"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Head advertising tier `local`, plus a second node advertising tiers `cpu-small` and `edge`."""
    home = tmp_path_factory.mktemp("ragtune-home")
    env = {"RAGTUNE_HOME": str(home)}
    # Own agent ports: the session's embedded Ray already holds the default one.
    up = run_cli(
        "up", "--network", "--port", PORT, "--dashboard-port", DASHBOARD, "--agent-port", "52393", env=env
    )
    assert up.returncode == 0, up.stderr
    ray = str(Path(sys.executable).parent / "ray")
    worker = subprocess.Popen(
        [
            ray,
            "start",
            "--block",
            f"--address=127.0.0.1:{PORT}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            '--resources={"tier:cpu-small": 1000, "tier:edge": 1000}',  # edge: a tier of custom tiers only
            "--disable-usage-stats",
            "--dashboard-agent-listen-port=52394",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "token"},  # joining a head with token auth on
    )
    try:
        _wait_for_nodes(2, env)
        yield env
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        run_cli("down", env=env)


def _wait_for_nodes(count: int, env: dict) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = run_cli("status", env=env)
        if status.stdout.count(" alive ") >= count:
            return
        time.sleep(2)
    raise AssertionError(f"cluster never reached {count} nodes:\n{status.stdout}{status.stderr}")


PLACEMENT = """
import json, ray
from ragtune.cluster.resources import TierUnavailable, check_schedulable, data_remote_args, worker_resources
from ragtune.cluster.tiers import get_tier
ray.init(address="127.0.0.1:{port}")
nodes = {{n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}}
@ray.remote
def where():
    return ray.get_runtime_context().get_node_id()
placed = {{}}
for name in ("cpu-small", "local"):
    tier = get_tier(name)
    check_schedulable(tier, worker_resources(tier))
    args = data_remote_args(tier, num_cpus=0.5)
    found = set(ray.get([where.options(**args).remote() for _ in range(6)]))
    placed[name] = sorted(k for nid in found for k in nodes[nid] if k.startswith("tier:"))
try:
    check_schedulable(get_tier("gpu-a10g-x1"), worker_resources(get_tier("gpu-a10g-x1")))
    placed["gpu"] = "scheduled?!"
except TierUnavailable as exc:
    placed["gpu"] = str(exc)
print(json.dumps(placed))
"""


def test_work_lands_only_on_its_tiers_node(two_nodes):
    result = subprocess.run(
        [sys.executable, "-c", PLACEMENT.format(port=PORT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **two_nodes, "RAY_AUTH_MODE": "token"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    placed = json.loads(result.stdout.strip().splitlines()[-1])
    assert placed["cpu-small"] == ["tier:cpu-small", "tier:edge"]  # only the second node
    assert placed["local"] == ["tier:local"]
    assert "gpu-a10g-x1" in placed["gpu"] and "A10G" in placed["gpu"]


def test_submit_status_logs_and_stop(two_nodes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    config = tmp_path / "index.yaml"
    config.write_text(f"kind: index\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n")
    submitted = run_cli(
        "submit", "index", str(config), "--address", ADDRESS, "--follow", env=two_nodes, timeout=300
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = submitted.stdout.split()[1]
    assert "1 chunks" in submitted.stdout and f"{job_id}: SUCCEEDED" in submitted.stdout
    assert (tmp_path / "idx" / "ragtune-manifest.json").is_file()
    listed = run_cli("jobs", "list", "--address", ADDRESS, env=two_nodes)
    assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    logs = run_cli("jobs", "logs", job_id, "--address", ADDRESS, env=two_nodes)
    assert "1 chunks" in logs.stdout

    slow = tmp_path / "slow.yaml"
    slow.write_text(config.read_text().replace("output_dir:", "tier: local\noutput_dir:") + "\n")
    started = run_cli("submit", "index", str(slow), "--address", ADDRESS, env=two_nodes)
    slow_id = started.stdout.split()[1]
    stopped = run_cli("jobs", "stop", slow_id, "--address", ADDRESS, env=two_nodes)
    assert stopped.returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = run_cli("jobs", "status", slow_id, "--address", ADDRESS, env=two_nodes).stdout
        if "STOPPED" in state:
            break
        time.sleep(1)
    assert "STOPPED" in state


def test_submit_refuses_bad_config_before_submitting(two_nodes, tmp_path):
    config = tmp_path / "index.yaml"
    config.write_text("kind: index\ndocuments: [x]\noutput_dir: y\ntier: gpu-a100\n")
    result = run_cli("submit", "index", str(config), "--address", ADDRESS, env=two_nodes)
    assert result.returncode == 2 and "known tiers" in result.stderr


def test_submitted_job_is_checked_against_the_submitters_tiers(two_nodes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    tiers = tmp_path / "my-tiers.yaml"
    local, edge = "{cpus: 2, memory_gb: 8, cost_per_hour: 0}", "{cpus: 1, memory_gb: 4, cost_per_hour: 0.1}"
    tiers.write_text(f"tiers:\n  local: {local}\n  edge: {edge}\n")
    config = tmp_path / "index.yaml"
    config.write_text(f"kind: index\ntier: edge\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n")
    unknown = run_cli("submit", "index", str(config), "--address", ADDRESS, env=two_nodes)
    assert unknown.returncode == 2 and "tier 'edge' is not declared" in unknown.stderr
    submitted = run_cli(
        "submit",
        "index",
        str(config),
        "--tiers",
        str(tiers),
        "--address",
        ADDRESS,
        "--follow",
        env=two_nodes,
        timeout=300,
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert "1 chunks" in submitted.stdout and "SUCCEEDED" in submitted.stdout, submitted.stdout[-3000:]
    assert IndexManifest.read(tmp_path / "idx").tier == "edge"
