"""`ragtune sweep`: Ray Tune searches a train config's fields. Each trial is a Ray Train run on
the train config's tier (a Tune function trainable that runs the train job, with Train's results
forwarded to Tune), ASHA stops trials whose validation loss or answer F1 lags, every trial is an
MLflow run under the sweep's parent run, and the best trial's config is written as best.yaml."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragtune.cluster.resources import driver_resources
from ragtune.cluster.tiers import get_tier
from ragtune.core.atomic import write_json_atomic, write_text_atomic
from ragtune.core.config import validate_data
from ragtune.core.errors import InputError
from ragtune.core.table import markdown_table
from ragtune.core.tracking import start_run
from ragtune.train.config import TrainJobConfig
from ragtune.train.sweep_config import METRIC_MODES, SweepConfig, trial_data
from ragtune.train.trainer import check_inputs

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under its parent
METRICS = ("val_loss", "val_answer_f1")  # what a trial reports at each evaluation


@dataclass
class Trial:
    """One trial's values and outcome."""

    trial_id: str
    params: dict[str, Any]
    val_loss: float | None
    val_answer_f1: float | None
    step: int | None
    status: str
    output_dir: str

    def score(self, metric: str) -> float | None:
        """The trial's last value of `metric`, if it reported a finite one."""
        value = getattr(self, metric)
        return value if value is not None and math.isfinite(value) else None


@dataclass
class SweepResult:
    """Every trial, the best one, where best.yaml went and how long the sweep took."""

    trials: list[Trial]
    best: Trial
    best_config: Path
    seconds: float
    mlflow_run_id: str | None
    metric: str = "val_loss"

    def table(self) -> str:
        """The trials, best first, with their values and validation metrics."""
        keys = list(self.best.params)
        metrics = [m for m in METRICS if any(t.score(m) is not None for t in self.trials)]
        rows = [
            [
                t.trial_id,
                *(f"{t.params[k]:.3g}" if isinstance(t.params[k], float) else str(t.params[k]) for k in keys),
                *("—" if t.score(m) is None else f"{t.score(m):.4f}" for m in metrics),
                str(t.step or "—"),
                t.status,
            ]
            for t in sorted(self.trials, key=self._rank)
        ]
        return markdown_table(["trial", *keys, *metrics, "steps", "status"], rows, numeric_from=1)

    def _rank(self, trial: Trial) -> tuple[bool, float]:
        score = trial.score(self.metric)
        return score is None, (score or 0) * (-1 if METRIC_MODES[self.metric] == "max" else 1)

    def summary(self) -> str:
        return (
            f"{len(self.trials)} trials in {self.seconds / 60:.1f} min; best {self.best.trial_id} "
            f"{self.metric} {self.best.score(self.metric):.4f} with {self.best.params}; "
            f"config in {self.best_config}"
        )


def run_trial(params: dict[str, Any], base: dict[str, Any], trials_dir: str) -> None:
    """Tune function trainable: the train job with this trial's values; Train's reports (step and
    validation metrics at each checkpoint) reach Tune through TuneReportCallback."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from ragtune.train.trainer import run_train_job

    trial_id = tune.get_context().get_trial_id()
    job = validate_data(
        TrainJobConfig, trial_data(base, params, Path(trials_dir) / trial_id), f"trial {trial_id}"
    )
    run_train_job(job, callbacks=[TuneReportCallback()])


def _scheduler(config: SweepConfig):
    """ASHA on `step` (stops a trial at a rung where its metric is in the worse part),
    or FIFO. No max_t: a trial that reaches its last step must finish and publish its model."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if config.scheduler.type == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="step",
        grace_period=config.scheduler.grace_period_steps,
        reduction_factor=config.scheduler.reduction_factor,
        max_t=10**9,
    )


def _progress_callback(progress, metric: str):
    from ray import tune

    class Progress(tune.Callback):
        """A line per finished trial: its last value of the sweep's metric."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            value = (trial.last_result or {}).get(metric)
            shown = "—" if value is None else f"{value:.4f}"
            progress(f"  trial {trial.trial_id} done: {metric} {shown}, step {trial.last_result.get('step')}")

        def on_trial_error(self, iteration, trials, trial, **info):
            progress(f"  trial {trial.trial_id} failed: {trial.error_file}")

    return Progress()


def _trial(result, trials_dir: Path) -> Trial:
    """A Tune result as a Trial: its last validation metrics, and whether it ran to the end (its
    model published) or was stopped."""
    trial_id = str((result.metrics or {}).get("trial_id") or Path(result.path).name)
    history = result.metrics_dataframe

    def last(metric: str) -> float | None:
        values = [] if history is None or metric not in history else history[metric].dropna().tolist()
        return float(values[-1]) if values else None

    step = int(result.metrics["step"]) if result.metrics and "step" in result.metrics else None
    if result.error:
        status = f"failed: {str(result.error).strip().splitlines()[-1][:200]}"
    elif (trials_dir / trial_id / "model").is_dir():
        status = "finished"
    else:
        status = f"stopped early at step {step}"
    return Trial(
        trial_id,
        dict(result.config),
        last("val_loss"),
        last("val_answer_f1"),
        step,
        status,
        str(trials_dir / trial_id),
    )


def run_sweep(config: SweepConfig, progress=print) -> SweepResult:
    """Run the search on the connected Ray cluster; write sweep.json, sweep.md and best.yaml."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    base_job = config.base_job()
    check_inputs(base_job)
    out = config.output_dir.resolve()
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty", "give the sweep an output_dir of its own")
    trials_dir = out / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    tracking = config.tracking or base_job.tracking
    uri = tracking.uri(out)
    parent = start_run(uri, tracking.experiment, out.name, {"ragtune.job": "sweep"})
    parent.log_params(
        {"train": str(config.train), "num_samples": config.num_samples, "scheduler": config.scheduler.type}
        | {f"space.{k}": v.model_dump(exclude_none=True) for k, v in config.space.items()}
    )
    train_data = config.base_data()
    base = trial_data(train_data, {}, out, tags={PARENT_TAG: parent.run_id or ""})
    base["tracking"] = {**base.get("tracking", {}), "tracking_uri": uri, "experiment": tracking.experiment}
    # Trials run where the sweep runs: the train config's relative paths mean the same there.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, trials_dir=str(trials_dir)),
        driver_resources(get_tier(base_job.tier)),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={key: dimension.tune_domain() for key, dimension in config.space.items()},
        tune_config=tune.TuneConfig(
            metric=config.metric,
            mode=config.mode,
            num_samples=config.num_samples,
            scheduler=_scheduler(config),
            search_alg=BasicVariantGenerator(
                max_concurrent=config.max_concurrent_trials, random_state=config.seed
            ),
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(out),
            verbose=0,
            callbacks=[_progress_callback(progress, config.metric)],
        ),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    seconds = time.perf_counter() - started
    trials = [_trial(result, trials_dir) for result in grid]
    best = best_trial(trials, config.metric)
    if best is None:
        parent.finish("FAILED")
        first = trials[0].status if trials else "no trials ran"
        raise InputError(
            f"no trial of the sweep reported {config.metric} ({first})",
            f"see the trials under {trials_dir}",
        )
    best_config = out / "best.yaml"
    _write_best(config, train_data, best, best_config)
    write_json_atomic(
        out / "sweep.json",
        {
            "config": config.model_dump(mode="json"),
            "best": asdict(best),
            "trials": [asdict(t) for t in trials],
            "seconds": seconds,
        },
    )
    result = SweepResult(trials, best, best_config, seconds, parent.run_id, config.metric)
    write_text_atomic(out / "sweep.md", result.table() + "\n")
    parent.log_metrics(
        {f"best_{config.metric}": best.score(config.metric), "trials": len(trials), "seconds": seconds},
        step=0,
    )
    for name in ("sweep.json", "sweep.md", "best.yaml"):
        parent.log_artifact(out / name)
    parent.finish()
    return result


def best_trial(trials: list[Trial], metric: str) -> Trial | None:
    """The trial with the best score on `metric` among those that finished (a stopped trial's
    score is from an earlier step), else among all that reported one; None if none did."""
    scored = [t for t in trials if t.score(metric) is not None]
    finished = [t for t in scored if t.status == "finished"]
    pick = max if METRIC_MODES[metric] == "max" else min
    return pick(finished or scored, key=lambda t: t.score(metric), default=None)


def _write_best(config: SweepConfig, base: dict[str, Any], best: Trial, path: Path) -> None:
    """The train config with the best trial's values (its own output_dir and tracking kept)."""
    import yaml

    data = trial_data(base, best.params, Path(base["output_dir"]))
    header = (
        f"# ragtune sweep {config.output_dir}: the best of {config.num_samples} trials "
        f"({config.metric} {best.score(config.metric):.4f}) on {config.train}, with {best.params}.\n"
    )
    write_text_atomic(path, header + yaml.safe_dump(data, sort_keys=False))
