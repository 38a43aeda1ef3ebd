"""The embedded local Ray cluster: `ragtune up/down`, and how every job verb gets a Ray session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ragtune.cluster.serve_env import node_env, node_processes_env
from ragtune.cluster.tiers import HardwareTier, embedded_tier
from ragtune.core.atomic import write_json_atomic
from ragtune.core.errors import ClusterError

STARTUP_TIMEOUT_S = 90
CONNECT_TIMEOUT_S = 5
# Ray keeps every listener (GCS, raylet, agents, metrics, Ray Client) on 127.0.0.1 only when it
# takes the machine for a single-node one, which this variable says on Linux too.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class LocalCluster:
    """A Ray head that `ragtune up` started and `ragtune down` may stop."""

    pid: int
    address: str
    dashboard_url: str
    tier: str
    log_file: str
    loopback: bool = False  # every listener on 127.0.0.1: no other node can join


def ragtune_home() -> Path:
    """Where ragtune keeps machine-local state (RAGTUNE_HOME, default ~/.ragtune)."""
    return Path(os.environ.get("RAGTUNE_HOME", Path.home() / ".ragtune"))


def _state_file() -> Path:
    return ragtune_home() / "local-cluster.json"


def running_cluster() -> LocalCluster | None:
    """The cluster `ragtune up` started, if its head process is still alive."""
    try:
        cluster = LocalCluster(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return cluster if _group_alive(cluster.pid) else None


def start_cluster(
    tier: HardwareTier,
    port: int = 6379,
    dashboard_port: int = 8265,
    agent_port: int = 52365,
    network: bool = False,
) -> LocalCluster:
    """Start a Ray head advertising `tier`'s resources; return once it answers. Every listener is
    on loopback unless `network` (then Ray's own processes listen on this machine's address so
    other nodes can join; the dashboard and its Jobs API stay on 127.0.0.1 either way)."""
    if (existing := running_cluster()) is not None:
        raise ClusterError(
            f"a ragtune cluster is already running at {existing.address}", "use it, or `ragtune down` first"
        )
    ray_exe = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    log_file = ragtune_home() / "local-cluster.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        ray_exe,
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--num-cpus={int(tier.cpus)}",
        f"--num-gpus={tier.gpus}",
        f"--resources={json.dumps(tier.node_resources())}",
        f"--labels={json.dumps(tier.node_labels())}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        # The job agent's HTTP port; a second Ray on this machine must not share it, or jobs
        # fail with "No available agent to submit job".
        f"--dashboard-agent-listen-port={agent_port}",
    ]
    # Jobs submitted to this head run `ragtune ...`: put this environment's scripts on its PATH.
    env = {
        **os.environ,
        **node_env(),
        **({} if network else LOOPBACK_ENV),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with open(log_file, "wb") as log:
        # Its own session (process group), so `down` stops exactly these processes.
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, env=env)
    cluster = LocalCluster(
        pid=process.pid,
        address=f"127.0.0.1:{port}",
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        tier=tier.name,
        log_file=str(log_file),
        loopback=not network,
    )
    _wait_until_ready(process, cluster)
    _write_state(cluster)
    _owner_only(_token_file())
    return cluster


def stop_cluster() -> LocalCluster | None:
    """Stop the processes of the cluster `ragtune up` started; None if there was none."""
    cluster = running_cluster()
    _state_file().unlink(missing_ok=True)
    if cluster is None:
        return None
    _signal_group(cluster.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _group_alive(cluster.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _group_alive(cluster.pid):
        _signal_group(cluster.pid, signal.SIGKILL)
    _forget_address(cluster.address)
    return cluster


def _forget_address(address: str) -> None:
    """Drop Ray's "current cluster" file if it names our head, as `ray stop` does.

    Otherwise a later plain `ray.init()` on this machine tries to join the stopped cluster.
    """
    from ray._private.utils import get_ray_address_file, read_ray_address

    current = read_ray_address()
    if current and current.rsplit(":", 1)[-1] == address.rsplit(":", 1)[-1]:
        Path(get_ray_address_file(None)).unlink(missing_ok=True)


@contextmanager
def ray_session(address: str | None = None, worker_logs: bool = True) -> Iterator[str]:
    """Connect to `address`, else to the `ragtune up` cluster, else start an embedded Ray that
    advertises the embedded tier (`local`). Without `worker_logs`, what tasks and actors print
    stays in Ray's log files instead of being copied to this console.

    Yields the address connected to ("embedded" for an embedded one); disconnects on exit.
    """
    target = address or os.environ.get("RAY_ADDRESS")
    ours = running_cluster()
    if target is None and ours is not None:
        target = ours.address
    if target:
        use_cluster_token()  # before `import ray`: Ray reads the auth mode when it loads
    import ray

    if ray.is_initialized():
        yield "existing"
        return
    if not target or (ours is not None and ours.loopback and target == ours.address):
        _listen_on_loopback()  # `ragtune up`'s cluster and the embedded one live on loopback
    if target:
        _connect(ray, target, worker_logs)
    else:
        local_tier = embedded_tier()
        with node_processes_env():
            ray.init(
                address="local",  # start one, never attach to a stray cluster
                num_cpus=int(local_tier.cpus),
                num_gpus=local_tier.gpus,
                resources=local_tier.node_resources(),
                labels=local_tier.node_labels(),
                # The dashboard serves Ray's State API, which Ray Train's placement-group cleaner
                # polls; without it every poll logs a warning and orphaned groups are never freed.
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=_free_port(),
                log_to_driver=worker_logs,
            )
    try:
        yield target or "embedded"
    finally:
        ray.shutdown()


def _connect(ray, address: str, worker_logs: bool) -> None:
    """Join the cluster at `address`; an unreachable one is a ClusterError in seconds (Ray itself
    retries its GCS for minutes)."""
    fix = "check the address, or run `ragtune up` (without --address an embedded Ray starts)"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason}", fix) from None
    try:
        ray.init(address=address, log_to_driver=worker_logs)
    except ConnectionError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}", fix) from None


def _free_port() -> int:
    """A TCP port nothing listens on now (so an embedded dashboard never clashes with `ragtune up`'s)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def use_cluster_token() -> None:
    """Send the cluster token, as Ray's CLI does, when one is on this machine.

    `ray start` (Ray 2.60) turns token auth on and keeps the token in ~/.ray/auth_token, but a
    client only sends it when RAY_AUTH_MODE=token; an explicit RAY_AUTH_MODE is respected.
    """
    if os.environ.get("RAY_AUTH_TOKEN") or _token_file().is_file():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _token_file() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))


def _owner_only(path: Path) -> None:
    """Make a secret file that this user owns readable by this user only."""
    if path.is_file() and path.stat().st_uid == os.getuid():
        path.chmod(0o600)


def _listen_on_loopback() -> None:
    """Make the Ray this process starts, or joins on this machine, use loopback only. Ray
    replaces 127.0.0.1 by the machine's address (so other nodes could join) unless it takes the
    machine for a non-cluster one; it reads that from LOOPBACK_ENV when imported, so the loaded
    constant is set too. Not for joining a cluster by its network address."""
    from ray._private import ray_constants

    os.environ.update(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False


def _wait_until_ready(process: subprocess.Popen, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = Path(cluster.log_file).read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else "no output"
            raise ClusterError(
                f"ray start exited with {process.returncode} ({last})",
                f"see {cluster.log_file}; a port in use?",
            )
        try:
            with urllib.request.urlopen(f"{cluster.dashboard_url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:  # answering, even if it wants a token
            return
        except OSError:
            time.sleep(1)
    _signal_group(process.pid, signal.SIGKILL)
    raise ClusterError(
        f"the Ray head did not answer within {STARTUP_TIMEOUT_S}s", f"see {cluster.log_file}, then try again"
    )


def _write_state(cluster: LocalCluster) -> None:
    write_json_atomic(_state_file(), asdict(cluster))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
