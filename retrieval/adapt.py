"""Adapt an embedding model to a corpus without labels: headings as queries, sections as answers.

Every section with a distinctive heading (no other document uses it, two words or more) gives one
training pair: the heading and the opening of its section. The model learns with in-batch
negatives (the MultipleNegativesRankingLoss of sentence-transformers): each heading must rank its
own section first among the batch's others. A held-out share of the pairs measures heading →
section recall@1 before and after, and the adapted model is saved atomically with a manifest.
"""

from __future__ import annotations

import fnmatch
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

import numpy as np

from ragtune.cluster.resources import (
    check_schedulable,
    data_remote_args,
    set_torch_threads,
    torch_threads,
    worker_resources,
)
from ragtune.cluster.tiers import HardwareTier, get_tier
from ragtune.core.artifacts import MANIFEST_FILE, EmbedderManifest
from ragtune.core.atomic import atomic_dir
from ragtune.core.config import require_model
from ragtune.core.errors import ConfigError
from ragtune.core.text import same_words_key
from ragtune.core.tracking import start_job_run
from ragtune.retrieval.config import ChunkingConfig, EmbedderTuneConfig, PairTuneConfig
from ragtune.retrieval.embed import encode, load_encoder, model_identity, resolve_model
from ragtune.retrieval.ingest import document_format, read_chunks, require_documents

MIN_HEADING_WORDS = 2
MIN_PASSAGE_WORDS = 20
SIMILARITY_SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default


@dataclass(frozen=True)
class Pair:
    """A query (a section heading) and the passage it should retrieve (the section's opening)."""

    query: str
    passage: str


@dataclass
class TuneResult:
    """What a tune-embedder job produced."""

    output_dir: Path
    train_pairs: int
    validation_pairs: int
    recall_before: float
    recall_after: float
    seconds: float

    def summary(self) -> str:
        return (
            f"embedder {self.output_dir}: {self.train_pairs} training pairs; held-out "
            f"heading→section recall@1 {self.recall_before:.3f} → {self.recall_after:.3f} "
            f"({self.validation_pairs} pairs) in {self.seconds:.1f}s"
        )


def heading_pairs(chunks: Iterable[dict], exclude: Iterable[str] = ()) -> list[Pair]:
    """One pair per section whose heading is distinctive: (heading, the section's first chunk).

    `chunks` are rows of the ingest stage; a chunk whose doc id or source matches a glob in
    `exclude` is left out, as are PDF pages (their headings are page numbers), headings shared by
    several documents ("Examples") and sections too short to say much. Sections are told apart
    by (doc id, heading): of two same-named sections in one document only the first counts.
    """
    exclude, openings = list(exclude), {}
    for row in chunks:
        if document_format(row["source"]) == ".pdf" or excluded(row["doc_id"], row["source"], exclude):
            continue
        key = (row["doc_id"], row["heading"])
        if key not in openings or row["start"] < openings[key]["start"]:
            openings[key] = row
    headings = Counter(same_words_key(heading) for _, heading in openings)
    return [
        Pair(" ".join(heading.split()), row["text"])
        for (_, heading), row in sorted(openings.items())
        if headings[same_words_key(heading)] == 1
        and len(heading.split()) >= MIN_HEADING_WORDS
        and len(row["text"].split()) >= MIN_PASSAGE_WORDS
    ]


def excluded(doc_id: str, source: str, globs: list[str]) -> bool:
    """Whether a document is kept out of training: its id or source matches one of `globs`."""
    return any(fnmatch.fnmatch(value, glob) for glob in globs for value in (doc_id, source))


def split_pairs(
    pairs: list[Pair], fraction: float, batch_size: int, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """(training, validation) pairs, shuffled with `seed`; refuses a corpus too small to train on."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    held_out = max(2, round(len(shuffled) * fraction))
    if len(shuffled) - held_out < batch_size:
        raise ValueError(
            f"only {len(shuffled)} sections with a distinctive heading; need at least "
            f"{batch_size + held_out} (batch_size {batch_size} + {held_out} held out)"
        )
    return shuffled[held_out:], shuffled[:held_out]


def pair_recall(model, pairs: list[Pair]) -> float:
    """Share of queries whose own passage ranks first among all the pairs' passages."""
    queries = encode(model, [p.query for p in pairs])
    passages = encode(model, [p.passage for p in pairs])
    best = (queries @ passages.T).argmax(axis=1)
    return float((best == np.arange(len(pairs))).mean())


def fine_tune(
    base_model: str,
    train: list[Pair],
    validation: list[Pair],
    config: EmbedderTuneConfig,
    threads: int | None = None,
) -> dict:
    """Fine-tune `base_model` on `train` (GPU when visible): the adapted weights, on CPU, and the
    run's figures."""
    import torch

    set_torch_threads(threads)
    torch.manual_seed(config.seed)
    model = load_encoder(base_model)
    recall_before = pair_recall(model, validation)
    serving_length, model.max_seq_length = model.max_seq_length, config.passage_tokens
    curve = _fit(model, train, config)
    model.max_seq_length = serving_length
    return {
        "state": {name: tensor.cpu() for name, tensor in model.state_dict().items()},
        "steps": len(train) // config.batch_size * config.epochs,
        "loss_curve": curve,
        "recall_before": recall_before,
        "recall_after": pair_recall(model, validation),
    }


def _fit(model, train: list[Pair], config: EmbedderTuneConfig) -> list[tuple[int, float]]:
    """In-batch negatives: each heading must score its own passage above the batch's others."""
    import torch

    def loss(batch: list[Pair]):
        scores = _embed(model, [p.query for p in batch]) @ _embed(model, [p.passage for p in batch]).T
        targets = torch.arange(len(batch), device=scores.device)
        return torch.nn.functional.cross_entropy(SIMILARITY_SCALE * scores, targets)

    return fit_loop(model, train, config, loss)


def fit_loop(model, examples: list, config: PairTuneConfig, batch_loss: Callable) -> list[tuple[int, float]]:
    """The training loop: `config.batch_size` examples a step, `batch_loss(batch)` back-propagated,
    AdamW, linear warm-up (10%) and decay. Returns and prints the mean loss of every tenth of the
    steps, as (step, loss); `examples` hold at least one batch (`split_pairs` sees to it)."""
    import torch

    per_epoch = len(examples) // config.batch_size
    total, warmup = per_epoch * config.epochs, max(1, per_epoch * config.epochs // 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, (total - step) / max(1, total - warmup))
    )
    order, losses, curve, started = random.Random(config.seed), [], [], time.perf_counter()
    every = max(1, total // 10)
    model.train()
    for _ in range(config.epochs):
        shuffled = order.sample(examples, len(examples))
        for first in range(0, per_epoch * config.batch_size, config.batch_size):
            loss = batch_loss(shuffled[first : first + config.batch_size])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if len(losses) % every == 0:
                curve.append((len(losses), mean(losses[-every:])))
                print(
                    f"step {len(losses)}/{total} loss {curve[-1][1]:.3f} "
                    f"({time.perf_counter() - started:.0f}s)"
                )
    model.eval()
    return curve


def _save(config: EmbedderTuneConfig, state: dict, manifest: EmbedderManifest) -> None:
    """The adapted weights as a model folder with its manifest, written to a temp sibling and
    renamed into place."""
    model = load_encoder(config.base_model, "cpu")
    model.load_state_dict(state)
    with atomic_dir(config.output_dir) as tmp:
        model.save(str(tmp))
        manifest.write(tmp)


def _embed(model, texts: list[str]):
    """Unit-normalised embeddings with gradients (`encode` runs without them)."""
    import torch
    from sentence_transformers.util import batch_to_device

    features = batch_to_device(model.preprocess(texts), model.device)
    return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)


def check_inputs(config: EmbedderTuneConfig) -> list[Path]:
    """Fail before any work when the documents match nothing or the base model is missing; the
    documents found."""
    require_model(config.base_model, "base_model")
    EmbedderManifest.check_replaceable(config.output_dir)
    return require_documents(config.documents)


def mine_pairs(
    config: PairTuneConfig, paths: list[str], tier: HardwareTier, job: str
) -> tuple[list[Pair], list[Pair]]:
    """The (training, validation) heading → section pairs of the documents (Ray Data ingest on
    the tier), skipped files reported; a ConfigError when too few to train on."""
    chunking = ChunkingConfig(max_tokens=config.passage_tokens, overlap_tokens=0)
    chunks, skipped = read_chunks(paths, chunking, resolve_model(config.base_model), tier)
    for item in skipped:
        print(f"skipped {item.source}: {item.reason}")
    rows = chunks.select_columns(["doc_id", "source", "heading", "text", "start"]).take_all()
    try:
        train, validation = split_pairs(
            heading_pairs(rows, config.exclude), config.validation_fraction, config.batch_size, config.seed
        )
    except ValueError as exc:
        raise ConfigError(job, "documents", str(exc)) from None
    print(f"training on {len(train)} heading→section pairs, {len(validation)} held out")
    return train, validation


def log_training(tracker, metric: str, before_after: tuple[float, float], run: dict, config) -> None:
    """Close a training job's MLflow run: `metric` before (step 0) and after (the last step), the
    loss curve, and the saved model's manifest."""
    tracker.log_metrics({metric: before_after[0]}, 0)
    for step, loss in run["loss_curve"]:
        tracker.log_metrics({"train_loss": loss}, step)
    tracker.log_metrics({metric: before_after[1]}, run["steps"])
    tracker.log_artifact(config.output_dir / MANIFEST_FILE)
    tracker.finish()


def run_tune_job(config: EmbedderTuneConfig) -> TuneResult:
    """Mine pairs from the documents (Ray Data), train on the tier (a Ray task), save atomically;
    one MLflow run per job (params, loss curve, held-out recall@1 before and after)."""
    import ray

    started = time.perf_counter()
    paths = [str(path) for path in check_inputs(config)]
    tier = get_tier(config.tier)
    check_schedulable(tier, worker_resources(tier))
    train, validation = mine_pairs(config, paths, tier, "tune-embedder")
    pairs = {"train_pairs": len(train), "validation_pairs": len(validation)}
    tracker = start_job_run(config, "tune-embedder", tier.name, pairs)
    try:
        task = ray.remote(**data_remote_args(tier))(fine_tune)
        threads = torch_threads(tier, tier.cpus)  # one task: it stands for the whole node
        run = ray.get(task.remote(config.base_model, train, validation, config, threads))
        state = run.pop("state")
        manifest = EmbedderManifest(
            base_model=model_identity(config.base_model),
            config=config.model_dump(mode="json"),
            train_pairs=len(train),
            validation_pairs=len(validation),
            **run,
        )
        _save(config, state, manifest)
    except BaseException:
        tracker.finish("FAILED")
        raise
    log_training(tracker, "heading_recall_at_1", (run["recall_before"], run["recall_after"]), run, config)
    return TuneResult(
        config.output_dir,
        len(train),
        len(validation),
        run["recall_before"],
        run["recall_after"],
        time.perf_counter() - started,
    )
