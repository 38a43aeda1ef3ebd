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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cluster.tiers import get_tier
from serve.config import AnswerEvalConfig
from serve.scoring import rouge_l, token_f1

# (label, uses the fine-tuned adapter, retrieves)
SYSTEMS = (
    ("base", False, False),
    ("RAG", False, True),
    ("fine-tuned", True, False),
    ("fine-tuned + RAG", True, True),
)


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


def read_pairs(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """Held-out {id, question, answer} rows; a row without question or answer is an error."""
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not (isinstance(row, dict) and row.get("question") and row.get("answer")):
            raise ValueError(f"{path}:{number}: expected an object with 'question' and 'answer'")
        pairs.append(row)
    if not pairs:
        raise ValueError(f"{path}: no question/answer pairs")
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
    started = time.perf_counter()
    response = client.post(f"{config.url.rstrip('/')}/v1/chat/completions", json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{model}: HTTP {response.status_code}: {response.text[:300]}")
    reply = response.json()
    return {"text": reply["choices"][0]["message"]["content"], "sources": reply.get("sources", []),
            "seconds": seconds}  # fmt: skip


def score_system(config: AnswerEvalConfig, client, label: str, model: str, retrieve: bool,
                 pairs: list[dict[str, str]], price_per_hour: float) -> SystemScore:  # fmt: skip
    """Ask every question (`concurrency` at a time) and average the scores."""
    started = time.perf_counter()
    with ThreadPoolExecutor(config.concurrency) as pool:
        replies = list(pool.map(lambda pair: ask(client, config, model, pair["question"], retrieve), pairs))
    wall = time.perf_counter() - started
    answers = []
    for pair, reply in zip(pairs, replies):
        found = [source.get("doc_id") for source in reply["sources"]]
        answers.append({
            "id": pair.get("id"), "question": pair["question"], "reference": pair["answer"],
            "answer": reply["text"], "f1": token_f1(reply["text"], pair["answer"]),
            "rouge_l": rouge_l(reply["text"], pair["answer"]), "seconds": reply["seconds"],
            "retrieved_gold": pair.get("id") in found if retrieve else None,
        })  # fmt: skip
    return SystemScore(
        system=label, model=model, retrieval=retrieve,
        f1=statistics.fmean(a["f1"] for a in answers),
        rouge_l=statistics.fmean(a["rouge_l"] for a in answers),
        recall_at_k=statistics.fmean(a["retrieved_gold"] for a in answers) if retrieve else None,
        latency_p50_s=statistics.median(a["seconds"] for a in answers),
        cost_per_1k_usd=price_per_hour * wall / len(pairs) * 1000 / 3600,
        answers=answers,
    )  # fmt: skip


def run_answer_eval(config: AnswerEvalConfig) -> list[SystemScore]:
    """Score the four systems, write the report files and log them to MLflow."""
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
            print(f"  {label:<17} F1 {scores[-1].f1:.3f}  ROUGE-L {scores[-1].rouge_l:.3f}")
    write_report(scores, config)
    log_to_mlflow(scores, config)
    return scores


def format_table(scores: list[SystemScore], k: int, pricing_tier: str) -> str:
    """The Markdown comparison table."""
    lines = [
        f"| system | F1 | ROUGE-L | recall@{k} | p50 latency (s) | $ / 1k queries ({pricing_tier}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scores:
        recall = "—" if s.recall_at_k is None else f"{s.recall_at_k:.3f}"
        lines.append(f"| {s.system} | {s.f1:.3f} | {s.rouge_l:.3f} | {recall} | "
                     f"{s.latency_p50_s:.2f} | {s.cost_per_1k_usd:.4f} |")  # fmt: skip
    return "\n".join(lines)


def write_report(scores: list[SystemScore], config: AnswerEvalConfig) -> None:
    """answers.md (table), answers.json (scores and every answer), answers.png (bar chart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cluster.atomic import write_json_atomic

    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(scores, config.k, config.pricing_tier)
    (out / "answers.md").write_text(table + "\n")
    write_json_atomic(out / "answers.json", {"config": config.model_dump(mode="json"),
                                             "systems": [asdict(s) for s in scores]})  # fmt: skip
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
    from train.tracking import start_run

    run = start_run(config.tracking_uri(), config.tracking.experiment, "answer-eval",
                    {"ragtune.job": "eval-answers"})  # fmt: skip
    run.log_params({
        "questions": len(scores[0].answers), "k": config.k, "max_tokens": config.max_tokens,
        "base_model": config.base_model, "fine_tuned_model": config.fine_tuned_model,
    })  # fmt: skip
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
