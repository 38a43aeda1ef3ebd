"""`ragtune query`: ask the served app a question, print the answer as it streams, then sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def ask(url: str, question: str, model: str | None = None, api_key: str | None = None,
        k: int | None = None, write: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Stream a chat completion from `url`; writes text as it arrives; returns answer+sources."""
    import httpx

    body: dict[str, Any] = {"messages": [{"role": "user", "content": question}], "stream": True}
    if model:
        body["model"] = model
    if k:
        body["k"] = k
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    answer, sources = [], []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers,
                      timeout=300) as response:  # fmt: skip
        if response.status_code >= 400:
            response.read()
            raise RuntimeError(f"{response.status_code}: {response.json()['error']['message']}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line.removeprefix("data: "))
            if "error" in event:
                raise RuntimeError(event["error"]["message"])
            sources = event.get("sources", sources)
            piece = event["choices"][0]["delta"].get("content") or ""
            if piece:
                answer.append(piece)
                write(piece)
    return {"answer": "".join(answer), "sources": sources}
