"""The retriever deployment: embeds queries in batches and searches the index directory."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ray import serve

from retrieval.search import Retriever


@serve.deployment
class RetrieverDeployment:
    """Loads the index once per replica; concurrent requests are searched as one batch."""

    def __init__(self, index_dir: str, torch_threads: int | None = None):
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.retriever = Retriever(index_dir)

    async def search(self, query: str, k: int, mode: str) -> list[dict[str, Any]]:
        return await self._batched(query, k, mode)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0)
    async def _batched(self, queries: list[str], ks: list[int], modes: list[str]):
        """One query-encoder pass per (mode) group, at the deepest k asked in it. No waiting: a
        lone request runs at once, and requests arriving while a batch runs form the next one."""
        results: list[list[dict[str, Any]]] = [[] for _ in queries]
        for mode in set(modes):
            members = [i for i, m in enumerate(modes) if m == mode]
            depth = max(ks[i] for i in members)
            found = self.retriever.search_batch([queries[i] for i in members], depth, mode)
            for i, hits in zip(members, found):
                results[i] = [asdict(hit) for hit in hits[: ks[i]]]
        return results
