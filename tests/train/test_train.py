"""Fine-tuning on real Ray Train (2 gloo workers), DeepSpeed ZeRO-2/3, PEFT LoRA and MLflow."""

from __future__ import annotations

import json
import threading
import time

import pytest

from ragtune.core.artifacts import ModelManifest
from ragtune.core.config import validate_data
from ragtune.core.errors import ConfigError
from ragtune.train.config import TrainJobConfig
from ragtune.train.trainer import TrainError, run_train_job
from tests.helpers import rag_rows, run_cli, tiny_model, write_jsonl


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    bad = [{"question": "Q?", "answer": ""}, {"unrelated": 1}, {"question": "Q?"}]
    write_jsonl(root / "train.jsonl", rag_rows(96) + bad)
    write_jsonl(root / "val.jsonl", rag_rows(16, seed=1))
    return root, tiny_model(root)


def job(workspace, name, **overrides) -> TrainJobConfig:
    root, model = workspace
    base = {
        "base_model": str(model),
        "data": {
            "train_files": [str(root / "train.jsonl")],
            "validation_files": [str(root / "val.jsonl")],
            "max_length": 256,
        },
        "num_workers": 2,
        "micro_batch_size": 4,
        "global_batch_size": 8,
        "max_steps": 12,
        "eval_every_steps": 4,
        "log_every_steps": 2,
        "checkpoint_every_steps": 6,
        "optimizer": {"lr": 2e-2, "schedule": "constant"},
        "lora": {"r": 16, "alpha": 32},
        "output_dir": str(root / name),
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and base.get(key) else value
    return TrainJobConfig.model_validate(base)


def mlflow_history(config: TrainJobConfig, run_id: str, metric: str) -> list:
    from mlflow.tracking import MlflowClient

    return MlflowClient(config.tracking_uri()).get_metric_history(run_id, metric)


def val_losses(config: TrainJobConfig, run_id: str) -> dict[int, float]:
    return {m.step: m.value for m in mlflow_history(config, run_id, "val_loss")}


def test_zero3_lora_two_workers_learns_resumes_is_tracked_and_exports(ray_cluster, workspace):
    """The one default Ray Train run: ZeRO-3 + LoRA on 2 workers, stopped, refused a silent
    restart, resumed with the step count carried on, tracked in MLflow, exported merged."""
    config = job(
        workspace,
        "zero3",
        max_steps=6,
        deepspeed={"zero_stage": 3},
        answer_eval={"max_examples": 6, "max_new_tokens": 8, "batch_size": 2},
    )
    first = run_train_job(config)
    assert first.metrics["step"] == 6
    import torch

    states = sorted((config.output_dir / "ray").rglob("*mp_rank_00_model_states.pt"))
    saved = torch.load(states[-1], weights_only=False)["module"]
    # no frozen base weights: only the adapter, and the output layer DeepSpeed keeps because it is
    # tied to the (frozen, left out) input embeddings
    assert [key for key in saved if "lora_" not in key] == ["base_model.model.lm_head.weight"]
    with pytest.raises(TrainError, match="--resume"):
        run_train_job(config)
    longer = config.model_copy(update={"max_steps": 12})
    result = run_train_job(longer, resume=True)
    assert result.metrics["step"] == 12
    assert result.mlflow_run_id == first.mlflow_run_id
    steps = {m.step for m in mlflow_history(config, first.mlflow_run_id, "train_loss")}
    assert {2, 4, 6, 8, 10, 12} <= steps
    val = val_losses(config, result.mlflow_run_id)
    assert {4, 8, 12} <= set(val) and val[12] < val[4], val  # LoRA on a random base: slow but falling
    # answer F1 from both ranks' greedy answers (ZeRO-3: each rank decodes until both are done)
    f1 = {m.step: m.value for m in mlflow_history(config, first.mlflow_run_id, "val_answer_f1")}
    assert set(val) == set(f1) and all(0 <= value <= 1 for value in f1.values()), f1

    from mlflow.tracking import MlflowClient

    run = MlflowClient(config.tracking_uri()).get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["deepspeed.zero_stage"] == "3"
    assert run.data.params["data.bad_rows"] == "3"
    assert run.data.params["tier.cost_per_hour"] == "0.0"
    assert {"train_loss", "val_loss", "lr", "tokens_per_s", "estimated_cost_usd"} <= set(run.data.metrics)
    manifest = ModelManifest.read(result.model_dir)
    assert manifest.adapter and manifest.base_model == config.base_model
    assert manifest.final_metrics["step"] == 12 and manifest.versions["deepspeed"] == "0.19.8"

    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(result.model_dir)
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora and all(p.abs().sum() > 0 for p in lora)  # gathered, trained, not empty shards
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    prompt = tokenizer("What is the capital of Peru?", return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > prompt["input_ids"].shape[1]

    merged = run_cli("export", str(config.output_dir), "--merge")
    assert merged.returncode == 0, merged.stderr[-2000:]
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(config.output_dir / "merged")
    model.eval()
    assert (plain(**prompt).logits - model(**prompt).logits).abs().max() < 1e-4


@pytest.mark.slow
def test_zero2_lora_learns(ray_cluster, workspace):
    config = job(workspace, "zero2")
    result = run_train_job(config)
    val = val_losses(config, result.mlflow_run_id)
    assert len(val) == 3 and val[12] < val[4], val
    assert ModelManifest.read(result.model_dir).adapter


@pytest.mark.slow
def test_full_finetune_loss_falls_measurably(ray_cluster, workspace):
    config = job(workspace, "full", lora=None, optimizer={"lr": 5e-3})
    result = run_train_job(config)
    val = val_losses(config, result.mlflow_run_id)
    assert val[12] < 0.6 * val[4], val
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(result.model_dir).num_parameters() > 0


def train_worker_pids() -> list[int]:
    """PIDs of live Ray Train worker processes (their process title names the actor)."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"ray::RayTrainWorker" in handle.read():
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return sorted(pids)


@pytest.mark.slow
def test_killed_worker_is_recovered_from_checkpoint(ray_cluster, workspace):
    import os
    import signal

    config = job(workspace, "killed", max_steps=16, checkpoint_every_steps=4, max_failures=1)
    killed = []

    def kill_a_worker_after_first_checkpoint():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if list((config.output_dir / "ray").rglob("checkpoint_*")):
                pids = train_worker_pids()
                if pids:
                    os.kill(pids[-1], signal.SIGKILL)
                    killed.append(pids[-1])
            time.sleep(0.5)

    killer = threading.Thread(target=kill_a_worker_after_first_checkpoint, daemon=True)
    killer.start()
    result = run_train_job(config)
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    assert result.metrics["step"] == 16


def test_without_validation_files_the_training_rows_are_split(ray_cluster, workspace):
    from ragtune.cluster.tiers import get_tier
    from ragtune.train.data import prepare_data

    config = job(workspace, "split").data.model_copy(
        update={"validation_files": [], "validation_fraction": 0.25}
    )
    data = prepare_data(config, job(workspace, "split").base_model, 0, get_tier("local"))
    assert (data.train_rows, data.validation_rows) == (72, 24)  # 96 good rows of 99
    assert sum(data.bad_rows.values()) == 3
    assert set(data.train.columns()) == {"input_ids", "labels"}


def test_a_checkpoint_may_lack_only_frozen_weights():
    import torch

    from ragtune.train.loop import _load_module

    model = torch.nn.Linear(2, 2)
    model.weight.requires_grad_(False)
    _load_module({"bias": torch.ones(2)}, model)
    assert model.bias.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="bias"):
        _load_module({"weight": torch.ones(2, 2)}, model)
    with pytest.raises(RuntimeError, match="lora_A"):
        _load_module({"bias": torch.ones(2), "lora_A": torch.ones(2)}, model)


def test_bad_configs_fail_at_load_with_the_field(workspace):
    root, model = workspace
    base = job(workspace, "x").model_dump(mode="json")
    cases = [
        ({"deepspeed": {"precision": "fp16"}}, "fp16 needs a GPU"),
        ({"global_batch_size": 6}, "multiple of micro_batch_size"),
        ({"deepspeed": {"zero_stage": 2, "offload_params": True}}, "zero_stage 3"),
        ({"tier": "gpu-a100"}, "known tiers"),
        ({"lora": {"alpah": 8}}, "did you mean 'alpha'"),
    ]
    for change, message in cases:
        data = {
            **base,
            **{k: {**base[k], **v} if isinstance(v, dict) and base.get(k) else v for k, v in change.items()},
        }
        with pytest.raises(ConfigError) as info:
            validate_data(TrainJobConfig, data, "train.yaml")
        assert message in str(info.value), (change, str(info.value))


def test_bad_rows_are_counted_by_reason(workspace):
    from ragtune.train.data import Tokenize

    root, model = workspace
    stage = Tokenize(str(model), {"train_files": ["x"], "max_length": 200})
    rows = [
        {"question": "Q?", "context": ["c"], "answer": "A."},
        {"question": "Q?", "context": ["c"], "answer": " "},
        {"instruction": None, "question": None, "messages": None},
        {"question": "Q?", "context": ["long words " * 200], "answer": "A."},
    ]
    batch = {
        key: [row.get(key) for row in rows]
        for key in ("question", "context", "answer", "instruction", "messages")
    }
    reasons = stage(batch)["bad"]
    assert reasons[0] == ""
    assert reasons[1] == "empty field 'answer'"
    assert reasons[2].startswith("unknown format")
    assert reasons[3] == "longer than max_length 200"


def test_train_cli_rejects_bad_config(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "kind: train\nbase_model: m\ndata: {train_files: [a.jsonl]}\n"
        "output_dir: out\nepochs: 1\nlearning_rate: 0.1\n"
    )
    result = run_cli("train", str(path))
    assert result.returncode == 2 and "learning_rate" in result.stderr


def test_resume_reopens_the_run_in_the_store_it_began_in(workspace, tmp_path):
    from mlflow.tracking import MlflowClient

    from ragtune.train.trainer import _open_tracking

    config = job(workspace, "older-run")
    run_dir = config.output_dir
    run_dir.mkdir()
    inside = f"sqlite:///{run_dir / 'mlflow.db'}"  # where runs begun before this version kept it
    client = MlflowClient(inside)
    run = client.create_run(client.create_experiment("older"))
    (run_dir / "run.json").write_text(json.dumps({"mlflow_run_id": run.info.run_id}))
    tracker = _open_tracking(config, None, run_dir / "run.json", None)
    assert tracker.tracking_uri == inside and config.tracking_uri() != inside
    tracker.log_metrics({"train_loss": 1.0}, 1)
    assert client.get_metric_history(run.info.run_id, "train_loss")[0].value == 1.0


@pytest.mark.slow
def test_a_killed_driver_resumes_from_its_last_checkpoint(workspace):
    """SIGKILL of `ragtune train` (driver and its embedded Ray) after a checkpoint: `--resume`
    continues from that checkpoint's step to max_steps; only the steps after the checkpoint are
    trained twice, and the final model is published."""
    import os
    import signal
    import subprocess

    import yaml

    from tests.helpers import RAGTUNE

    config = job(
        workspace, "driver-killed", num_workers=1, max_steps=16, checkpoint_every_steps=4, log_every_steps=1
    )
    path = config.output_dir.parent / "driver-killed.yaml"
    path.write_text(yaml.safe_dump({"kind": "train", **config.model_dump(mode="json")}))
    driver = subprocess.Popen(
        [RAGTUNE, "train", str(path)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((config.output_dir / "ray").rglob("checkpoint_*")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before its first checkpoint"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    while train_worker_pids() and time.monotonic() < deadline:  # orphaned workers may log on briefly
        time.sleep(0.5)
    run_id = json.loads((config.output_dir / "run.json").read_text())["mlflow_run_id"]
    before = [m.step for m in mlflow_history(config, run_id, "train_loss")]
    assert before and max(before) < 16 and not (config.output_dir / "model").exists()

    resumed = run_cli("train", str(path), "--resume", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [m.step for m in mlflow_history(config, run_id, "train_loss")]
    again = steps[len(before) :]
    start = again[0]  # the step after the checkpoint it resumed from
    assert (start - 1) % 4 == 0 and start - 1 <= max(before), (before, again)
    assert again == list(range(start, 17)), (before, again)  # none lost, none skipped
    repeated = sorted(set(before) & set(again))
    assert repeated == list(range(start, max(before) + 1))  # only the uncheckpointed tail
    assert ModelManifest.find(config.output_dir / "model") is not None


@pytest.mark.slow
def test_training_carries_on_when_mlflow_is_unreachable(ray_cluster, workspace, capsys):
    unreachable = "http://127.0.0.1:9"  # nothing listens on the discard port
    config = job(workspace, "no-mlflow", num_workers=1, max_steps=4, tracking={"tracking_uri": unreachable})
    result = run_train_job(config)
    assert result.metrics["step"] == 4 and result.mlflow_run_id is None
    assert ModelManifest.find(result.model_dir) is not None
    said = capsys.readouterr().out
    assert f"warning: MLflow at {unreachable}: starting a run failed" in said
    assert "the job carries on without tracking" in said


def test_answer_f1_scores_batched_greedy_answers_against_their_references(workspace):
    """The validation answer scorer splits each left-padded example into prompt and reference,
    and decodes prompts of different lengths together as each alone: a reference that is the
    model's own greedy answer scores 1, an unrelated one 0."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.train.answer_eval import AnswerScorer, prompts_and_references
    from ragtune.train.config import AnswerEvalConfig
    from ragtune.train.data import pad_batch

    _, model_dir = workspace
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [
        tokenizer(text)["input_ids"] for text in ("The capital of Peru", "What is the capital of Chile? The")
    ]
    alone = [
        model.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )[0, len(ids) :].tolist()
        for ids in prompts
    ]
    assert all(tokenizer.decode(answer, skip_special_tokens=True).strip() for answer in alone)
    unrelated = tokenizer("zzz qqq")["input_ids"]
    batch = pad_batch(
        {
            "input_ids": [p + a for p, a in zip(prompts, [alone[0], unrelated])],
            "labels": [[-100] * len(prompts[0]) + alone[0], [-100] * len(prompts[1]) + unrelated],
        },
        tokenizer.pad_token_id,
    )
    examples = prompts_and_references(batch)
    assert examples == [(prompts[0], alone[0]), (prompts[1], unrelated)]
    scorer = AnswerScorer(tokenizer, model.generation_config, AnswerEvalConfig(max_new_tokens=6), False)
    assert scorer.f1_sum(model, examples[:1], "cpu") == pytest.approx(1.0)
    assert scorer.f1_sum(model, examples, "cpu") == pytest.approx(
        1.0
    )  # batched: the first still 1, the other 0
