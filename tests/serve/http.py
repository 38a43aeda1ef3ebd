"""Talking to the test app over real HTTP."""

from __future__ import annotations

import httpx

PORT = 8123
BASE = f"http://127.0.0.1:{PORT}"


def chat(body, headers=None, base=BASE):
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60)
