"""Ray Serve's fast data path, switched on in every Ray process a ragtune cluster starts (the
embedded one, `ragtune up`'s, and the rendered cluster-launcher and KubeRay nodes): some of the
flags Ray's throughput-optimised mode sets. That mode also runs user code on the replica's event
loop (ragtune's generator decodes synchronously, so a stream would stall every other request),
replaces the proxy on port 8000 with direct ingress (ports per replica, unless HAProxy fronts
them) and buffers access logs; ragtune leaves those off. One more setting rides along: a replica
that fails its health checks is stopped at once, not drained, since ragtune lets a replica being
replaced finish requests up to their deadline (minutes), and a hung one would hold its CPUs or GPU
that long.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

GRPC_FLAG = "RAY_SERVE_USE_GRPC_BY_DEFAULT"
SERVE_NODE_ENV = {
    # Replicas, and the proxy, call each other over gRPC instead of through the object store.
    GRPC_FLAG: "1",
    # A replica's handles route on the event loop that calls them, not a thread of their own.
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    # What a replica holds at startup leaves the garbage collector's generations.
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
    # An unhealthy replica is force-stopped, not given the shutdown grace of a healthy one.
    "RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS": "1",
}


def node_env() -> dict[str, str]:
    """SERVE_NODE_ENV, keeping any of its variables this environment already sets."""
    return {name: os.environ.get(name, value) for name, value in SERVE_NODE_ENV.items()}


@contextmanager
def node_processes_env() -> Iterator[None]:
    """`node_env()` in this environment while an embedded Ray starts its node processes (they
    copy it, and their workers inherit it), then this process's own values again: a handle
    made here keeps Serve's defaults, which synchronous code can call."""
    saved = {name: os.environ.get(name) for name in SERVE_NODE_ENV}
    os.environ.update(node_env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def replica_handle(handle):
    """A deployment handle a replica was given, set to call the way this replica's Ray is: over
    gRPC under the fast path. A handle keeps the options of the process that built the app, and
    that process keeps Serve's defaults (see `node_processes_env`)."""
    return handle.options(_by_reference=os.environ.get(GRPC_FLAG) != "1")
