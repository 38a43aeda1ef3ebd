"""`ragtune query`: ask the served app a question, print the answer as it streams, then sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ragtune.core.errors import ClusterError


def ask(
    url: str,
    question: str,
    model: str | None = None,
    api_key: str | None = None,
    k: int | None = None,
    write: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Stream a chat completion from `url`; writes text as it arrives; returns answer+sources."""
    import httpx

    body: dict[str, Any] = {"messages": [{"role": "user", "content": question}], "stream": True}
    if model:
        body["model"] = model
    if k:
        body["k"] = k
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    endpoint = f"{url.rstrip('/')}/v1/chat/completions"
    answer, sources = [], []
    try:
        with httpx.stream("POST", endpoint, json=body, headers=headers, timeout=300) as response:
            if response.status_code >= 400:
                response.read()
                raise ClusterError(
                    f"{endpoint}: HTTP {response.status_code}: {_error_message(response)}",
                    "check --model, -k and --api-key against the served app",
                )
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:
                    raise ClusterError(f"{endpoint}: {event['error']['message']}", "see the app's logs")
                sources = event.get("sources", sources)
                piece = event["choices"][0]["delta"].get("content") or ""
                if piece:
                    answer.append(piece)
                    write(piece)
    except httpx.TransportError as exc:
        raise ClusterError(
            f"cannot reach the app at {endpoint}: {exc}", "start it with `ragtune serve`"
        ) from None
    return {"answer": "".join(answer), "sources": sources}


def _error_message(response) -> str:
    """The message of an OpenAI-shaped error body, else the start of the body."""
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
