"""MLflow is a side channel: when it is unreachable or fails mid-run, the job is told once and
carries on (end to end: tests/train, `test_training_carries_on_when_mlflow_is_unreachable`)."""

from __future__ import annotations

from pathlib import Path

from ragtune.core.tracking import RunLogger, TrackingConfig, start_job_run
from ragtune.retrieval.config import EmbedderTuneConfig


def test_an_unreachable_store_gives_a_logger_without_a_run(tmp_path, capsys):
    unreachable = "http://127.0.0.1:9"  # nothing listens on the discard port
    config = EmbedderTuneConfig(
        documents=[str(tmp_path)],
        output_dir=tmp_path / "out",
        tracking=TrackingConfig(tracking_uri=unreachable),
    )
    tracker = start_job_run(config, "tune-embedder", "local", {})
    assert tracker.run_id is None
    tracker.log_metrics({"loss": 1.0}, 1)  # skipped, not raised
    tracker.log_artifact(Path(__file__))
    tracker.finish()
    said = capsys.readouterr().out
    assert said.count("warning: MLflow") == 1 and f"at {unreachable}: starting a run failed" in said


def test_a_store_that_fails_mid_run_is_said_once_then_skipped(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = EmbedderTuneConfig(
        documents=[str(tmp_path)], output_dir=tmp_path / "out", tracking=TrackingConfig(tracking_uri=store)
    )
    tracker = start_job_run(config, "tune-embedder", "local", {})
    tracker.log_metrics({"loss": 1.0}, 1)
    broken = RunLogger(store, "no-such-run")  # the store refuses every call for this run
    broken.log_metrics({"loss": 0.5}, 2)
    broken.log_metrics({"loss": 0.4}, 3)
    broken.finish()
    said = capsys.readouterr().out
    assert said.count("warning: MLflow") == 1 and "logging metrics failed" in said
    assert [m.value for m in tracker.client.get_metric_history(tracker.run_id, "loss")] == [1.0]
