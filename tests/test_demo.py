"""The main job end to end on a reduced scale, plus its scoring and config edges."""

from __future__ import annotations

import json
import math

import pytest

from cluster.configfile import ConfigError, validate_data
from demo.config import DemoConfig
from retrieval.python_docs import short_answer
from serve.scoring import rouge_l, token_f1
from tests.train_fixtures import COUNTRIES, tiny_model, write_jsonl

PORT = 8125


def test_token_f1_and_rouge_l_match_hand_computed_values():
    # tokens after normalisation: [cat, sat, on, mat] vs [cat, sat, mat]: 3 shared
    assert token_f1("The cat sat on the mat.", "a cat sat mat") == pytest.approx(2 * 0.75 * 1 / 1.75)
    # LCS of [cat, mat, sat] and [cat, sat, mat] is 2 → P = R = 2/3
    assert rouge_l("cat mat sat", "cat sat mat") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and rouge_l("dog", "cat") == 0.0


def test_short_answer_keeps_prose_and_drops_markup_and_code():
    text = ("\nUse :func:`sorted` or see :pep:`8` and `the docs <https://x.org>`_::\n\n"
            "   sorted(x)\n\n.. note:: skip me\n\nA second sentence. A third one.\n")  # fmt: skip
    assert short_answer(text) == "Use sorted or see PEP 8 and the docs: A second sentence. A third one."
    assert short_answer(text, max_words=9) == "Use sorted or see PEP 8 and the docs:"


def demo_settings(root, model) -> dict:
    return {
        "work_dir": str(root / "work"), "benchmark_dir": str(root / "bench"), "base_model": str(model),
        "knowledge_base": ["countries/"], "held_out": 3, "context_k": 2,
        "index": {"chunking": {"max_tokens": 64, "overlap_tokens": 0}},
        "train": {"lora": {"r": 4, "alpha": 8}, "max_steps": 2, "micro_batch_size": 2,
                  "global_batch_size": 2, "eval_every_steps": 2, "checkpoint_every_steps": 2,
                  "data": {"validation_fraction": 0.2}},
        "serve": {"port": PORT, "retriever": {"scaling": {"num_cpus": 0.1}},
                  "generator": {"max_new_tokens": 8, "scaling": {"num_cpus": 0.2}}},
        "answers": {"max_tokens": 8, "concurrency": 2, "pricing_tier": "cpu-small"},
    }  # fmt: skip


def write_benchmark(root) -> None:
    bench = root / "bench"
    bench.mkdir()
    corpus = [{"id": f"countries/{c.lower()}#0", "title": c, "text": f"The capital of {c} is {cap}."}
              for c, cap in COUNTRIES]  # fmt: skip
    corpus.append({"id": "other/tea#0", "title": "Tea", "text": "Steep green tea for two minutes."})
    write_jsonl(bench / "corpus.jsonl", corpus)
    write_jsonl(bench / "faq.jsonl", [
        {"id": f"countries/{c.lower()}#0", "question": f"What is the capital of {c}?",
         "answer": f"The capital of {c} is {cap}."} for c, cap in COUNTRIES
    ])  # fmt: skip


def test_reduced_demo_runs_every_stage(ray_cluster, tmp_path):
    import mlflow.tracking
    from ray import serve

    from demo.pipeline import run_demo

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
    assert not {f"What is the capital of {i.split('/')[1].split('#')[0]}?" for i in held} & \
        {row["question"].lower() for row in trained}  # fmt: skip
    assert all(len(row["context"]) == 2 and row["answer"] for row in trained)
    assert json.loads((work / "index" / "manifest.json").read_text())["num_chunks"] == len(COUNTRIES)
    assert (work / "train" / "model" / "adapter_config.json").is_file()

    table = (work / "report" / "answers.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == \
        ["base", "RAG", "fine-tuned", "fine-tuned + RAG"]  # fmt: skip
    report = json.loads((work / "report" / "answers.json").read_text())
    assert len(report["systems"]) == 4
    for system in report["systems"]:
        assert all(
            math.isfinite(system[key]) for key in ("f1", "rouge_l", "latency_p50_s", "cost_per_1k_usd")
        )
        assert len(system["answers"]) == 3
        assert (system["recall_at_k"] is not None) == system["retrieval"]
    assert (work / "report" / "answers.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.system for s in result.scores] == ["base", "RAG", "fine-tuned", "fine-tuned + RAG"]

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
    from demo.pipeline import check_inputs

    config = DemoConfig.model_validate(demo_settings(tmp_path, tmp_path / "no-model"))
    with pytest.raises(FileNotFoundError, match="ragtune data python-docs"):
        check_inputs(config)
    write_benchmark(tmp_path)
    with pytest.raises(FileNotFoundError, match="ragtune model import"):
        check_inputs(config)
