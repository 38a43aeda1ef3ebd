"""`ragtune demo`: the whole product on one machine, top to bottom.

data (train / validation / held-out) → index the documents → keep the configured reranker only
if it helps on the validation questions → RAG and RAFT training rows from retrieved context →
two LoRA fine-tunes (RAG rows, RAFT rows) → deploy the Serve graph with both adapters (and write
its serve config) → the systems answer held-out questions over HTTP → report → shut Serve down.
Each stage prints one result line.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ragtune.core.artifacts import IndexManifest
from ragtune.core.atomic import write_jsonl_atomic, write_text_atomic
from ragtune.core.errors import InputError
from ragtune.core.text import same_words_key
from ragtune.demo.config import DemoConfig
from ragtune.eval.answers import AnswerEvalResult, read_pairs
from ragtune.eval.report import read_lines

STAGE_CONFIGS = ("index", "train", "train-raft", "serve", "answers")  # written as WORK_DIR/NAME.yaml


@dataclass
class DemoResult:
    """The comparison, how long the whole demo took, and the config it ran (its reranker kept
    or dropped on the validation questions)."""

    answers: AnswerEvalResult
    seconds: float
    config: DemoConfig


@contextmanager
def stage(name: str) -> Iterator[list[str]]:
    """Print the stage's start (on a terminal, with a running clock), then its one result line
    (appended by the body) and time."""
    started, result = time.perf_counter(), []
    done = threading.Event()

    def tick() -> None:
        while not done.wait(1.0):
            print(f"\r[demo] {name} ... {time.perf_counter() - started:.0f} s", end="", flush=True)

    clock = threading.Thread(target=tick, daemon=True)
    if sys.stdout.isatty():
        clock.start()
    else:
        print(f"[demo] {name} ...", flush=True)
    try:
        yield result
    finally:
        done.set()
        if clock.is_alive():
            clock.join()
    end = "\r" if sys.stdout.isatty() else ""
    print(f"{end}[demo] {name}: {' '.join(result)} ({time.perf_counter() - started:.0f} s)", flush=True)


def check_inputs(config: DemoConfig) -> None:
    """Fail before any work when an input is missing, saying which command makes it."""
    made_by = "`ragtune data python-docs` makes the Python-docs ones (make demo does)"
    for path in (*config.documents, config.questions):
        if not any(ch in str(path) for ch in "*?[") and not Path(path).exists():
            raise InputError(f"{path} missing", f"point documents and questions at your files; {made_by}")
    if not (Path(config.base_model) / "config.json").is_file():
        raise InputError(
            f"{config.base_model}/config.json missing",
            "run `ragtune model import data/models/smollm2` (make demo does)",
        )


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


@dataclass
class Split:
    """The pairs trained on, the pairs choices are made on, and the pairs reported on."""

    train: list[dict]
    validation: list[dict]
    held_out: list[dict]


def split_pairs(config: DemoConfig) -> Split:
    """A seeded shuffle of the questions: held-out first, then validation, the rest trained on. A
    question asked more than once (same words, any case or spacing) goes wholly to the part of its
    first place, so no question is in two parts."""
    pairs = read_pairs(config.questions)
    random.Random(config.seed).shuffle(pairs)
    kept, part_of = config.held_out + config.validation, {}
    split = Split([], [], [])
    parts = (split.held_out, split.validation, split.train)
    for pair in pairs:
        key = same_words_key(pair["question"])
        if key not in part_of:
            part_of[key] = parts[bisect_right((config.held_out, kept), len(part_of))]
        part_of[key].append(pair)
    if not split.train:
        raise InputError(
            f"{config.questions} has {len(part_of)} distinct questions, held_out + validation take {kept}",
            "set held_out and validation lower, or bring more pairs",
        )
    return split


def write_knowledge_base(config: DemoConfig) -> int:
    """The documents the index job takes; with `knowledge_base` prefixes, the JSONL documents'
    rows whose id starts with one, written to one file. Returns the kept row count (0 unfiltered)."""
    if not config.knowledge_base:
        return 0
    prefixes, id_field = tuple(config.knowledge_base), config.index_job().chunking.id_field
    kept = []
    for document in config.documents:
        rows = [json.loads(line) for line in read_lines(Path(document)) if line.strip()]
        kept += [row for row in rows if str(row.get(id_field, "")).startswith(prefixes)]
    write_jsonl_atomic(config.path("knowledge_base.jsonl"), kept)
    return len(kept)


def _recall(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def choose_rerank(config: DemoConfig, index_dir: Path, validation: list[dict]) -> tuple[DemoConfig, str]:
    """`config` keeping its reranker only if it finds the source of more validation questions in
    the top `context_k` than the first stage alone (never judged on held-out questions); the
    stage's result line."""
    from ragtune.retrieval.qa_rows import source_recall
    from ragtune.retrieval.search import Retriever

    questions, k = [pair["question"] for pair in validation], config.context_k
    plain = source_recall(validation, Retriever(index_dir).search_batch(questions, k))
    reranking = Retriever(index_dir, rerank=config.rerank)
    reranked = source_recall(validation, reranking.search_batch(questions, k))
    kept = plain is not None and reranked is not None and reranked > plain
    line = f"validation source in top-{k}: {_recall(plain)} first stage, {_recall(reranked)} reranked; " + (
        "reranking" if kept else "not reranking"
    )
    return (config if kept else config.model_copy(update={"rerank": None})), line


def training_rows(config: DemoConfig, index_dir: Path, split: Split) -> str:
    """RAG rows (training and validation questions with their top-k chunks) and RAFT rows (each
    training question's oracle chunk and distractors); the stage's result line."""
    from ragtune.retrieval.qa_rows import raft_rows, rag_rows
    from ragtune.retrieval.search import Retriever

    retriever = Retriever(index_dir, rerank=config.rerank)
    k = config.context_k
    rows, train_recall = rag_rows(retriever, split.train, k)
    write_jsonl_atomic(config.path("train.jsonl"), rows)
    validation, validation_recall = rag_rows(retriever, split.validation, k)
    write_jsonl_atomic(config.path("validation_rag.jsonl"), validation)
    _, held_recall = rag_rows(retriever, split.held_out, k)
    raft = raft_rows(retriever, split.train, config.raft_rows.hard, config.raft_rows.random, config.seed)
    if not raft.rows:
        raise InputError(
            "no training pair names a source document that is in the index, so RAFT has no oracle",
            "give the pairs `sources` (document ids as the index stores them)",
        )
    write_jsonl_atomic(config.path("train_raft.jsonl"), raft.rows)
    return (
        f"{len(rows)} RAG rows, {raft.summary()}; source in top-{k}: {_recall(train_recall)} training, "
        f"{_recall(validation_recall)} validation, {_recall(held_recall)} held-out"
    )


def train_adapter(job) -> str:
    """One fine-tune from scratch; its data line and summary line, as one."""
    from ragtune.train.trainer import run_train_job

    fresh_run_dir(job.output_dir)
    data: list[str] = []
    result = run_train_job(job, progress=data.append)
    return "; ".join([*data, result.summary()])


def run_demo(config: DemoConfig) -> DemoResult:
    """Run every stage on the connected Ray cluster; Serve is shut down however it ends."""
    from ray import serve

    from ragtune.eval.answers import run_answer_eval
    from ragtune.retrieval.job import run_index_job
    from ragtune.serve.app import deploy

    started = time.perf_counter()
    check_inputs(config)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    with stage("data") as line:
        split = split_pairs(config)
        for name, pairs in (("held_out", split.held_out), ("validation", split.validation)):
            write_jsonl_atomic(config.path(f"{name}.jsonl"), pairs)
        kept = write_knowledge_base(config)
        write_job_configs(config)
        line.append(
            f"{len(split.train)} training / {len(split.validation)} validation / {len(split.held_out)} "
            f"held-out pairs"
            + (f", knowledge base of {kept} documents" if kept else "")
            + f"; stage configs in {config.work_dir}/*.yaml"
        )
    with stage("index") as line:
        index_job = config.index_job()
        indexed = run_index_job(index_job, update=IndexManifest.find(index_job.output_dir) is not None)
        line.append(f"{indexed.num_chunks} chunks in {index_job.output_dir}")
    if config.rerank is not None:
        with stage("rerank") as line:
            config, decision = choose_rerank(config, index_job.output_dir, split.validation)
            write_job_configs(config)
            line.append(decision)
    with stage("training data") as line:
        line.append(training_rows(config, index_job.output_dir, split))
    with stage("fine-tune") as line:
        line.append(train_adapter(config.train_job()))
    with stage("fine-tune RAFT") as line:
        line.append(train_adapter(config.raft_job()))
    serve_job = config.serve_job()
    try:
        with stage("serve") as line:
            url = deploy(serve_job)
            line.append(f"{url} serves base + adapters {', '.join(serve_job.generator.adapters)}")
        with stage("answers") as line:
            answers = run_answer_eval(config.answer_eval(url))
            line.append(f"report in {answers.report_dir}")
    finally:
        serve.shutdown()
    return DemoResult(answers, time.perf_counter() - started, config)


def write_job_configs(config: DemoConfig) -> None:
    """Each stage's job config as a file beside its outputs (`STAGE_CONFIGS`), so each step can
    be run again on its own."""
    import yaml

    for name, job in zip(
        STAGE_CONFIGS,
        (config.index_job(), config.train_job(), config.raft_job(), config.serve_job(), config.answer_eval()),
    ):
        data = {"kind": job.kind, **job.model_dump(mode="json", exclude_defaults=True)}
        header = f"# Written by `ragtune demo` from its config: the {name} stage's job.\n"
        write_text_atomic(config.path(f"{name}.yaml"), header + yaml.safe_dump(data, sort_keys=False))
