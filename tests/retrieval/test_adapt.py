"""Learning from the corpus itself: pair mining, a real tune-embedder job on Ray whose model an
index uses, and a real tune-reranker job whose cross-encoder reranks searches."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from sentence_transformers import SentenceTransformer

from ragtune.core.artifacts import EmbedderManifest, RerankerManifest
from ragtune.core.errors import ArtifactError, ConfigError
from ragtune.retrieval.adapt import Pair, heading_pairs, run_tune_job, split_pairs
from ragtune.retrieval.config import EmbedderTuneConfig, IndexJobConfig, RerankConfig, RerankerTuneConfig
from ragtune.retrieval.embed import encode, load_encoder
from ragtune.retrieval.job import run_index_job
from ragtune.retrieval.rerank import load_cross_encoder
from ragtune.retrieval.rerank_tune import own_passage_first, run_reranker_tune_job, with_negatives
from ragtune.retrieval.search import Retriever
from tests.helpers import run_cli

FILLER = "It is described here in enough words to make a passage worth learning from, with detail."
PLANTS = ["tomatoes", "roses", "basil", "tulips", "apple trees", "lettuce", "orchids", "ferns"]
TASKS = ["Watering", "Pruning", "Feeding"]


def passage(heading):
    return f"{heading} is a chore of the season. {FILLER}"


def row(doc_id, heading, text, start=0, source="/docs/a.md"):
    return {"doc_id": doc_id, "source": source, "heading": heading, "text": text, "start": start}


def test_heading_pairs_keep_distinctive_headings_and_section_openings():
    long = "word " * 25
    rows = [
        row("a", "Installing the package", "second chunk " + long, start=400),
        row("a", "Installing the package", "opening chunk " + long, start=0),
        row("a", "Examples", long),
        row("b", "Examples", long),  # shared heading
        row("b", "Overview", long),  # one word
        row("b", "Short section here", "too short"),
        row("faq/1", "How do I install it?", long, source="/docs/faq.md"),
        row("/docs/r.pdf", "r, page 2", long, source="/docs/r.pdf"),
    ]
    pairs = heading_pairs(rows, exclude=["faq/*"])
    assert pairs == [Pair("Installing the package", "opening chunk " + long)]
    assert len(heading_pairs(rows)) == 2
    assert heading_pairs(rows, exclude=["*/faq.md"]) == pairs


def test_split_refuses_a_corpus_too_small_to_train():
    pairs = [Pair(f"q {i}", f"p {i}") for i in range(10)]
    train, validation = split_pairs(pairs, 0.2, batch_size=4, seed=1)
    assert len(train) == 8 and len(validation) == 2 and not set(train) & set(validation)
    with pytest.raises(ValueError, match="only 10 sections with a distinctive heading"):
        split_pairs(pairs, 0.2, batch_size=16, seed=1)


@pytest.fixture(scope="module")
def garden(tmp_path_factory):
    """A Markdown garden guide: one distinctive section per task and plant, one FAQ page."""
    root = tmp_path_factory.mktemp("garden")
    for plant in PLANTS:
        sections = [f"## {task} {plant}\n\n{passage(f'{task} {plant}')}\n" for task in TASKS]
        (root / f"{plant.replace(' ', '_')}.md").write_text(f"# {plant}\n\n" + "\n".join(sections))
    (root / "faq.md").write_text(f"# FAQ\n\n## Why do my roses wilt in summer?\n\n{passage('Water')}\n")
    return root


@pytest.fixture(scope="module")
def tuned(ray_cluster, garden, tmp_path_factory):
    config = EmbedderTuneConfig(
        documents=[str(garden)],
        exclude=["*/faq.md"],
        output_dir=tmp_path_factory.mktemp("m") / "tuned",
        epochs=3,
        batch_size=4,
        learning_rate=1e-4,
        validation_fraction=0.2,
    )
    return config, run_tune_job(config)


def test_tune_job_trains_on_the_corpus_and_saves_a_loadable_model(tuned):
    config, result = tuned
    assert (result.train_pairs, result.validation_pairs) == (19, 5)  # 24 sections, FAQ excluded
    assert 0 <= result.recall_before <= 1 and 0 <= result.recall_after <= 1
    manifest = EmbedderManifest.read(config.output_dir)
    assert manifest.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.steps == 3 * (19 // 4) and manifest.config["exclude"] == ["*/faq.md"]
    assert [step for step, _ in manifest.loss_curve] == list(range(1, 13))  # 12 steps: all logged
    assert manifest.versions["sentence-transformers"] and manifest.versions["torch"]
    client = MlflowClient(config.tracking_uri())
    assert config.tracking_uri().endswith(f"{config.output_dir.parent}/mlflow.db")
    [run] = client.search_runs([client.get_experiment_by_name("ragtune").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["exclude"] == "['*/faq.md']"
    recall = client.get_metric_history(run.info.run_id, "heading_recall_at_1")
    assert [(m.step, m.value) for m in recall] == [(0, result.recall_before), (12, result.recall_after)]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 12
    base, adapted = load_encoder(config.base_model, "cpu"), load_encoder(str(config.output_dir), "cpu")
    assert adapted.max_seq_length == base.max_seq_length
    headings = [f"{task} {plant}" for task in TASKS for plant in PLANTS]
    passages = [passage(h) for h in headings]

    def pair_similarity(model):
        return float(np.mean(np.sum(encode(model, headings) * encode(model, passages), axis=1)))

    # Trained to pull each heading towards its own section: the pairs grow closer.
    assert pair_similarity(adapted) > pair_similarity(base) + 0.01


def test_index_with_the_adapted_model_searches_and_notices_it_retrained(tuned, garden, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tuned[0].output_dir, model_dir)
    out = tmp_path / "index"
    run_index_job(
        IndexJobConfig(
            documents=[str(garden)],
            output_dir=out,
            embedding={"model": str(model_dir)},
        )
    )
    hits = Retriever(out).search("pruning the roses", k=3)
    assert hits[0].heading == "Pruning roses"

    model = load_encoder(str(model_dir), "cpu")  # re-trained in place: other weights, same folder
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save(str(model_dir))
    with pytest.raises(ArtifactError, match="has changed since the index was built"):
        Retriever(out)


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_refused_or_failed_tune_job_leaves_the_saved_model_untouched(tuned, monkeypatch):
    config, _ = tuned
    before = tree(config.output_dir)
    with pytest.raises(ConfigError, match="only 24 sections with a distinctive heading"):
        run_tune_job(config.model_copy(update={"batch_size": 64}))

    def save_half_then_fail(model, path, *args, **kwargs):
        (Path(path) / "model.safetensors").write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(SentenceTransformer, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        run_tune_job(config.model_copy(update={"epochs": 1}))
    assert tree(config.output_dir) == before
    assert not [p for p in config.output_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs
    client = MlflowClient(config.tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("ragtune").experiment_id])
    assert sorted(run.info.status for run in runs) == ["FAILED", "FINISHED"]  # the refusal trained nothing


def test_cli_rejects_a_bad_config_naming_the_field(tmp_path):
    bad = tmp_path / "embedder.yaml"
    bad.write_text("kind: embedder\ndocuments: [docs]\noutput_dir: out\nbatch_size: 1\n")
    result = run_cli("tune-embedder", str(bad))
    assert result.returncode == 2 and "batch_size" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def garden_index(ray_cluster, garden, tmp_path_factory):
    out = tmp_path_factory.mktemp("garden-index") / "index"
    run_index_job(IndexJobConfig(documents=[str(garden)], output_dir=out))
    return out


def reranker_config(garden, index, out, **changes) -> RerankerTuneConfig:
    settings = {
        "documents": [str(garden)],
        "exclude": ["*/faq.md"],
        "index_dir": str(index),
        "output_dir": str(out),
        "epochs": 3,
        "batch_size": 4,
        "learning_rate": 1e-4,
        "validation_fraction": 0.2,
        "max_length": 64,
    }
    return RerankerTuneConfig.model_validate({**settings, **changes})


def test_negatives_are_other_sections_and_never_held_out_documents(garden, garden_index):
    config = reranker_config(garden, garden_index, "unused", hard_negatives=3, random_negatives=1)
    pairs = [Pair(f"{task} {plant}", passage(f"{task} {plant}")) for task in TASKS for plant in PLANTS]
    candidates = with_negatives(pairs, Retriever(garden_index), config)
    assert all(len(c.passages) == 5 and c.passages[0] == passage(c.query) for c in candidates)
    for c in candidates:
        assert all(f"{c.query} is a chore" not in negative for negative in c.passages[1:])
        assert all("Why do my roses wilt" not in negative for negative in c.passages[1:])
    # Hard ones come first: what the index finds for the heading, e.g. its plant's other tasks.
    first = candidates[0]
    assert PLANTS[0] in first.passages[1] or TASKS[0] in first.passages[1]


def test_tune_reranker_learns_the_corpus_and_reranks_with_it(garden, garden_index, tmp_path):
    config = reranker_config(garden, garden_index, tmp_path / "reranker")
    result = run_reranker_tune_job(config)
    assert (result.train_pairs, result.validation_pairs) == (19, 5)
    manifest = RerankerManifest.read(config.output_dir)
    assert manifest.negatives == 4 and manifest.steps == 3 * (19 // 4)
    assert [step for step, _ in manifest.loss_curve] == list(range(1, 13))
    assert manifest.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    client = MlflowClient(config.tracking_uri())
    [run] = client.search_runs([client.get_experiment_by_name("ragtune").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["ragtune.job"] == "tune-reranker"
    accuracy = client.get_metric_history(run.info.run_id, "own_passage_first")
    assert [(m.step, m.value) for m in accuracy] == [(0, result.accuracy_before), (12, result.accuracy_after)]

    pairs = [Pair(f"{task} {plant}", passage(f"{task} {plant}")) for task in TASKS for plant in PLANTS]
    candidates = with_negatives(pairs, Retriever(garden_index), config)
    base = load_cross_encoder(config.base_model, 64, "cpu", num_labels=1)
    trained = load_cross_encoder(str(config.output_dir), 64, "cpu")
    assert own_passage_first(trained, candidates) > own_passage_first(base, candidates) + 0.2

    reranking = Retriever(garden_index, rerank=RerankConfig(model=str(config.output_dir), candidates=10))
    assert reranking.search("Pruning roses", k=1)[0].heading == "Pruning roses"
    assert reranking.reranker.model.max_seq_length == 64  # searches at the length it was trained at
    with pytest.raises(ArtifactError, match="refusing to replace"):
        run_reranker_tune_job(config.model_copy(update={"output_dir": garden}))  # a corpus, not a model
