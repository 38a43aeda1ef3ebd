"""`ragtune demo`: the whole product on one machine, top to bottom.

data → index the docs → RAG training examples from retrieved context → LoRA fine-tune →
deploy the Serve graph with the adapter → four systems answer held-out questions over HTTP →
report → shut Serve down. Each stage prints one result line.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ragtune.core.artifacts import IndexManifest
from ragtune.core.atomic import write_jsonl_atomic
from ragtune.core.errors import InputError
from ragtune.demo.config import DemoConfig
from ragtune.eval.answers import AnswerEvalResult, read_pairs


@dataclass
class DemoResult:
    """The comparison and how long the whole demo took."""

    answers: AnswerEvalResult
    seconds: float


@contextmanager
def stage(name: str) -> Iterator[list[str]]:
    """Print the stage's start, then its one result line (appended by the body) and time."""
    print(f"[demo] {name} ...", flush=True)
    started, result = time.perf_counter(), []
    yield result
    print(f"[demo] {name}: {' '.join(result)} ({time.perf_counter() - started:.0f} s)", flush=True)


def check_inputs(config: DemoConfig) -> None:
    """Fail before any work when an input is missing, saying which command makes it."""
    for path, command in (
        (config.corpus_file, "ragtune data python-docs"),
        (config.faq_file, "ragtune data python-docs"),
        (Path(config.base_model) / "config.json", "ragtune model import data/models/smollm2"),
    ):
        if not path.is_file():
            raise InputError(f"{path} missing", f"run `{command}` (make demo does both)")


def fresh_run_dir(run_dir: Path) -> None:
    """Remove the demo's previous training run, so each demo trains afresh; a folder there that
    holds no run (no run.json) is someone else's and is refused, not deleted."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / "run.json").is_file():
            raise InputError(
                f"{run_dir} exists and holds no training run; refusing to delete it",
                "point work_dir elsewhere, or remove that folder yourself",
            )
        shutil.rmtree(run_dir)


def split_pairs(config: DemoConfig) -> tuple[list[dict], list[dict]]:
    """(training, held-out) FAQ pairs: a seeded shuffle, so held-out questions are never trained on."""
    pairs = read_pairs(config.faq_file)
    if len(pairs) <= config.held_out:
        raise InputError(f"{config.faq_file} has {len(pairs)} pairs", "set held_out below that")
    random.Random(config.seed).shuffle(pairs)
    return pairs[config.held_out :], pairs[: config.held_out]


def write_knowledge_base(config: DemoConfig) -> int:
    """The corpus documents whose id starts with one of the configured prefixes; their count."""
    import json

    prefixes = tuple(config.knowledge_base)
    rows = [json.loads(line) for line in config.corpus_file.read_text().splitlines() if line.strip()]
    kept = [row for row in rows if not prefixes or row["id"].startswith(prefixes)]
    write_jsonl_atomic(config.path("knowledge_base.jsonl"), kept)
    return len(kept)


def rag_examples(retriever, pairs: list[dict], k: int) -> tuple[list[dict], float]:
    """RAG-form rows (question, retrieved context, answer) and the share whose source was retrieved."""
    found = retriever.search_batch([pair["question"] for pair in pairs], k)
    rows = [
        {"question": pair["question"], "context": [hit.text for hit in hits], "answer": pair["answer"]}
        for pair, hits in zip(pairs, found)
    ]
    recall = sum(pair["id"] in {hit.doc_id for hit in hits} for pair, hits in zip(pairs, found))
    return rows, recall / len(pairs)


def run_demo(config: DemoConfig) -> DemoResult:
    """Run every stage on the connected Ray cluster; Serve is shut down however it ends."""
    from ray import serve

    from ragtune.eval.answers import run_answer_eval
    from ragtune.retrieval.job import run_index_job
    from ragtune.retrieval.search import Retriever
    from ragtune.serve.app import deploy
    from ragtune.train.trainer import run_train_job

    started = time.perf_counter()
    check_inputs(config)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    with stage("data") as line:
        train_pairs, held_out = split_pairs(config)
        write_jsonl_atomic(config.path("held_out.jsonl"), held_out)
        documents = write_knowledge_base(config)
        line.append(
            f"{len(train_pairs)} training / {len(held_out)} held-out FAQ pairs, "
            f"knowledge base of {documents} documents"
        )
    with stage("index") as line:
        index_job = config.index_job()
        indexed = run_index_job(index_job, update=IndexManifest.find(index_job.output_dir) is not None)
        line.append(f"{indexed.num_chunks} chunks in {index_job.output_dir}")
    with stage("training data") as line:
        retriever = Retriever(index_job.output_dir)
        rows, train_recall = rag_examples(retriever, train_pairs, config.context_k)
        _, held_recall = rag_examples(retriever, held_out, config.context_k)
        write_jsonl_atomic(config.path("train.jsonl"), rows)
        line.append(
            f"{len(rows)} RAG examples; source in top-{config.context_k}: "
            f"{train_recall:.2f} training, {held_recall:.2f} held-out"
        )
    with stage("fine-tune") as line:
        train_job = config.train_job()
        fresh_run_dir(train_job.output_dir)
        line.append(run_train_job(train_job).summary())
    serve_job = config.serve_job()
    try:
        with stage("serve") as line:
            url = deploy(serve_job)
            line.append(f"{url} serves base + adapter '{next(iter(serve_job.generator.adapters))}'")
        with stage("answers") as line:
            answers = run_answer_eval(config.answer_eval(url))
            line.append(f"report in {answers.report_dir}")
    finally:
        serve.shutdown()
    return DemoResult(answers, time.perf_counter() - started)
