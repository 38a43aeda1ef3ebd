"""Admission to the ingress: user requests share a bounded number of slots, each request has a
deadline, and `/healthz` never waits for a slot, so a health check answers while slow clients
hold every user slot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from ragtune.serve.api import error_response

HEALTH_SLOTS = 4  # Serve slots of an ingress replica kept above its user limit, for health checks


class UserSlots:
    """At most `limit` user requests inside one ingress replica at once (reading a body, waiting
    on a replica, or streaming); one more gets a 503 with Retry-After at once instead of queueing
    behind them. Serve gives the replica `limit + HEALTH_SLOTS` slots, so a health check always
    finds one. One event loop per replica: a plain counter is enough."""

    def __init__(self, limit: int):
        self.limit, self.inside = limit, 0

    async def admit(self, handle: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
        """Run `handle` in a slot, within `timeout_s` (a 504 past it); a streamed response keeps
        its slot until the stream ends, however it ends."""
        if self.inside >= self.limit:
            return error_response(
                503,
                f"the server is handling {self.limit} requests, its limit; retry shortly",
                "server_error",
                code="overloaded",
                headers={"Retry-After": "1"},
            )
        self.inside += 1
        try:
            async with asyncio.timeout(timeout_s):
                response = await handle()
        except TimeoutError:
            response = timeout_response(timeout_s)
        except BaseException:
            self.inside -= 1
            raise
        if isinstance(response, StreamingResponse):
            return SlotStream(response, self._leave)
        self._leave()
        return response

    def _leave(self) -> None:
        self.inside -= 1


def timeout_response(timeout_s: float) -> JSONResponse:
    """The 504 of a request past its deadline (a stream sends its body as an error event)."""
    return error_response(
        504, f"the request took longer than {timeout_s:g} s", "server_error", code="timeout"
    )


class SlotStream(StreamingResponse):
    """A streamed response that gives its slot back when sending ends: finished, failed, or
    cut off by the client."""

    def __init__(self, stream: StreamingResponse, release: Callable[[], None]):
        headers = dict(stream.headers)  # Server-Timing and the content type
        super().__init__(stream.body_iterator, stream.status_code, headers, stream.media_type)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
