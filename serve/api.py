"""OpenAI-compatible request models, error responses and API-key auth for the ingress."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions` body (OpenAI fields ragtune honours, plus `k` and mode)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    k: int | None = Field(None, ge=1, description="Chunks to retrieve (ragtune extension).")
    retrieval_mode: Literal["dense", "bm25", "hybrid"] | None = None
    retrieval: Literal["auto", "always", "never"] = Field(
        "auto", description="Retrieve for this request: never answers from the model alone."
    )

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[Message]) -> list[Message]:
        if messages[-1].role != "user":
            raise ValueError("the last message must be from the user")
        if not messages[-1].content.strip():
            raise ValueError("the last user message is empty")
        return messages

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop[:4])


class RetrieveRequest(BaseModel):
    """`POST /v1/retrieve` body."""

    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1)
    k: int | None = Field(None, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None


def error_response(
    status: int, message: str, kind: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def invalid_request(exc: ValidationError) -> JSONResponse:
    """400 naming the first invalid field."""
    error = exc.errors()[0]
    param = ".".join(str(part) for part in error["loc"]) or None
    message = f"{param}: {error['msg']}" if param else error["msg"]
    return error_response(400, message, "invalid_request_error", param)


def load_api_key_hashes(keys_file: Path | None, keys_env: str | None) -> frozenset[str]:
    """SHA-256 of the accepted keys, from a file (one per line) and/or an env var
    (comma-separated), read where the app is built: replicas only ever hold hashes."""
    keys: set[str] = set()
    if keys_file is not None:
        keys.update(line.strip() for line in keys_file.read_text().splitlines())
    if keys_env:
        keys.update(part.strip() for part in os.environ.get(keys_env, "").split(","))
    return frozenset(_digest(k) for k in keys if k)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def authorised(header: str | None, key_hashes: frozenset[str]) -> bool:
    """True when auth is off, or the Bearer token's hash matches (constant-time compare)."""
    if not key_hashes:
        return True
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    digest = _digest(token.strip())
    return any(hmac.compare_digest(digest, known) for known in key_hashes)
