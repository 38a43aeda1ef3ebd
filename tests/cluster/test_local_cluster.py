"""`ragtune up`, `status` and `down` against a real local Ray head."""

import os
import time

import pytest

from tests.helpers import run_cli

PORT, DASHBOARD_PORT = "6391", "8291"


def ray_processes_for(port: str) -> list[int]:
    """PIDs of processes whose command line mentions the head's GCS port."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"127.0.0.1:{port}" in cmdline or f"--port={port}" in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def ragtune_home(tmp_path):
    env = {"RAGTUNE_HOME": str(tmp_path)}
    yield env
    run_cli("down", env=env)


def test_up_status_down_leaves_nothing_behind(ragtune_home):
    up = run_cli(
        "up", "--port", PORT, "--dashboard-port", DASHBOARD_PORT, "--agent-port", "52391", env=ragtune_home
    )
    assert up.returncode == 0, up.stderr
    assert f"127.0.0.1:{PORT}" in up.stdout

    again = run_cli("up", "--port", PORT, env=ragtune_home)
    assert again.returncode == 2 and "already running" in again.stderr

    status = run_cli("status", env=ragtune_home)
    assert status.returncode == 0, status.stderr
    assert "local: 1 node(s), CPU=2" in status.stdout
    assert "jobs: none" in status.stdout and "serve apps: none" in status.stdout
    assert ray_processes_for(PORT)

    down = run_cli("down", env=ragtune_home)
    assert down.returncode == 0 and f"stopped 127.0.0.1:{PORT}" in down.stdout
    deadline = time.monotonic() + 15
    while ray_processes_for(PORT) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_processes_for(PORT) == []

    assert "no ragtune cluster is running" in run_cli("down", env=ragtune_home).stdout


def test_status_without_cluster_is_a_clear_error(ragtune_home):
    result = run_cli("status", env=ragtune_home)
    assert result.returncode == 2
    assert "ragtune up" in result.stderr
