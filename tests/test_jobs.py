"""A real two-node Ray cluster on 127.0.0.1 (auth on): tier placement and `ragtune submit`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

PORT, DASHBOARD = "6393", "8293"
ADDRESS = f"http://127.0.0.1:{DASHBOARD}"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Head advertising tier `local`, plus a second node advertising tier `cpu-small`."""
    home = tmp_path_factory.mktemp("ragtune-home")
    env = {"RAGTUNE_HOME": str(home)}
    # Own agent ports: the session's embedded Ray already holds the default one.
    up = run_cli("up", "--port", PORT, "--dashboard-port", DASHBOARD, "--agent-port", "52393", env=env)
    assert up.returncode == 0, up.stderr
    ray = str(Path(sys.executable).parent / "ray")
    worker = subprocess.Popen(
        [ray, "start", "--block", f"--address=127.0.0.1:{PORT}", "--node-ip-address=127.0.0.1",
         "--num-cpus=1", '--resources={"tier:cpu-small": 1000}', "--disable-usage-stats",
         "--dashboard-agent-listen-port=52394"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "token"},  # joining a head with token auth on
    )  # fmt: skip
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
from cluster.tiers import get_tier, data_remote_args, check_schedulable, worker_resources, TierUnavailable
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
    result = subprocess.run([sys.executable, "-c", PLACEMENT.format(port=PORT)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, **two_nodes, "RAY_AUTH_MODE": "token"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    placed = json.loads(result.stdout.strip().splitlines()[-1])
    assert placed["cpu-small"] == ["tier:cpu-small"]
    assert placed["local"] == ["tier:local"]
    assert "gpu-a10g-x1" in placed["gpu"] and "A10G" in placed["gpu"]


def test_submit_status_logs_and_stop(two_nodes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    config = tmp_path / "index.yaml"
    config.write_text(f"kind: index\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n")
    submitted = run_cli("submit", "index", str(config), "--address", ADDRESS, "--follow",
                        env=two_nodes, timeout=300)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = submitted.stdout.split()[1]
    assert "1 chunks" in submitted.stdout and f"{job_id}: SUCCEEDED" in submitted.stdout
    assert (tmp_path / "idx" / "manifest.json").is_file()
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
