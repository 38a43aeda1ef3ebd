"""`ragtune eval answers`: systems answer held-out questions through the Serve HTTP API.

By default four systems: base (no retrieval), RAG (base + retrieval), fine-tuned (adapter, no
retrieval) and fine-tuned + RAG; `systems` names any others (another adapter, another k). Each
answer is scored against its reference (token F1, ROUGE-L) and against the passages it was given
(grounding, citation precision, optionally an LLM judge); means carry 95% bootstrap intervals and
`comparisons` get paired intervals on their differences. Writes answers.md/json/png and logs them
to MLflow.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import TierName, get_tier
from ragtune.core.config import StrictModel
from ragtune.core.errors import ClusterError, InputError
from ragtune.core.scoring import rouge_l, token_f1
from ragtune.core.text import supported_share
from ragtune.core.tracking import TrackingConfig
from ragtune.eval.answer_report import AnswerEvalResult, Comparison, SystemScore, log_to_mlflow, write_report
from ragtune.eval.grounding import citation_precision
from ragtune.eval.judge import Judge, JudgeConfig
from ragtune.eval.report import read_lines
from ragtune.eval.uncertainty import paired_difference
from ragtune.retrieval.hit import from_sources


class SystemSpec(StrictModel):
    """One system under test: a served model, with or without retrieval."""

    name: str = Field(min_length=1, description="Label in the report.")
    model: str = Field(min_length=1, description="API model name (the base model or an adapter).")
    retrieval: bool = Field(False, description="Answer from retrieved passages.")
    k: int | None = Field(None, ge=1, description="Passages retrieved; default: the eval's k.")


class AnswerEvalConfig(StrictModel):
    """`ragtune eval answers`: systems answer held-out questions through a running Serve app;
    scored against reference answers and against the passages they were given."""

    kind: Literal["answer-eval"] = "answer-eval"
    url: str = Field("http://127.0.0.1:8000", description="Base URL of the running Serve app.")
    questions: Path = Field(description="JSONL of {question, answer, sources?} pairs.")
    limit: int | None = Field(None, ge=1, description="Ask only the first N questions.")
    base_model: str = Field("base", description="API model name of the base model.")
    fine_tuned_model: str | None = Field(
        None, description="API model name of the fine-tuned adapter (for the default systems)."
    )
    systems: list[SystemSpec] = Field(
        default_factory=list,
        description="Systems to compare; default: base, RAG, fine-tuned, fine-tuned + RAG.",
    )
    comparisons: list[tuple[str, str]] = Field(
        default_factory=list,
        description="[system, baseline] pairs given paired intervals; default: each system vs the first.",
    )
    k: int = Field(3, ge=1, description="Chunks the RAG systems retrieve per question.")
    max_tokens: int = Field(64, ge=1, description="Longest answer, in tokens.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    pricing_tier: TierName = Field(
        "local", description="Tier whose hourly price turns measured time into cost per 1k queries."
    )
    api_key_env: str | None = Field(None, description="Env var holding the API key, if auth is on.")
    judge: JudgeConfig | None = Field(
        None, description="An OpenAI-compatible endpoint judging faithfulness; off by default."
    )
    bootstrap_seed: int = Field(0, description="Seed of the bootstrap resampling.")
    output_dir: Path = Field(description="Where answers.md, answers.json and answers.png go.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _systems_known(self) -> AnswerEvalConfig:
        if not self.systems and not self.fine_tuned_model:
            raise ValueError("set fine_tuned_model (for the four default systems) or list systems")
        names = [system.name for system in self.system_specs()]
        if len(set(names)) != len(names):
            raise ValueError(f"system names repeat: {names}")
        for pair in self.comparisons:
            unknown = [name for name in pair if name not in names]
            if unknown:
                raise ValueError(f"comparison names unknown system '{unknown[0]}'; systems are {names}")
        return self

    def system_specs(self) -> list[SystemSpec]:
        """The listed systems, or the four defaults."""
        if self.systems:
            return self.systems
        tuned = self.fine_tuned_model or ""
        return [
            SystemSpec(name="base", model=self.base_model),
            SystemSpec(name="RAG", model=self.base_model, retrieval=True),
            SystemSpec(name="fine-tuned", model=tuned),
            SystemSpec(name="fine-tuned + RAG", model=tuned, retrieval=True),
        ]

    def comparison_pairs(self) -> list[tuple[str, str]]:
        """The configured comparisons, or every system against the first."""
        if self.comparisons:
            return self.comparisons
        first, *rest = [system.name for system in self.system_specs()]
        return [(name, first) for name in rest]

    def tracking_uri(self) -> str:
        """Where the evaluation's MLflow run goes (`TrackingConfig.uri`)."""
        return self.tracking.uri(self.output_dir)


def read_pairs(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """{question, answer, sources?} rows; a row without question or answer, or with sources that
    are not a list of document ids, is an error."""
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and _text(row.get("question")) and _text(row.get("answer"))):
            raise InputError(
                f"{path}:{number}: expected a JSON object with 'question' and 'answer' strings",
                "fix that line",
            )
        sources = row.get("sources", [])
        if not (isinstance(sources, list) and all(isinstance(s, str) for s in sources)):
            raise InputError(f"{path}:{number}: 'sources' must be a list of document ids", "fix that line")
        pairs.append(row)
    if not pairs:
        raise InputError(f"{path}: no question/answer pairs", "point `questions` at a JSONL of pairs")
    return pairs[:limit]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def ask(client, config: AnswerEvalConfig, system: SystemSpec, question: str) -> dict[str, Any]:
    """One chat completion: the answer text, its sources and the seconds it took."""
    body = {
        "model": system.model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": config.max_tokens,
        "temperature": 0,
        "k": system.k or config.k,
        "retrieval": "always" if system.retrieval else "never",
    }
    import httpx

    url = f"{config.url.rstrip('/')}/v1/chat/completions"
    started = time.perf_counter()
    try:
        response = client.post(url, json=body)
    except httpx.TransportError as exc:
        raise ClusterError(f"cannot reach the app at {url}: {exc}", "start it with `ragtune serve`") from None
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise ClusterError(
            f"{system.model}: HTTP {response.status_code} from {url}: {response.text[:300]}",
            "check the model names and api_key_env against the served app",
        )
    reply = response.json()
    return {
        "text": reply["choices"][0]["message"]["content"],
        "sources": reply.get("sources", []),
        "seconds": seconds,
    }


def score_answer(pair: dict[str, Any], reply: dict[str, Any], retrieval: bool, judge) -> dict[str, Any]:
    """One answer's scores against its reference and against the passages it was given."""
    passages = [source.get("text") or "" for source in reply["sources"]]
    found = [source.get("doc_id") for source in reply["sources"]]
    gold = pair.get("sources", [])
    return {
        "id": pair.get("id"),
        "question": pair["question"],
        "reference": pair["answer"],
        "answer": reply["text"],
        "f1": token_f1(reply["text"], pair["answer"]),
        "rouge_l": rouge_l(reply["text"], pair["answer"]),
        "grounded": supported_share(reply["text"], passages),
        "citation_precision": citation_precision(reply["text"], passages),
        "faithful": judge(reply["text"], passages) if judge and retrieval else None,
        "seconds": reply["seconds"],
        "sources": found,
        "retrieved_gold": any(from_sources(doc, gold) for doc in found) if retrieval and gold else None,
    }


def score_system(
    config: AnswerEvalConfig, client, system: SystemSpec, pairs: list[dict], price_per_hour: float, judge
) -> SystemScore:
    """Ask every question (`concurrency` at a time) and summarise the scores."""
    started = time.perf_counter()
    with ThreadPoolExecutor(config.concurrency) as pool:
        replies = list(pool.map(lambda pair: ask(client, config, system, pair["question"]), pairs))
    wall = time.perf_counter() - started
    with ThreadPoolExecutor(config.concurrency) as pool:
        answers = list(
            pool.map(lambda both: score_answer(*both, system.retrieval, judge), zip(pairs, replies))
        )
    return SystemScore.from_answers(
        system.name,
        system.model,
        (system.k or config.k) if system.retrieval else None,
        answers,
        price_per_hour * wall / len(pairs) * 1000 / 3600,
        config.bootstrap_seed,
    )


def compare(scores: list[SystemScore], pairs: list[tuple[str, str]], seed: int) -> list[Comparison]:
    """Paired bootstrap intervals on the F1 and ROUGE-L differences of each [system, baseline]."""
    by_name = {score.system: score for score in scores}
    comparisons = []
    for name, baseline in pairs:
        ours, theirs = by_name[name].answers, by_name[baseline].answers
        comparisons.append(
            Comparison(
                system=name,
                baseline=baseline,
                f1=paired_difference([a["f1"] for a in ours], [a["f1"] for a in theirs], seed=seed),
                rouge_l=paired_difference(
                    [a["rouge_l"] for a in ours], [a["rouge_l"] for a in theirs], seed=seed
                ),
            )
        )
    return comparisons


def run_answer_eval(config: AnswerEvalConfig, progress: Callable[[str], None] = print) -> AnswerEvalResult:
    """Score every system (a `progress` line as each finishes), compare, write the report files
    and log them to MLflow."""
    import httpx

    pairs = read_pairs(config.questions, config.limit)
    price = get_tier(config.pricing_tier).cost_per_hour
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    judge = Judge(config.judge) if config.judge else None
    scores = []
    try:
        with httpx.Client(headers=headers, timeout=600) as client:
            for system in config.system_specs():
                scores.append(score_system(config, client, system, pairs, price, judge))
                progress(f"  {system.name:<20} {scores[-1].line()}")
    finally:
        if judge:
            judge.close()
    comparisons = compare(scores, config.comparison_pairs(), config.bootstrap_seed)
    result = AnswerEvalResult(scores, comparisons, config.pricing_tier, config.output_dir)
    write_report(result, config.model_dump(mode="json"))
    log_to_mlflow(result, config)
    return result
