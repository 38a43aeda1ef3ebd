"""An optional LLM judge of faithfulness: any OpenAI-compatible chat endpoint the user names is
asked whether an answer is supported by the passages it was given. Off unless configured."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydantic import Field

from ragtune.core.config import StrictModel
from ragtune.core.errors import ClusterError

JUDGE_INSTRUCTION = (
    "You check answers against sources. Reply with one word: yes if every claim in the answer is "
    "stated in the passages, no otherwise."
)


class JudgeConfig(StrictModel):
    """An OpenAI-compatible endpoint that judges whether answers are supported by their passages."""

    url: str = Field(description="Base URL of the endpoint (…/v1/chat/completions is appended).")
    model: str = Field(description="Model name the endpoint serves.")
    api_key_env: str | None = Field(None, description="Env var holding its API key.")
    max_tokens: int = Field(4, ge=1, description="Longest verdict, in tokens.")


def judge_messages(answer: str, passages: Sequence[str]) -> list[dict]:
    """The judge's prompt: the numbered passages and the answer."""
    numbered = "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(passages, 1))
    user = f"Passages:\n{numbered}\n\nAnswer: {answer.strip()}\n\nIs the answer supported by the passages?"
    return [{"role": "system", "content": JUDGE_INSTRUCTION}, {"role": "user", "content": user}]


def verdict(reply: str) -> float | None:
    """1.0 for yes, 0.0 for no, None when the reply says neither first."""
    words = reply.strip().lower().lstrip("*\"' ").split()
    first = words[0].strip(".,!:;\"'*") if words else ""
    return {"yes": 1.0, "no": 0.0}.get(first)


class Judge:
    """Asks the configured endpoint for a verdict on one answer at a time (thread-safe)."""

    def __init__(self, config: JudgeConfig):
        import httpx

        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.config = config
        self.url = f"{config.url.rstrip('/')}/v1/chat/completions"
        self.client = httpx.Client(headers=headers, timeout=300)

    def __call__(self, answer: str, passages: Sequence[str]) -> float | None:
        """The verdict on `answer` given `passages`; None without passages or a clear verdict."""
        import httpx

        if not passages or not answer.strip():
            return None
        body = {
            "model": self.config.model,
            "messages": judge_messages(answer, passages),
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
        }
        try:
            response = self.client.post(self.url, json=body)
        except httpx.TransportError as exc:
            raise ClusterError(f"cannot reach the judge at {self.url}: {exc}", "check judge.url") from None
        if response.status_code != 200:
            raise ClusterError(
                f"judge: HTTP {response.status_code} from {self.url}: {response.text[:300]}",
                "check judge.model and judge.api_key_env",
            )
        try:
            return verdict(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            raise ClusterError(
                f"judge: {self.url} did not answer in the OpenAI chat format", "check judge.url"
            ) from None

    def close(self) -> None:
        self.client.close()
