"""`ragtune eval answers`: four systems answer held-out questions through the Serve HTTP API.

base (no retrieval), RAG (base + retrieval), fine-tuned (adapter, no retrieval) and fine-tuned +
RAG, side by side: token F1 and ROUGE-L against the reference answers, retrieval recall@k,
latency and cost per 1k queries. Writes answers.md, answers.json and answers.png and logs them
to MLflow.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ragtune.cluster.tiers import TierName, get_tier
from ragtune.core.atomic import write_json_atomic
from ragtune.core.config import StrictModel
from ragtune.core.errors import ClusterError, InputError
from ragtune.core.tracking import TrackingConfig, start_run
from ragtune.eval.report import markdown_table, read_lines
from ragtune.eval.scoring import rouge_l, token_f1

# (label, uses the fine-tuned adapter, retrieves)
SYSTEMS = (
    ("base", False, False),
    ("RAG", False, True),
    ("fine-tuned", True, False),
    ("fine-tuned + RAG", True, True),
)


class AnswerEvalConfig(StrictModel):
    """`ragtune eval answers`: base, RAG, fine-tuned and fine-tuned + RAG answer held-out
    questions through a running Serve app; scored against reference answers."""

    kind: Literal["answer-eval"] = "answer-eval"
    url: str = Field("http://127.0.0.1:8000", description="Base URL of the running Serve app.")
    questions: Path = Field(description="JSONL of held-out {id, question, answer} pairs.")
    limit: int | None = Field(None, ge=1, description="Ask only the first N questions.")
    base_model: str = Field("base", description="API model name of the base model.")
    fine_tuned_model: str = Field(description="API model name of the fine-tuned adapter.")
    k: int = Field(3, ge=1, description="Chunks the RAG systems retrieve per question.")
    max_tokens: int = Field(64, ge=1, description="Longest answer, in tokens.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    pricing_tier: TierName = Field(
        "local", description="Tier whose hourly price turns measured time into cost per 1k queries."
    )
    api_key_env: str | None = Field(None, description="Env var holding the API key, if auth is on.")
    output_dir: Path = Field(description="Where answers.md, answers.json and answers.png go.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def tracking_uri(self) -> str:
        """Where the evaluation's MLflow run goes (`TrackingConfig.uri`)."""
        return self.tracking.uri(self.output_dir)


@dataclass
class SystemScore:
    """One system's averages over the questions, and its answers."""

    system: str
    model: str
    retrieval: bool
    f1: float
    rouge_l: float
    recall_at_k: float | None
    latency_p50_s: float
    cost_per_1k_usd: float
    answers: list[dict[str, Any]] = field(repr=False)


@dataclass
class AnswerEvalResult:
    """Every system's scores, and where the report went."""

    systems: list[SystemScore]
    k: int
    pricing_tier: str
    report_dir: Path

    def table(self) -> str:
        """The comparison: one row per system."""
        header = [
            "system",
            "F1",
            "ROUGE-L",
            f"recall@{self.k}",
            "p50 latency (s)",
            f"$ / 1k queries ({self.pricing_tier})",
        ]
        rows = [
            [
                s.system,
                f"{s.f1:.3f}",
                f"{s.rouge_l:.3f}",
                "—" if s.recall_at_k is None else f"{s.recall_at_k:.3f}",
                f"{s.latency_p50_s:.2f}",
                f"{s.cost_per_1k_usd:.4f}",
            ]
            for s in self.systems
        ]
        return markdown_table(header, rows)


def read_pairs(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """Held-out {id, question, answer} rows; a row without question or answer is an error."""
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and row.get("question") and row.get("answer")):
            raise InputError(
                f"{path}:{number}: expected a JSON object with 'question' and 'answer'", "fix that line"
            )
        pairs.append(row)
    if not pairs:
        raise InputError(f"{path}: no question/answer pairs", "point `questions` at a JSONL of pairs")
    return pairs[:limit]


def ask(client, config: AnswerEvalConfig, model: str, question: str, retrieve: bool) -> dict[str, Any]:
    """One chat completion: the answer text, its sources and the seconds it took."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": config.max_tokens,
        "temperature": 0,
        "k": config.k,
        "retrieval": "always" if retrieve else "never",
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
            f"{model}: HTTP {response.status_code} from {url}: {response.text[:300]}",
            "check the model names and api_key_env against the served app",
        )
    reply = response.json()
    return {
        "text": reply["choices"][0]["message"]["content"],
        "sources": reply.get("sources", []),
        "seconds": seconds,
    }


def score_system(
    config: AnswerEvalConfig,
    client,
    label: str,
    model: str,
    retrieve: bool,
    pairs: list[dict[str, str]],
    price_per_hour: float,
) -> SystemScore:
    """Ask every question (`concurrency` at a time) and average the scores."""
    started = time.perf_counter()
    with ThreadPoolExecutor(config.concurrency) as pool:
        replies = list(pool.map(lambda pair: ask(client, config, model, pair["question"], retrieve), pairs))
    wall = time.perf_counter() - started
    answers = []
    for pair, reply in zip(pairs, replies):
        found = [source.get("doc_id") for source in reply["sources"]]
        answers.append(
            {
                "id": pair.get("id"),
                "question": pair["question"],
                "reference": pair["answer"],
                "answer": reply["text"],
                "f1": token_f1(reply["text"], pair["answer"]),
                "rouge_l": rouge_l(reply["text"], pair["answer"]),
                "seconds": reply["seconds"],
                "retrieved_gold": pair.get("id") in found if retrieve else None,
            }
        )
    return SystemScore(
        system=label,
        model=model,
        retrieval=retrieve,
        f1=statistics.fmean(a["f1"] for a in answers),
        rouge_l=statistics.fmean(a["rouge_l"] for a in answers),
        recall_at_k=statistics.fmean(a["retrieved_gold"] for a in answers) if retrieve else None,
        latency_p50_s=statistics.median(a["seconds"] for a in answers),
        cost_per_1k_usd=price_per_hour * wall / len(pairs) * 1000 / 3600,
        answers=answers,
    )


def run_answer_eval(config: AnswerEvalConfig, progress: Callable[[str], None] = print) -> AnswerEvalResult:
    """Score the four systems (a `progress` line as each finishes), write the report files and
    log them to MLflow."""
    import httpx

    pairs = read_pairs(config.questions, config.limit)
    price = get_tier(config.pricing_tier).cost_per_hour
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    scores = []
    with httpx.Client(headers=headers, timeout=600) as client:
        for label, fine_tuned, retrieve in SYSTEMS:
            model = config.fine_tuned_model if fine_tuned else config.base_model
            scores.append(score_system(config, client, label, model, retrieve, pairs, price))
            progress(f"  {label:<17} F1 {scores[-1].f1:.3f}  ROUGE-L {scores[-1].rouge_l:.3f}")
    result = AnswerEvalResult(scores, config.k, config.pricing_tier, config.output_dir)
    write_report(result, config)
    log_to_mlflow(scores, config)
    return result


def write_report(result: AnswerEvalResult, config: AnswerEvalConfig) -> None:
    """answers.md (table), answers.json (scores and every answer), answers.png (bar chart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, out = result.systems, config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.md").write_text(result.table() + "\n")
    write_json_atomic(
        out / "answers.json",
        {"config": config.model_dump(mode="json"), "systems": [asdict(s) for s in scores]},
    )
    figure, axes = plt.subplots(figsize=(7, 3.6))
    width = 0.38
    positions = range(len(scores))
    axes.bar([p - width / 2 for p in positions], [s.f1 for s in scores], width, label="token F1")
    axes.bar([p + width / 2 for p in positions], [s.rouge_l for s in scores], width, label="ROUGE-L")
    axes.set_xticks(list(positions), [s.system for s in scores])
    axes.set_ylabel("score vs reference answer")
    axes.set_title(f"{len(scores[0].answers)} held-out questions")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "answers.png", dpi=120)
    plt.close(figure)


def log_to_mlflow(scores: list[SystemScore], config: AnswerEvalConfig) -> str:
    """One MLflow run in the configured experiment: a metric per system and score, the files."""
    run = start_run(
        config.tracking_uri(), config.tracking.experiment, "answer-eval", {"ragtune.job": "eval-answers"}
    )
    run.log_params(
        {
            "questions": len(scores[0].answers),
            "k": config.k,
            "max_tokens": config.max_tokens,
            "base_model": config.base_model,
            "fine_tuned_model": config.fine_tuned_model,
        }
    )
    for s in scores:
        name = s.system.replace(" + ", "_").replace(" ", "_").replace("-", "_").lower()
        metrics = {f"{name}.f1": s.f1, f"{name}.rouge_l": s.rouge_l, f"{name}.latency_p50_s": s.latency_p50_s}
        if s.recall_at_k is not None:
            metrics[f"{name}.recall_at_k"] = s.recall_at_k
        run.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, step=0)
    for name in ("answers.md", "answers.json", "answers.png"):
        run.log_artifact(config.output_dir / name)
    run.finish()
    return run.run_id
