"""The Serve deployments behind the ingress: the retriever (batched query embedding and search)
and the generator (batched decoding, streaming). Each sets its torch threads from the resource
policy before loading its model."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

from ray import serve

from ragtune.cluster.resources import set_torch_threads
from ragtune.retrieval.config import RerankConfig
from ragtune.retrieval.search import Retriever
from ragtune.serve.config import GeneratorDeploymentConfig
from ragtune.serve.generator import GenerationParams, GeneratorModel, condense_params
from ragtune.serve.timing import since_ms


@serve.deployment
class RetrieverDeployment:
    """Loads the index once per replica; concurrent requests are searched as one batch."""

    def __init__(
        self,
        index_dir: str,
        torch_threads: int | None = None,
        server_paths: bool = False,
        rerank: RerankConfig | None = None,
    ):
        set_torch_threads(torch_threads)
        self.retriever = Retriever(index_dir, rerank=rerank)
        sources = self.retriever.loaded.chunks.column("source").unique().to_pylist()
        self.shown = SourcePaths(sources, relative=not server_paths)

    async def search(self, query: str, k: int, mode: str) -> dict[str, Any]:
        """{"hits": the top k, "timing": {"queue", "search"} ms in this replica}."""
        hits, timing = await clocked_call(self._batched, "search", query, k, mode)
        return {"hits": hits, "timing": timing}

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0)
    async def _batched(self, queries: list[str], ks: list[int], modes: list[str]) -> list[Any]:
        """One query-encoder pass per (mode) group, at the deepest k asked in it. No waiting: a
        lone request runs at once, and requests arriving while a batch runs form the next one. A
        group that fails is searched query by query, so only a bad query gets its exception."""
        began = time.perf_counter()
        results: list[Any] = [[] for _ in queries]
        for mode, members in groups(modes).items():
            depth = max(ks[i] for i in members)
            found = each_alone(
                lambda chunk, depth=depth, mode=mode: self.retriever.search_batch(chunk, depth, mode),
                [queries[i] for i in members],
            )
            for i, hits in zip(members, found):
                if isinstance(hits, Exception):
                    results[i] = hits
                else:
                    results[i] = [self.shown.hit(asdict(hit)) for hit in hits[: ks[i]]]
        return clock_batch(results, began)


@serve.deployment
class Generator:
    """Serve deployment around GeneratorModel; streaming via a generator method."""

    def __init__(self, config: GeneratorDeploymentConfig, torch_threads: int | None = None):
        set_torch_threads(torch_threads)
        self.model = GeneratorModel(config)
        for batched in (self._complete_batched, self._stream_batched):
            batched.set_max_batch_size(self.model.config.batch_size)
            batched.set_batch_wait_timeout_s(self.model.config.batch_wait_s)

    async def condense(self, conversation: list[dict], max_tokens: int = 48) -> str:
        """Standalone search question for the conversation's last message (base model, greedy)."""
        base, prompt = self.model.config.model_name, self.model.condense_prompt(conversation)
        params = condense_params(max_tokens)
        result, _ = await clocked_call(self._complete_batched, "decode", base, prompt, params)
        return result["text"].strip()

    async def complete(
        self, model: str, conversation: list[dict], contexts: list[str], params: GenerationParams
    ) -> dict[str, Any]:
        """The answer to `conversation` given the retrieved `contexts` (prompt built here, in
        the replica, so a request costs one call): text, finish reason, usage and "timing"
        {"prompt", "queue", "decode"} ms."""
        started = time.perf_counter()
        prompt = self.model.prompt(conversation, contexts)
        built = since_ms(started)
        result, timing = await clocked_call(self._complete_batched, "decode", model, prompt, params)
        return {**result, "timing": {"prompt": built, **timing}}

    @serve.batch  # batch size and wait come from the config, set in __init__
    async def _complete_batched(
        self, models: list[str], prompts: list[str], params: list[GenerationParams]
    ) -> list[Any]:
        """Concurrent requests for the same model and sampling settings decode as one batch; if
        it fails, each request decodes alone, so only a failing one gets its exception."""
        began = time.perf_counter()
        results: list[Any] = [None] * len(prompts)
        for key, members in groups(list(zip(models, params))).items():
            batch = [prompts[i] for i in members]
            outputs = await asyncio.to_thread(
                each_alone, lambda chunk, key=key: self.model.generate_batch(key[0], chunk, key[1]), batch
            )
            for i, output in zip(members, outputs):
                results[i] = output
        return clock_batch(results, began)

    async def stream(
        self, model: str, conversation: list[dict], contexts: list[str], params: GenerationParams
    ) -> AsyncIterator[dict]:
        """The answer's pieces as they decode. Concurrent streams decode together (up to the batch
        size); one whose client goes away stops, and the others carry on."""
        prompt = self.model.prompt(conversation, contexts)
        cancelled = threading.Event()
        try:
            async for piece in self._stream_batched(model, prompt, params, cancelled):
                if isinstance(piece, Exception):
                    raise piece
                if piece is not None:
                    yield piece
        finally:
            cancelled.set()

    # Batch size and wait from the config, set in __init__. Called: bare @serve.batch refuses an
    # async generator (it checks for a coroutine function), the parametrized form does not.
    @serve.batch()
    async def _stream_batched(
        self,
        models: list[str],
        prompts: list[str],
        params: list[GenerationParams],
        cancelled: list[threading.Event],
    ) -> AsyncIterator[list[Any]]:
        """Per decoding step, one item per stream. Streams for the same model, temperature and
        top_p decode as one batch; other groups wait their turn (items None). A group that fails
        gives each of its streams the exception."""
        done = [False] * len(prompts)
        for key, members in groups([(m, p.temperature, p.top_p) for m, p in zip(models, params)]).items():
            steps = self.model.stream_batch(
                key[0],
                [prompts[i] for i in members],
                [params[i] for i in members],
                [cancelled[i] for i in members],
            )
            try:
                while (items := await asyncio.to_thread(next, steps, None)) is not None:
                    yield _step(done, dict(zip(members, items)))
            except Exception as exc:  # this group's streams get it; the next groups still run
                yield _step(done, {i: exc for i in members if not done[i]})
            finally:
                await asyncio.to_thread(steps.close)
            yield _step(done, {i: StopIteration for i in members})


def _step(done: list[bool], items: dict[int, Any]) -> list[Any]:
    """One yield of a streamed batch: `items` for their streams, StopIteration once for a stream
    whose last piece (or exception) went out, None for the rest."""
    out = [StopIteration if finished else None for finished in done]
    for i, item in items.items():
        if done[i]:
            continue
        out[i] = item
        if item is StopIteration or isinstance(item, Exception) or (item or {}).get("finish_reason"):
            done[i] = True
    return out


class SourcePaths:
    """How hits name their documents to clients: relative to the folder the index's documents
    share (no server paths in answers), or as stored when `relative` is off."""

    def __init__(self, sources: list[str], relative: bool = True):
        try:
            root = os.path.commonpath(sources) if relative and sources else ""
        except ValueError:  # absolute and relative paths mixed: nothing to strip
            root = ""
        self.root = os.path.dirname(root) if root in sources else root  # one file: its folder

    def hit(self, hit: dict[str, Any]) -> dict[str, Any]:
        """`hit` with `source`, and a `doc_id` made from it, below the shared folder."""
        if not self.root:
            return hit
        source = hit["source"]
        shown = os.path.relpath(source, self.root)
        doc_id = hit["doc_id"]
        if doc_id == source or doc_id.startswith(source + ":"):  # ids that are the file's path
            doc_id = shown + doc_id[len(source) :]
        return {**hit, "source": shown, "doc_id": doc_id}


def clock_batch(results: list[Any], began: float) -> list[tuple[Any, float, float]]:
    """A `@serve.batch` method's results, each with when the batch began and ended."""
    ended = time.perf_counter()
    return [(result, began, ended) for result in results]


async def clocked_call(
    batched: Callable[..., Awaitable[tuple[Any, float, float]]], run: str, *args: Any
) -> tuple[Any, dict[str, float]]:
    """Call a `@serve.batch` method that returns `clock_batch` items: its result (raised when it
    is an exception: Serve's batcher hands back values) and {"queue": ms waiting for the batch
    to begin, run: ms the batch ran}."""
    arrived = time.perf_counter()
    result, began, ended = await batched(*args)
    if isinstance(result, Exception):
        raise result
    return result, {"queue": (began - arrived) * 1000, run: (ended - began) * 1000}


def groups(keys: list) -> dict[Any, list[int]]:
    """The positions of each distinct key, in order of first appearance: the requests of a batch
    that can run together."""
    positions: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        positions.setdefault(key, []).append(i)
    return positions


def each_alone(run: Callable[[list], list], items: list) -> list:
    """`run` over a batch of items; if the batch fails, each item runs alone, so only the failing
    ones get their exception as their result."""
    try:
        return run(items)
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    outputs: list = []
    for item in items:
        try:
            outputs += run([item])
        except Exception as exc:  # this item fails alone; the others still answer
            outputs.append(exc)
    return outputs
