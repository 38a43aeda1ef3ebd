"""`ragtune up`, `status` and `down` against a real local Ray head."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

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


LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def listening_addresses(session: int) -> set[str]:
    """The addresses that processes of one session (a Ray head and its children) listen on."""
    import psutil

    found = set()
    for conn in psutil.net_connections(kind="inet"):
        if conn.status != psutil.CONN_LISTEN or not conn.pid:
            continue
        try:
            if os.getsid(conn.pid) == session:
                found.add(conn.laddr.ip)
        except ProcessLookupError:
            continue
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
    no_serve = run_cli("serve", "--down", env=ragtune_home)
    assert no_serve.returncode == 0 and "Serve is not running" in no_serve.stdout, no_serve.stderr
    assert ray_processes_for(PORT)
    head = json.loads((Path(ragtune_home["RAGTUNE_HOME"]) / "local-cluster.json").read_text())["pid"]
    listening = listening_addresses(os.getsid(head))
    assert listening and listening <= LOOPBACK, listening  # GCS, raylet, agents, metrics, client
    token = Path.home() / ".ray" / "auth_token"
    if token.is_file():
        assert stat.S_IMODE(token.stat().st_mode) == 0o600

    down = run_cli("down", env=ragtune_home)
    assert down.returncode == 0 and f"stopped 127.0.0.1:{PORT}" in down.stdout
    deadline = time.monotonic() + 15
    while ray_processes_for(PORT) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_processes_for(PORT) == []

    assert "no ragtune cluster is running" in run_cli("down", env=ragtune_home).stdout


VERB_AUTH_MODE = """
import os, sys
from ragtune.cli.main import main
sys.argv = ["ragtune", "version"]
try:
    main()
except SystemExit:
    pass
print(os.environ.get("RAY_AUTH_MODE"))
"""


def test_every_verb_sends_the_cluster_token_when_this_machine_has_one(tmp_path):
    """Ray reads its auth mode once, on import, and a verb may import ray before it connects (serve
    checks its inputs first): the mode is set before any verb runs."""
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    for path, expected in ((token, "token"), (tmp_path / "none", "None")):
        run = subprocess.run(
            [sys.executable, "-c", VERB_AUTH_MODE],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "RAY_AUTH_TOKEN_PATH": str(path)},
        )
        assert run.stdout.strip().splitlines()[-1] == expected, run.stderr[-2000:]


def test_status_without_cluster_is_a_clear_error(ragtune_home):
    result = run_cli("status", env=ragtune_home)
    assert result.returncode == 2
    assert "ragtune up" in result.stderr


EMBEDDED = """
import json, os, psutil, sys, time
from ragtune.cluster.local import ray_session
with ray_session():
    time.sleep(5)  # the agents' listeners come up after init returns
    sys.path.insert(0, os.getcwd())
    from tests.cluster.test_local_cluster import listening_addresses
    print(json.dumps(sorted(listening_addresses(os.getsid(0)))))
"""


def test_the_embedded_ray_listens_on_loopback_only():
    from tests.helpers import ROOT

    run = subprocess.run(
        [sys.executable, "-c", EMBEDDED],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        start_new_session=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    listening = set(json.loads(run.stdout.strip().splitlines()[-1]))
    assert listening and listening <= LOOPBACK, listening
