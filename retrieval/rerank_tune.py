"""Train a cross-encoder reranker on a corpus without labels. Each distinctive heading (the pairs
that `tune-embedder` learns from) must score its own section's opening above hard negatives,
the chunks of other sections that the corpus's own index retrieves for it, and random ones
(a listwise softmax over the heading's passages). A held-out share of the headings measures how
often the own passage scores highest, before and after; the model is saved atomically with a
manifest, and the run is tracked in MLflow."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from ragtune.cluster.resources import (
    check_schedulable,
    data_remote_args,
    set_torch_threads,
    torch_threads,
    worker_resources,
)
from ragtune.cluster.tiers import get_tier
from ragtune.core.artifacts import IndexManifest, RerankerManifest
from ragtune.core.atomic import atomic_dir
from ragtune.core.config import require_model
from ragtune.core.text import same_words_key
from ragtune.core.tracking import start_job_run
from ragtune.retrieval.adapt import Pair, excluded, fit_loop, log_training, mine_pairs
from ragtune.retrieval.config import RerankerTuneConfig
from ragtune.retrieval.embed import model_identity
from ragtune.retrieval.ingest import require_documents
from ragtune.retrieval.rerank import load_cross_encoder
from ragtune.retrieval.search import Retriever

SEARCH_SLACK = 5  # retrieved beyond the hard negatives asked for: some are the heading's own section


@dataclass(frozen=True)
class Candidates:
    """A heading and the passages it is scored against: its own section's opening first."""

    query: str
    passages: tuple[str, ...]


@dataclass
class RerankerTuneResult:
    """What a tune-reranker job produced."""

    output_dir: Path
    train_pairs: int
    validation_pairs: int
    accuracy_before: float
    accuracy_after: float
    seconds: float

    def summary(self) -> str:
        return (
            f"reranker {self.output_dir}: {self.train_pairs} training headings; held-out "
            f"own-passage-first {self.accuracy_before:.3f} → {self.accuracy_after:.3f} "
            f"({self.validation_pairs} headings) in {self.seconds:.1f}s"
        )


def with_negatives(pairs: list[Pair], retriever: Retriever, config: RerankerTuneConfig) -> list[Candidates]:
    """Each pair's passage and its negatives: the top `hard_negatives` chunks the index finds
    for the heading outside its own section and the excluded documents, then passages of random
    other pairs (which also fill in when the index finds too few)."""
    hard, random_count = config.hard_negatives, config.random_negatives
    rng = random.Random(config.seed)
    found = (
        retriever.search_batch([p.query for p in pairs], hard + SEARCH_SLACK) if hard else [[]] * len(pairs)
    )
    candidates = []
    for pair, hits in zip(pairs, found):
        own = same_words_key(pair.query)
        negatives = [
            hit.text
            for hit in hits
            if same_words_key(hit.heading) != own
            and hit.text != pair.passage
            and not excluded(hit.doc_id, hit.source, config.exclude)
        ][:hard]
        while len(negatives) < hard + random_count:
            other = rng.choice(pairs)
            if other.query != pair.query and other.passage not in negatives:
                negatives.append(other.passage)
        candidates.append(Candidates(pair.query, (pair.passage, *negatives)))
    return candidates


def own_passage_first(model, candidates: list[Candidates], batch_size: int = 64) -> float:
    """Share of headings whose own passage the model scores above all their negatives."""
    pairs = [(c.query, passage) for c in candidates for passage in c.passages]
    scores = model.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    width = len(candidates[0].passages)
    return float((scores.reshape(len(candidates), width).argmax(axis=1) == 0).mean())


def fine_tune_reranker(
    train: list[Candidates], validation: list[Candidates], config: RerankerTuneConfig, threads: int | None
) -> dict:
    """Train the cross-encoder (GPU when visible): its weights, on CPU, and the run's figures."""
    import torch
    from sentence_transformers.util import batch_to_device

    set_torch_threads(threads)
    torch.manual_seed(config.seed)
    model = load_cross_encoder(config.base_model, config.max_length, num_labels=1)
    before = own_passage_first(model, validation)

    def loss(batch: list[Candidates]):
        pairs = [(c.query, passage) for c in batch for passage in c.passages]
        features = batch_to_device(model.preprocess(pairs), model.device)
        scores = model(features)["scores"].view(len(batch), -1)
        targets = torch.zeros(len(batch), dtype=torch.long, device=scores.device)
        return torch.nn.functional.cross_entropy(scores, targets)

    curve = fit_loop(model, train, config, loss)
    return {
        "state": {name: tensor.cpu() for name, tensor in model.state_dict().items()},
        "steps": len(train) // config.batch_size * config.epochs,
        "loss_curve": curve,
        "accuracy_before": before,
        "accuracy_after": own_passage_first(model, validation),
    }


def check_inputs(config: RerankerTuneConfig) -> list[Path]:
    """Fail before any work on a missing base model or index, or documents that match nothing;
    the documents found."""
    require_model(config.base_model, "base_model")
    IndexManifest.read(config.index_dir)
    RerankerManifest.check_replaceable(config.output_dir)
    return require_documents(config.documents)


def run_reranker_tune_job(config: RerankerTuneConfig) -> RerankerTuneResult:
    """Mine heading pairs (Ray Data), add the index's hard negatives, train on the tier (a Ray
    task), save atomically; one MLflow run (params, loss curve, held-out accuracy)."""
    import ray

    started = time.perf_counter()
    paths = [str(path) for path in check_inputs(config)]
    tier = get_tier(config.tier)
    check_schedulable(tier, worker_resources(tier))
    train_pairs, validation_pairs = mine_pairs(config, paths, tier, "tune-reranker")
    if config.max_pairs is not None and len(train_pairs) > config.max_pairs:
        train_pairs = random.Random(config.seed).sample(train_pairs, config.max_pairs)
    retriever = Retriever(config.index_dir)
    train = with_negatives(train_pairs, retriever, config)
    validation = with_negatives(validation_pairs, retriever, config)
    counts = {"train_pairs": len(train), "validation_pairs": len(validation)}
    tracker = start_job_run(config, "tune-reranker", tier.name, counts)
    try:
        task = ray.remote(**data_remote_args(tier))(fine_tune_reranker)
        run = ray.get(task.remote(train, validation, config, torch_threads(tier, tier.cpus)))
        manifest = RerankerManifest(
            base_model=model_identity(config.base_model),
            config=config.model_dump(mode="json"),
            negatives=config.hard_negatives + config.random_negatives,
            **counts,
            **{key: value for key, value in run.items() if key != "state"},
        )
        model = load_cross_encoder(config.base_model, config.max_length, "cpu", num_labels=1)
        model.load_state_dict(run["state"])
        with atomic_dir(config.output_dir) as tmp:
            model.save(str(tmp))
            manifest.write(tmp)
    except BaseException:
        tracker.finish("FAILED")
        raise
    accuracy = (run["accuracy_before"], run["accuracy_after"])
    log_training(tracker, "own_passage_first", accuracy, run, config)
    return RerankerTuneResult(
        config.output_dir, len(train), len(validation), *accuracy, time.perf_counter() - started
    )
