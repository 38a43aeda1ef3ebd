"""The ingress: FastAPI, OpenAI-compatible; validates, authorises, plans the query, then calls the
retriever and generator replicas.

No `from __future__ import annotations` here: FastAPI must see real annotations on the
ingress methods, or it takes `request: Request` for a query parameter.
"""

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragtune.cluster.serve_env import replica_handle
from ragtune.serve.admission import UserSlots, timeout_response
from ragtune.serve.api import (
    ChatRequest,
    RetrieveRequest,
    authorised,
    error_response,
    invalid_request,
    read_json,
)
from ragtune.serve.config import ServeJobConfig
from ragtune.serve.generator import GenerationParams, UnknownModel
from ragtune.serve.query import QueryPlan, normalise, plan_query
from ragtune.serve.timing import Spans, since_ms

# No /docs, /redoc or /openapi.json: they would answer without the API key.
api = FastAPI(title="ragtune", docs_url=None, redoc_url=None, openapi_url=None)
logger = logging.getLogger("ray.serve")
RETRIEVAL_ATTEMPTS = 3  # a search lost with its replica is sent again, up to this many times in all


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own errors (unknown route 404, wrong method 405) in OpenAI's shape."""
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return error_response(exc.status_code, message, "invalid_request_error", headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(400, f"invalid request: {exc.errors()[:1]}", "invalid_request_error")


@serve.deployment
@serve.ingress(api)
class Ingress:
    """HTTP front: validates, authorises, retrieves on the last user turn, then generates."""

    def __init__(
        self,
        config: ServeJobConfig,
        retriever: DeploymentHandle,
        generator: DeploymentHandle,
        key_hashes: frozenset[str],
    ):
        self.config = config  # validated where the app was built: replicas need no tiers file
        self.retriever, self.generator = replica_handle(retriever), replica_handle(generator)
        self.keys = key_hashes
        self.slots = UserSlots(config.ingress.max_ongoing_requests)

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models(self, request: Request):
        return await self._admit(self._models, request)

    @api.post("/v1/retrieve")
    async def retrieve(self, request: Request):
        return await self._admit(self._retrieve, request)

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request):
        return await self._admit(self._chat, request)

    async def _admit(self, handle, request: Request):
        """Run a user route in one of the replica's user slots, within request_timeout_s."""
        return await self.slots.admit(lambda: handle(request), self.config.request_timeout_s)

    async def _models(self, request: Request):
        if (denied := self._deny(request)) is not None:
            return denied
        generator = self.config.generator  # one app version: the ingress and generator agree
        base = generator.base_model
        root = base.rsplit("/", 1)[-1] if base.startswith("/") else base  # no server paths
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "owned_by": "ragtune",
                    "root": root,
                    "adapter": name != generator.model_name,
                }
                for name in generator.model_names
            ],
        }

    async def _retrieve(self, request: Request):
        spans = Spans()
        with spans.span("read"):
            parsed = await self._parse(request, RetrieveRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        k = parsed.k or self.config.retriever.k
        if (bad := self._check_k(k)) is not None:
            return bad
        mode = parsed.mode or self.config.retriever.mode
        try:
            hits = await self._search(parsed.query, k, mode, spans)
        except Exception as exc:
            return self._upstream_failed("retrieval", exc)
        return JSONResponse({"object": "list", "data": hits}, headers=spans.header())

    async def _chat(self, request: Request):
        spans = Spans()
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s  # for a stream
        with spans.span("read"):
            parsed = await self._parse(request, ChatRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        k = parsed.k or self.config.retriever.k
        if (bad := self._check_k(k)) is not None:
            return bad
        model = parsed.model or self.config.generator.served_default
        names = self.config.generator.model_names  # one app version: the ingress and generator agree
        if model not in names:
            return error_response(
                404,
                f"model '{model}' is not served; available: {names}",
                "invalid_request_error",
                "model",
                "model_not_found",
            )
        conversation = [m.model_dump() for m in parsed.messages]
        if len(conversation) > self.config.query.max_messages:
            return error_response(
                400,
                f"the conversation has {len(conversation)} messages; the limit "
                f"is {self.config.query.max_messages}",
                "invalid_request_error",
                "messages",
                "context_length_exceeded",
            )
        mode = parsed.retrieval_mode or self.config.retriever.mode
        try:
            with spans.span("plan"):
                plan = await self._plan(conversation, parsed.retrieval)
        except Exception as exc:
            return self._upstream_failed("query planning", exc)
        try:
            hits = await self._search(plan.query, k, mode, spans) if plan.retrieval else []
        except Exception as exc:
            return self._upstream_failed("retrieval", exc)
        contexts = [h["text"] for h in hits]
        params = GenerationParams(
            max_tokens=parsed.max_completion_tokens
            or parsed.max_tokens
            or self.config.generator.max_new_tokens,
            temperature=parsed.temperature,
            top_p=parsed.top_p,
            stop=parsed.stops,
        )
        sources = [self._source(hit) for hit in hits]
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if parsed.stream:
            return await self._start_stream(
                completion_id, model, (conversation, contexts, params), sources, plan, deadline, spans
            )
        started = time.perf_counter()
        try:
            result = await self.generator.complete.remote(model, conversation, contexts, params)
        except Exception as exc:  # the replica stays up; the client learns what failed
            return self._upstream_failed("generation", exc)
        spans.add("generate", since_ms(started))
        spans.merge("generate", result["timing"])
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": result["finish_reason"],
                    "message": {"role": "assistant", "content": result["text"]},
                }
            ],
            "usage": result["usage"],
            "sources": sources,
            "query": plan.to_dict(),
        }
        return JSONResponse(body, headers=spans.header())

    async def _search(self, query: str, k: int, mode: str, spans: Spans) -> list[dict]:
        """The retriever's hits, timed into `spans`. A search has no side effects, so a call that
        a dying replica dropped is sent again (Serve routes it to a live or replacement replica)."""
        with spans.span("retrieve"):
            for attempt in range(1, RETRIEVAL_ATTEMPTS):
                try:
                    found = await self.retriever.search.remote(query, k, mode)
                    break
                except RayActorError as exc:  # died or unreachable mid-call
                    logger.warning("retrieval attempt %d lost its replica (%r); retrying", attempt, exc)
                    await asyncio.sleep(0.1 * attempt)
            else:
                found = await self.retriever.search.remote(query, k, mode)
        spans.merge("retrieve", found["timing"])
        return found["hits"]

    async def _plan(self, conversation: list[dict], choice: str) -> QueryPlan:
        """Intent and search text for this request; logged so an answer's sources can be explained."""
        query = self.config.query
        plan = plan_query(conversation, choice, query.rewrite, query.recent_turns, query.max_query_chars)
        if plan.retrieval and plan.strategy == "condense":
            condensed = normalise(await self.generator.condense.remote(conversation), query.max_query_chars)
            plan = dataclasses.replace(plan, query=condensed or plan.query)
        logger.info("query plan: %s", json.dumps(plan.to_dict()))
        return plan

    async def _start_stream(
        self,
        completion_id: str,
        model: str,
        request: tuple[list[dict], list[str], GenerationParams],
        sources: list[dict],
        plan: QueryPlan,
        deadline: float,
        spans: Spans,
    ):
        """Start decoding and wait for the first piece before answering, so a request the
        generator refuses gets its status code (4xx/503) rather than an error event; then the
        event stream, with `generate` (time to the first piece) in Server-Timing."""
        started = time.perf_counter()
        pieces = self.generator.options(stream=True).stream.remote(model, *request)
        try:
            first = await anext(pieces, None)
        except Exception as exc:
            pieces.cancel()
            return self._upstream_failed("generation", exc)
        except BaseException:  # the deadline or the client cancelled the handler: stop decoding
            pieces.cancel()
            raise
        spans.add("generate", since_ms(started))
        return StreamingResponse(
            self._stream(completion_id, model, first, pieces, sources, plan, deadline),
            media_type="text/event-stream",
            headers=spans.header(),
        )

    async def _stream(
        self,
        completion_id: str,
        model: str,
        first: dict | None,
        pieces,
        sources: list[dict],
        plan: QueryPlan,
        deadline: float,
    ):
        """Server-sent events in OpenAI's chunk format, from the first piece on; sources and the
        query plan ride on the first chunk. An error (a failed replica, the deadline) is one
        `{"error": ...}` event."""

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(body)}\n\n"

        yield chunk({"role": "assistant", "content": ""}, sources=sources, query=plan.to_dict())
        piece = first
        try:
            while piece is not None:
                if piece["text"]:
                    yield chunk({"content": piece["text"]})
                if "finish_reason" in piece:
                    yield chunk({}, piece["finish_reason"], usage=piece["usage"])
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces, None)
        except TimeoutError:
            yield f"data: {timeout_response(self.config.request_timeout_s).body.decode()}\n\n"
        except Exception as exc:
            yield f"data: {self._upstream_failed('generation', exc).body.decode()}\n\n"
        finally:  # the client left, the deadline passed or decoding ended: the replica stops
            pieces.cancel()
        yield "data: [DONE]\n\n"

    async def _parse(self, request: Request, model):
        """Auth, size limit, JSON and schema checks; a 4xx JSONResponse on any failure."""
        if (denied := self._deny(request)) is not None:
            return denied
        # Every character may arrive escaped as a surrogate pair (12 bytes), plus framing per message.
        max_bytes = 12 * self.config.max_request_chars + 4096 + 256 * self.config.query.max_messages
        data = await read_json(request, max_bytes, self.config.body_timeout_s)
        if isinstance(data, JSONResponse):
            return data
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            return invalid_request(exc)
        text = (
            sum(len(m.content) for m in parsed.messages) if hasattr(parsed, "messages") else len(parsed.query)
        )
        if text > self.config.max_request_chars:
            return error_response(
                400,
                f"input of {text} characters exceeds the limit of {self.config.max_request_chars}",
                "invalid_request_error",
                "messages",
                "context_length_exceeded",
            )
        return parsed

    def _check_k(self, k: int) -> JSONResponse | None:
        limit = self.config.retriever.max_k
        if k > limit:
            return error_response(
                400, f"k must be between 1 and {limit}, got {k}", "invalid_request_error", "k"
            )
        return None

    # Helpers live on the class: Serve ships the ingress class by value, and module-level
    # helpers referenced only from comprehensions were missing on the replica.
    @staticmethod
    def _source(hit: dict) -> dict:
        keys = ("id", "score", "rerank_score", "source", "heading", "doc_id", "text")
        return {key: hit[key] for key in keys}

    @staticmethod
    def _upstream_failed(stage: str, exc: Exception) -> JSONResponse:
        """A failed retriever or generator call: the request's own fault is a 4xx; a replica that
        failed or died is a 503 the client may retry. Never a bare 500."""
        cause = exc.cause if hasattr(exc, "cause") and exc.cause else exc
        if isinstance(cause, UnknownModel):
            return error_response(404, str(cause), "invalid_request_error", "model")
        if isinstance(cause, ValueError):  # UnicodeError included: the input cannot be processed
            return error_response(400, f"{stage} cannot use this input: {cause}", "invalid_request_error")
        logger.warning("%s failed: %r", stage, exc)  # the details (nodes, pids) stay in the logs
        message = f"{stage} failed ({type(cause).__name__}); retry"
        return error_response(503, message, "server_error", code="service_unavailable")

    def _deny(self, request: Request) -> JSONResponse | None:
        if authorised(request.headers.get("authorization"), self.keys):
            return None
        return error_response(
            401,
            "missing or invalid API key (Authorization: Bearer ...)",
            "invalid_request_error",
            None,
            "invalid_api_key",
        )
