"""Typed config of `ragtune sweep`: a train config, the fields to search and how."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ragtune.core.config import StrictModel, load_config, set_field, validate_data
from ragtune.core.errors import ConfigError
from ragtune.core.tracking import TrackingConfig
from ragtune.train.config import TrainJobConfig

KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
METRIC_MODES = {"val_loss": "min", "val_answer_f1": "max"}  # what each metric's best is


class SearchDimension(StrictModel):
    """One field's values: exactly one of grid [values] (every one, in each of num_samples),
    choice [values] (one drawn per trial), uniform / loguniform [low, high], randint [low, high)."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDimension:
        given = [name for name in KINDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}")
        low_high = getattr(self, given[0]) if given[0] not in ("grid", "choice") else None
        if low_high is not None and not low_high[0] < low_high[1]:
            raise ValueError(f"{given[0]} needs low < high, got {list(low_high)}")
        if given[0] == "loguniform" and low_high[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        if given[0] in ("grid", "choice") and not getattr(self, given[0]):
            raise ValueError(f"{given[0]} needs at least one value")
        return self

    def samples(self) -> list[Any]:
        """Values that must all make a valid train config: every listed one, else both bounds."""
        if self.grid is not None or self.choice is not None:
            return self.grid or self.choice
        low, high = self.uniform or self.loguniform or self.randint
        return [low, high - 1] if self.randint else [low, high]

    def tune_domain(self):
        from ray import tune

        if self.grid is not None:
            return tune.grid_search(self.grid)
        if self.choice is not None:
            return tune.choice(self.choice)
        if self.uniform:
            return tune.uniform(*self.uniform)
        if self.loguniform:
            return tune.loguniform(*self.loguniform)
        return tune.randint(*self.randint)


class SchedulerConfig(StrictModel):
    """Early stopping across trials: ASHA on the sweep's metric at checkpoint steps, or none."""

    type: Literal["asha", "fifo"] = Field("asha", description="asha stops weak trials early; fifo runs all.")
    grace_period_steps: int = Field(8, ge=1, description="asha: steps before a trial may be stopped.")
    reduction_factor: int = Field(2, ge=2, description="asha: keep 1/N of the trials at each rung.")


class SweepConfig(StrictModel):
    """`ragtune sweep`: a Ray Tune search over a train config's fields; each trial a Ray Train run
    on the train config's tier and an MLflow run under the sweep's; the best config written."""

    kind: Literal["sweep"] = "sweep"
    train: Path = Field(description="The train config every trial starts from.")
    space: dict[str, SearchDimension] = Field(
        min_length=1, description="Dotted train-config field → its values (e.g. optimizer.lr)."
    )
    num_samples: int = Field(4, ge=1, description="Trials drawn; with grid fields, draws per grid point.")
    max_concurrent_trials: int = Field(1, ge=1, description="Trials at once (each holds its workers).")
    metric: Literal["val_loss", "val_answer_f1"] = Field(
        "val_loss",
        description="What chooses, on validation data: val_loss (lowest) or val_answer_f1 (highest; "
        "turns on the train config's answer_eval with its defaults when it is not set).",
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    seed: int = Field(0, description="Seed of the search's random draws.")
    output_dir: Path = Field(description="Trials, sweep.json and best.yaml go here; must not exist.")
    tracking: TrackingConfig | None = Field(
        None, description="Where the parent run goes; default: the train config's tracking."
    )

    @model_validator(mode="after")
    def _space_fits_train_config(self) -> SweepConfig:
        base = self.base_data()
        for key, dimension in self.space.items():
            for value in dimension.samples():
                trial = trial_data(base, {key: value}, self.output_dir / "check")
                try:
                    validate_data(TrainJobConfig, trial, f"{self.train} with {key}={value!r}")
                except ConfigError as exc:
                    raise ValueError(f"space.{key}: {exc}") from None
        return self

    def base_data(self) -> dict[str, Any]:
        """The train config as loaded (checked), as plain data."""
        try:
            data = load_config(TrainJobConfig, self.train).model_dump(mode="json", exclude_defaults=True)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.metric == "val_answer_f1":
            data.setdefault("answer_eval", {})
        return data | {"kind": "train"}

    @property
    def mode(self) -> Literal["min", "max"]:
        return METRIC_MODES[self.metric]

    def base_job(self) -> TrainJobConfig:
        return validate_data(TrainJobConfig, self.base_data(), str(self.train))


def trial_data(
    base: dict[str, Any], params: dict[str, Any], output_dir: Path, tags: dict | None = None
) -> dict:
    """The base train config's data with the trial's values set and its own output folder."""
    import copy

    data = copy.deepcopy(base)
    for key, value in params.items():
        set_field(data, key, value, "sweep space")
    data["output_dir"] = str(output_dir)
    if tags:
        set_field(data, "tracking.tags", {**data.get("tracking", {}).get("tags", {}), **tags}, "sweep")
    return data
