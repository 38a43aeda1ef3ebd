"""Where a request's time goes. The ingress times its own steps and each replica call; the
replicas time how long a call waited for its batch and how long the batch ran. The spans go back
to the client in the standard `Server-Timing` header (W3C), e.g.

    Server-Timing: read;dur=0.31, plan;dur=0.05, retrieve;dur=14.2, retrieve.queue;dur=0.4, ...

so `bench/serve.py --trace`, a browser's network panel or any client can break a request down
per hop: what the replica itself spent, and what the call to it cost on top (the difference)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

HEADER = "Server-Timing"


def since_ms(started: float) -> float:
    """Milliseconds from a `time.perf_counter()` reading until now."""
    return (time.perf_counter() - started) * 1000


class Spans:
    """Named durations (ms) of one request, in the order they were taken; `total` is the time
    from construction until the header is rendered."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.durations: dict[str, float] = {}

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time the block as `name` (whether it returns or raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, since_ms(started))

    def add(self, name: str, ms: float) -> None:
        self.durations[name] = self.durations.get(name, 0.0) + ms

    def merge(self, prefix: str, replica: dict[str, float]) -> None:
        """A replica's own spans, named `<prefix>.<span>`."""
        for name, ms in replica.items():
            self.add(f"{prefix}.{name}", ms)

    def header(self) -> dict[str, str]:
        """The `Server-Timing` header of these spans and the total so far."""
        spans = [*self.durations.items(), ("total", since_ms(self.started))]
        return {HEADER: ", ".join(f"{name};dur={ms:.2f}" for name, ms in spans)}


def parse_header(value: str) -> dict[str, float]:
    """{name: ms} from a `Server-Timing` value (entries without a duration are left out)."""
    spans: dict[str, float] = {}
    for entry in value.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        for param in params:
            key, _, number = param.partition("=")
            if key.strip() == "dur" and name:
                spans[name] = float(number)
    return spans
