"""Hardware tiers: immutable values declared in a tiers file, looked up by name.

The tiers file in effect is RAGTUNE_TIERS (what `--tiers` sets) or the `configs/tiers.yaml`
shipped inside ragtune. A node of tier `x` advertises the custom resource `tier:x`
(TIER_RESOURCE_UNITS of it); `ragtune.cluster.resources` turns a tier into Ray requests.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from ragtune.core.config import StrictModel, load_config
from ragtune.core.errors import ConfigError

TIERS_ENV = "RAGTUNE_TIERS"
TIER_RESOURCE_UNITS = 1000
TIER_LABEL = "ragtune.io/tier"  # the Ray node label naming a node's tier
EMBEDDED_TIER = "local"  # the tier an embedded Ray on this machine advertises


class HardwareTier(StrictModel):
    """One kind of node: its size, accelerator, price and autoscaling bounds."""

    name: str = Field("", description="Tier name; filled from its key in tiers.yaml.")
    description: str = Field("", description="What the tier is for.")
    cpus: float = Field(gt=0, description="CPUs per node.")
    memory_gb: float = Field(gt=0, description="Memory per node in GiB.")
    gpus: int = Field(0, ge=0, description="GPUs per node.")
    accelerator_type: str | None = Field(
        None, description="Ray accelerator type of the GPUs, e.g. H100, A10G; needed with gpus."
    )
    cost_per_hour: float = Field(ge=0, description="Price of one node per hour, in USD.")
    min_nodes: int = Field(0, ge=0, description="Nodes the autoscaler keeps running.")
    max_nodes: int = Field(1, ge=1, description="Most nodes the autoscaler may start.")
    instance_types: dict[Literal["aws", "gcp"], str] = Field(
        default_factory=dict, description="Cloud instance type per provider, for the launcher."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Node labels of the tier.")

    @model_validator(mode="after")
    def _consistent(self) -> HardwareTier:
        if self.gpus and not self.accelerator_type:
            raise ValueError("a tier with gpus must name its accelerator_type (e.g. A10G, H100)")
        if not self.gpus and self.accelerator_type:
            raise ValueError("accelerator_type is set but gpus is 0")
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) exceeds max_nodes ({self.max_nodes})")
        return self

    @property
    def resource_name(self) -> str:
        """The custom Ray resource that nodes of this tier advertise."""
        return f"tier:{self.name}"

    def node_resources(self) -> dict[str, float]:
        """Custom resources a node of this tier advertises (`ray start --resources`)."""
        return {self.resource_name: TIER_RESOURCE_UNITS}

    def node_labels(self) -> dict[str, str]:
        """Ray node labels of this tier's nodes (`ray start --labels`), for `label_selector`;
        work is placed by the tier resource, which every ragtune node has too."""
        return {TIER_LABEL: self.name}


class TiersFile(StrictModel):
    """The tiers file: a mapping from tier name to its declaration."""

    kind: Literal["tiers"] = "tiers"
    tiers: dict[str, HardwareTier] = Field(description="Tiers by name.")

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tiers"), dict):
            named = {}
            for key, spec in data["tiers"].items():
                named[key] = {**spec, "name": key} if isinstance(spec, dict) else spec
            data = {**data, "tiers": named}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> TiersFile:
        if not self.tiers:
            raise ValueError("declare at least one tier")
        return self

    def get(self, name: str) -> HardwareTier:
        """The tier called `name`, or a ConfigError listing the known ones."""
        if name not in self.tiers:
            close = difflib.get_close_matches(name, list(self.tiers), n=1)
            raise ConfigError(
                "tiers",
                "tier",
                f"tier '{name}' is not declared; known tiers: {', '.join(self.tiers)}",
                close[0] if close else None,
            )
        return self.tiers[name]


def tiers_file() -> Path:
    """The tiers file in effect: RAGTUNE_TIERS, else the one shipped with ragtune."""
    if configured := os.environ.get(TIERS_ENV):
        return Path(configured)
    return Path(str(importlib.resources.files("ragtune.configs") / "tiers.yaml"))


def use_tiers_file(path: str | Path) -> Path:
    """Make `path` the tiers file of this process and of the Ray workers it starts; it is read
    now (a bad file fails here, naming itself) and kept: a Ray job's working dir, where a submitted
    tiers file lies, can be replaced under a running driver."""
    resolved = Path(path).resolve()
    load_tiers(resolved)
    os.environ[TIERS_ENV] = str(resolved)
    return resolved


def load_tiers(path: str | Path | None = None) -> TiersFile:
    """Load and validate a tiers file (the one in effect by default), once per path and process."""
    return _read_tiers(Path(path or tiers_file()))


@functools.lru_cache(maxsize=8)
def _read_tiers(path: Path) -> TiersFile:
    return load_config(TiersFile, path)


def get_tier(name: str) -> HardwareTier:
    """Look up one tier by name in the tiers file in effect."""
    return load_tiers().get(name)


def embedded_tier() -> HardwareTier:
    """The tier an embedded Ray on this machine advertises (every verb uses the same one)."""
    return get_tier(EMBEDDED_TIER)


def _declared_tier(name: str) -> str:
    get_tier(name)
    return name


TierName = Annotated[str, AfterValidator(_declared_tier)]
"""A config field naming a tier: validated against the tiers file when the config loads."""
