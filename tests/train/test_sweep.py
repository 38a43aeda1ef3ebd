"""`ragtune sweep`: a real Ray Tune search whose trials are Ray Train runs, ASHA on validation
answer F1, MLflow runs nested under the sweep's, and the best config written."""

from __future__ import annotations

import json

import pytest
import yaml

from ragtune.core.config import validate_data
from ragtune.core.errors import ConfigError, InputError
from ragtune.train.config import TrainJobConfig
from ragtune.train.sweep_config import SweepConfig
from tests.helpers import rag_rows, tiny_model, write_jsonl


@pytest.fixture(scope="module")
def train_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_jsonl(root / "train.jsonl", rag_rows(64))
    write_jsonl(root / "val.jsonl", rag_rows(16, seed=1))
    config = {
        "kind": "train",
        "base_model": str(tiny_model(root)),
        "data": {"train_files": [str(root / "train.jsonl")], "validation_files": [str(root / "val.jsonl")]},
        "micro_batch_size": 4,
        "global_batch_size": 4,
        "max_steps": 8,
        "eval_every_steps": 4,
        "checkpoint_every_steps": 4,
        "optimizer": {"lr": 1e-3, "schedule": "constant"},
        "lora": {"r": 8, "alpha": 16},
        "output_dir": str(root / "run"),
        "tracking": {"experiment": "sweep-test"},
    }
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return root, path


def sweep_settings(root, train, **changes) -> dict:
    return {
        "train": str(train),
        "space": {"optimizer.lr": {"grid": [2e-2, 1e-7]}},
        "num_samples": 1,
        "scheduler": {"type": "asha", "grace_period_steps": 4},
        "output_dir": str(root / "sweep"),
        **changes,
    }


def test_a_sweep_runs_train_trials_stops_the_weak_one_and_writes_the_best_config(ray_cluster, train_config):
    from mlflow.tracking import MlflowClient

    from ragtune.train.sweep import run_sweep

    root, train = train_config
    config = SweepConfig.model_validate(sweep_settings(root, train, metric="val_answer_f1"))
    lines: list[str] = []
    result = run_sweep(config, progress=lines.append)

    by_lr = {trial.params["optimizer.lr"]: trial for trial in result.trials}
    assert set(by_lr) == {2e-2, 1e-7} and len(lines) == 2
    assert by_lr[2e-2].status == "finished" and by_lr[2e-2].step == 8
    assert by_lr[1e-7].status == "stopped early at step 4"  # ASHA: worse at the first rung
    assert result.best is by_lr[2e-2] and by_lr[2e-2].val_answer_f1 > by_lr[1e-7].val_answer_f1
    assert by_lr[2e-2].val_loss < by_lr[1e-7].val_loss  # the loss is reported beside the F1
    assert (root / "sweep" / "trials" / by_lr[2e-2].trial_id / "model" / "adapter_config.json").is_file()

    best = validate_data(TrainJobConfig, yaml.safe_load(result.best_config.read_text()), "best.yaml")
    assert best.optimizer.lr == 2e-2 and best.output_dir == root / "run" and not best.tracking.tags
    assert best.answer_eval is not None  # the sweep turned answer F1 on; the config says so
    saved = json.loads((root / "sweep" / "sweep.json").read_text())
    assert saved["best"]["trial_id"] == result.best.trial_id and len(saved["trials"]) == 2

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.info.run_id == result.mlflow_run_id)
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and parent.data.metrics["best_val_answer_f1"] == pytest.approx(
        result.best.val_answer_f1
    )
    with pytest.raises(InputError, match="exists and is not empty"):
        run_sweep(config)  # never writes over a sweep


def test_a_sweep_config_checks_its_space_against_the_train_config(train_config):
    root, train = train_config
    with pytest.raises(ConfigError, match=r"space.optimizer.lrr.*did you mean 'lr'"):
        validate_data(SweepConfig, sweep_settings(root, train, space={"optimizer.lrr": {"choice": [1]}}), "s")
    with pytest.raises(ConfigError, match="lora.r.*greater than or equal to 1"):
        validate_data(SweepConfig, sweep_settings(root, train, space={"lora.r": {"choice": [0, 8]}}), "s")
    with pytest.raises(ConfigError, match="needs low < high"):
        validate_data(
            SweepConfig, sweep_settings(root, train, space={"optimizer.lr": {"uniform": [1, 1]}}), "s"
        )
    with pytest.raises(ConfigError, match="exactly one of"):
        validate_data(
            SweepConfig,
            sweep_settings(root, train, space={"lora.r": {"choice": [8], "randint": [1, 4]}}),
            "s",
        )


def trial(trial_id: str, val_loss: float | None, f1: float | None, status: str = "finished"):
    from ragtune.train.sweep import Trial

    return Trial(trial_id, {"optimizer.lr": 1e-3}, val_loss, f1, 8, status, "out")


def test_the_best_trial_is_the_lowest_loss_or_the_highest_f1_among_finished_ones():
    from ragtune.train.sweep import best_trial

    trials = [
        trial("a", 0.9, 0.30),
        trial("b", 0.8, 0.25),
        trial("c", 0.5, 0.90, status="stopped early at step 4"),  # from an earlier step: not chosen
        trial("d", float("nan"), None),
    ]
    assert best_trial(trials, "val_loss").trial_id == "b"
    assert best_trial(trials, "val_answer_f1").trial_id == "a"
    assert best_trial(trials[2:], "val_loss").trial_id == "c"  # none finished: the best stopped one
    assert best_trial(trials[3:], "val_loss") is None and best_trial([], "val_answer_f1") is None
