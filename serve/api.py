"""OpenAI-compatible request models, reading a request body safely, error responses and API-key
auth for the ingress."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import ClientDisconnect

from ragtune.core.errors import ConfigError


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


Stop = Annotated[str, Field(min_length=1, max_length=64)]  # decoding checks each against the vocab


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions` body (OpenAI fields ragtune honours, plus `k` and mode)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    n: int | None = Field(None, ge=1, le=1, description="Choices per request; ragtune returns one.")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: Stop | Annotated[list[Stop], Field(max_length=4)] | None = None
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
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class RetrieveRequest(BaseModel):
    """`POST /v1/retrieve` body."""

    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1)
    k: int | None = Field(None, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None


def error_response(
    status: int,
    message: str,
    kind: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


async def read_json(request: Request, max_bytes: int, timeout_s: float) -> Any | JSONResponse:
    """The request's JSON body, or a 4xx in OpenAI's shape: a content type other than JSON (415),
    a body over `max_bytes` by Content-Length or while reading (413), one not sent within
    `timeout_s` (408), and bodies that are not UTF-8, not JSON, nested too deep, hold
    numbers Python refuses or text that is not valid Unicode (400)."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        return error_response(
            415, f"Content-Type must be application/json, got '{kind}'", "invalid_request_error"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return error_response(413, f"request body over {max_bytes} bytes", "invalid_request_error")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    return error_response(
                        413, f"request body over {max_bytes} bytes", "invalid_request_error"
                    )
                chunks.append(chunk)
    except ClientDisconnect:
        return error_response(400, "the client went away while sending the body", "invalid_request_error")
    except TimeoutError:
        return error_response(
            408, f"request body not received within {timeout_s:g} s", "invalid_request_error"
        )
    try:
        data = json.loads(b"".join(chunks).decode("utf-8") or "null")
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates (\ud800) fail here
    except UnicodeError:
        return error_response(400, "the body is not valid UTF-8 / Unicode text", "invalid_request_error")
    except RecursionError:
        return error_response(400, "malformed JSON: nested too deeply", "invalid_request_error")
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
        return error_response(400, f"malformed JSON: {exc}", "invalid_request_error")
    return data


def invalid_request(exc: ValidationError) -> JSONResponse:
    """400 naming the first invalid field."""
    error = exc.errors()[0]
    param = ".".join(str(part) for part in error["loc"]) or None
    message = f"{param}: {error['msg']}" if param else error["msg"]
    return error_response(400, message, "invalid_request_error", param)


def load_api_key_hashes(keys_file: Path | None, keys_env: str | None) -> frozenset[str]:
    """SHA-256 of the accepted keys, from a file (one per line) and/or an env var
    (comma-separated), read where the app is built: replicas only ever hold hashes. A source that
    is named but holds no key is an error: auth never switches off by accident."""
    keys: set[str] = set()
    if keys_file is not None:
        found = {line.strip() for line in keys_file.read_text().splitlines()} - {""}
        if not found:
            raise ConfigError("serve", "api_keys_file", f"{keys_file} holds no API key")
        keys |= found
    if keys_env:
        found = {part.strip() for part in os.environ.get(keys_env, "").split(",")} - {""}
        if not found:
            raise ConfigError("serve", "api_keys_env", f"environment variable {keys_env} is unset or empty")
        keys |= found
    return frozenset(_digest(k) for k in keys)


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
