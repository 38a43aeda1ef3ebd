"""The main job end to end on a reduced scale, and its config edges."""

from __future__ import annotations

import json
import math

import pytest

from ragtune.core.artifacts import IndexManifest
from ragtune.core.config import validate_data
from ragtune.core.errors import ConfigError, InputError
from ragtune.demo.config import DemoConfig
from tests.helpers import COUNTRIES, tiny_model, write_jsonl

PORT = 8125


def demo_settings(root, model) -> dict:
    return {
        "work_dir": str(root / "work"),
        "benchmark_dir": str(root / "bench"),
        "base_model": str(model),
        "knowledge_base": ["countries/"],
        "held_out": 3,
        "context_k": 2,
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
    bench = root / "bench"
    bench.mkdir()
    corpus = [
        {"id": f"countries/{c.lower()}#0", "title": c, "text": f"The capital of {c} is {cap}."}
        for c, cap in COUNTRIES
    ]
    corpus.append({"id": "other/tea#0", "title": "Tea", "text": "Steep green tea for two minutes."})
    write_jsonl(bench / "corpus.jsonl", corpus)
    write_jsonl(
        bench / "faq.jsonl",
        [
            {
                "id": f"countries/{c.lower()}#0",
                "question": f"What is the capital of {c}?",
                "answer": f"The capital of {c} is {cap}.",
            }
            for c, cap in COUNTRIES
        ],
    )


def test_reduced_demo_runs_every_stage(ray_cluster, tmp_path):
    import mlflow.tracking
    from ray import serve

    from ragtune.demo.pipeline import run_demo

    serve.shutdown()  # a Serve left by another module listens on its own port; the demo starts its own
    write_benchmark(tmp_path)
    config = DemoConfig.model_validate(demo_settings(tmp_path, tiny_model(tmp_path)))
    result = run_demo(config)

    work = tmp_path / "work"
    kb = [json.loads(line) for line in (work / "knowledge_base.jsonl").read_text().splitlines()]
    assert len(kb) == len(COUNTRIES) and all(row["id"].startswith("countries/") for row in kb)
    held = [json.loads(line)["id"] for line in (work / "held_out.jsonl").read_text().splitlines()]
    trained = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    assert len(held) == 3 and len(trained) == len(COUNTRIES) - 3
    assert not {f"What is the capital of {i.split('/')[1].split('#')[0]}?" for i in held} & {
        row["question"].lower() for row in trained
    }
    assert all(len(row["context"]) == 2 and row["answer"] for row in trained)
    assert IndexManifest.read(work / "index").num_chunks == len(COUNTRIES)
    assert (work / "train" / "model" / "adapter_config.json").is_file()

    table = (work / "report" / "answers.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "base",
        "RAG",
        "fine-tuned",
        "fine-tuned + RAG",
    ]
    report = json.loads((work / "report" / "answers.json").read_text())
    assert len(report["systems"]) == 4
    for system in report["systems"]:
        assert all(
            math.isfinite(system[key]) for key in ("f1", "rouge_l", "latency_p50_s", "cost_per_1k_usd")
        )
        assert len(system["answers"]) == 3
        assert (system["recall_at_k"] is not None) == system["retrieval"]
    assert (work / "report" / "answers.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.system for s in result.answers.systems] == ["base", "RAG", "fine-tuned", "fine-tuned + RAG"]

    client = mlflow.tracking.MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ragtune-demo")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert {"answer-eval"} <= set(runs) and len(runs) == 2  # the training run and the evaluation
    assert "fine_tuned_rag.f1" in runs["answer-eval"].data.metrics


def test_demo_config_rejects_typos_and_fields_it_owns(tmp_path):
    settings = demo_settings(tmp_path, "some/model")
    with pytest.raises(ConfigError, match="max_stepz.*did you mean 'max_steps'"):
        validate_data(DemoConfig, {**settings, "train": {"max_stepz": 3}}, "demo.yaml")
    with pytest.raises(ConfigError, match="output_dir.*set by the demo itself"):
        validate_data(DemoConfig, {**settings, "train": {"output_dir": "x"}}, "demo.yaml")
    quick = DemoConfig.model_validate({**settings, "quick": {"held_out": 1, "train": {"max_steps": 1}}})
    variant = quick.quick_variant()
    assert (variant.held_out, variant.train_job().max_steps) == (1, 1)
    assert variant.train_job().micro_batch_size == 2  # merged, not replaced


def test_demo_names_the_command_that_makes_a_missing_input(tmp_path):
    from ragtune.demo.pipeline import check_inputs

    config = DemoConfig.model_validate(demo_settings(tmp_path, tmp_path / "no-model"))
    with pytest.raises(InputError, match="ragtune data python-docs"):
        check_inputs(config)
    write_benchmark(tmp_path)
    with pytest.raises(InputError, match="ragtune model import"):
        check_inputs(config)
