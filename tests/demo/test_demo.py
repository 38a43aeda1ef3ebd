"""The main job end to end on a reduced scale, on documents and questions of its own (Markdown
files, not the Python docs), and its config edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.cli.common import load_job_config
from ragtune.core.artifacts import IndexManifest
from ragtune.core.config import validate_data
from ragtune.core.errors import ConfigError, InputError
from ragtune.core.text import same_words_key
from ragtune.demo.config import DemoConfig
from ragtune.demo.pipeline import STAGE_CONFIGS
from tests.helpers import COUNTRIES, cross_encoder, tiny_model, write_jsonl

PORT = 8125


def demo_settings(root, model) -> dict:
    return {
        "work_dir": str(root / "work"),
        "documents": [str(root / "docs")],
        "questions": str(root / "qa.jsonl"),
        "base_model": str(model),
        "held_out": 3,
        "validation": 2,
        "context_k": 2,
        "raft_rows": {"hard": 2, "random": 1},
        "raft_eval_k": [1],
        "index": {"chunking": {"max_tokens": 64, "overlap_tokens": 0}},
        "train": {
            "lora": {"r": 4, "alpha": 8},
            "max_steps": 2,
            "micro_batch_size": 2,
            "global_batch_size": 2,
            "eval_every_steps": 2,
            "checkpoint_every_steps": 2,
            "data": {"validation_fraction": 0.2},
        },
        "serve": {
            "port": PORT,
            "retriever": {"scaling": {"num_cpus": 0.1}},
            "generator": {"max_new_tokens": 8, "scaling": {"num_cpus": 0.2}},
        },
        "answers": {"max_tokens": 8, "concurrency": 2, "pricing_tier": "cpu-small"},
    }


def write_benchmark(root) -> None:
    """A folder of Markdown pages, one per country and one off-topic, and questions naming the
    page that answers them by file name."""
    docs = root / "docs"
    docs.mkdir()
    for country, capital in COUNTRIES:
        (docs / f"{country.lower()}.md").write_text(
            f"# {country}\n\nThe capital of {country} is {capital}.\n"
        )
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    write_jsonl(
        root / "qa.jsonl",
        [
            {
                "question": f"What is the capital of {c}?",
                "answer": f"The capital of {c} is {cap}.",
                "sources": [f"{c.lower()}.md"],
            }
            for c, cap in COUNTRIES
        ],
    )


def test_reduced_demo_runs_every_stage(ray_cluster, tmp_path, capsys):
    import mlflow.tracking
    from ray import serve

    from ragtune.demo.pipeline import run_demo

    serve.shutdown()  # a Serve left by another module listens on its own port; the demo starts its own
    write_benchmark(tmp_path)
    settings = demo_settings(tmp_path, tiny_model(tmp_path))
    rerank = {"model": str(cross_encoder(tmp_path / "reranker")), "candidates": 4}
    config = DemoConfig.model_validate({**settings, "rerank": rerank})
    assert config.serve_job().retriever.rerank == config.rerank  # served when kept
    result = run_demo(config)
    console = capsys.readouterr().out.splitlines()
    tuned = [line for line in console if line.startswith("[demo] fine-tune: ")]
    assert len(tuned) == 1 and "validation examples; model " in tuned[0]  # one line per stage
    assert not [line for line in console if line.startswith("data: ")]

    work = tmp_path / "work"
    held = [json.loads(line)["question"] for line in (work / "held_out.jsonl").read_text().splitlines()]
    validation = [
        json.loads(line)["question"] for line in (work / "validation.jsonl").read_text().splitlines()
    ]
    trained = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    raft = [json.loads(line) for line in (work / "train_raft.jsonl").read_text().splitlines()]
    assert (len(held), len(validation), len(trained), len(raft)) == (
        3,
        2,
        len(COUNTRIES) - 5,
        len(COUNTRIES) - 5,
    )
    assert not set(held) & set(validation) and not (set(held) | set(validation)) & {
        r["question"] for r in trained
    }
    assert all(len(row["context"]) == 2 and row["answer"] for row in trained)
    for row in raft:  # the oracle is the country's own page; distractors are other pages
        country = row["question"].removeprefix("What is the capital of ").rstrip("?")
        assert country in row["oracle"] and not any(country in d for d in row["distractors"])
        assert len(row["distractors"]) == 2 and len(row["random_distractors"]) == 1
    assert IndexManifest.read(work / "index").num_chunks == len(COUNTRIES) + 1
    for adapter in ("train", "train-raft"):
        assert (work / adapter / "model" / "adapter_config.json").is_file()
    written = {name: load_job_config(work / f"{name}.yaml", None) for name in STAGE_CONFIGS}
    # Every validation source is already first-ranked by the first stage: the reranker is dropped.
    assert result.config.rerank is None and written["serve"].retriever.rerank is None
    assert written["serve"] == result.config.serve_job() and written["train-raft"] == config.raft_job()
    assert written["serve"].generator.adapters == {
        "fine-tuned": work / "train" / "model",
        "raft": work / "train-raft" / "model",
    }

    systems = ["base", "RAG", "fine-tuned", "fine-tuned + RAG", "RAFT + RAG", "RAFT + RAG (k=1)"]
    table = (work / "report" / "answers.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[4:10]] == systems
    assert "RAFT + RAG − fine-tuned + RAG" in table
    report = json.loads((work / "report" / "answers.json").read_text())
    assert [s["system"] for s in report["systems"]] == systems
    for system in report["systems"]:
        f1 = system["f1"]
        assert f1["low"] <= f1["mean"] <= f1["high"] and len(system["answers"]) == 3
        assert (system["recall_at_k"] is not None) == (system["k"] is not None)
        assert system["k"] is not None or system["grounded"] is None  # no passages: nothing to ground
    assert [len(a["sources"]) for s in report["systems"][4:] for a in s["answers"]] == [2] * 3 + [1] * 3
    assert len(report["comparisons"]) == 4
    assert (work / "report" / "answers.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.system for s in result.answers.systems] == systems

    client = mlflow.tracking.MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ragtune-demo")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"train", "train-raft", "answer-eval"}  # two training runs and the evaluation
    assert all(runs[name].data.metrics["val_loss"] > 0 for name in ("train", "train-raft"))
    metrics = runs["answer-eval"].data.metrics
    assert "raft_rag_k_1.f1" in metrics and "raft_rag_vs_fine_tuned_rag.f1_diff_low" in metrics


def test_demo_config_rejects_typos_and_fields_it_owns(tmp_path):
    settings = demo_settings(tmp_path, "some/model")
    with pytest.raises(ConfigError, match="max_stepz.*did you mean 'max_steps'"):
        validate_data(DemoConfig, {**settings, "train": {"max_stepz": 3}}, "demo.yaml")
    rerank = {"model": "some/reranker"}
    twice = {**settings, "rerank": rerank, "serve": {"retriever": {"rerank": rerank}}}
    with pytest.raises(ConfigError, match="rerank is set both"):
        validate_data(DemoConfig, twice, "demo.yaml")
    with pytest.raises(ConfigError, match="output_dir.*set by the demo itself"):
        validate_data(DemoConfig, {**settings, "train": {"output_dir": "x"}}, "demo.yaml")
    quick = DemoConfig.model_validate({**settings, "quick": {"held_out": 1, "train": {"max_steps": 1}}})
    variant = quick.quick_variant()
    assert (variant.held_out, variant.train_job().max_steps) == (1, 1)
    assert variant.train_job().micro_batch_size == 2  # merged, not replaced
    assert variant.work_dir == Path(f"{quick.work_dir}-quick")  # the full run's folder stays as it is
    assert variant.train_job().output_dir.is_relative_to(variant.work_dir)
    elsewhere = {**settings, "quick": {"work_dir": str(tmp_path / "q")}}
    assert DemoConfig.model_validate(elsewhere).quick_variant().work_dir == tmp_path / "q"


def test_demo_names_the_command_that_makes_a_missing_input(tmp_path):
    from ragtune.demo.pipeline import check_inputs

    config = DemoConfig.model_validate(demo_settings(tmp_path, tmp_path / "no-model"))
    with pytest.raises(InputError, match="point documents and questions at your files"):
        check_inputs(config)
    write_benchmark(tmp_path)
    with pytest.raises(InputError, match="ragtune model import"):
        check_inputs(config)


def test_a_question_asked_twice_stays_in_one_part(tmp_path):
    from ragtune.demo.pipeline import split_pairs

    pairs = [{"question": f"Question {n}?", "answer": f"Answer {n}."} for n in range(12)]
    repeats = [
        {**pair, "question": f"  {pair['question'].upper()} ", "answer": "Said again."} for pair in pairs
    ]
    write_jsonl(tmp_path / "qa.jsonl", pairs + repeats)
    config = DemoConfig.model_validate(
        {**demo_settings(tmp_path, "some/model"), "held_out": 4, "validation": 3}
    )
    split = split_pairs(config)

    def asked(part):
        return {same_words_key(pair["question"]) for pair in part}

    assert (len(asked(split.held_out)), len(asked(split.validation)), len(asked(split.train))) == (4, 3, 5)
    sizes = (len(split.held_out), len(split.validation), len(split.train))
    assert sizes == (8, 6, 10)  # each question with its repeat
    with pytest.raises(InputError, match="12 distinct questions, held_out \\+ validation take 12"):
        split_pairs(config.model_copy(update={"held_out": 6, "validation": 6}))
