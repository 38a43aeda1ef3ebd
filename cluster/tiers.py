"""Hardware tiers: immutable values from configs/tiers.yaml, and how they become Ray requests.

A node of tier `x` advertises the custom resource `tier:x` (TIER_RESOURCE_UNITS of it); every
worker, replica or actor of a job on tier `x` asks for one unit, so it can only land there.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from cluster.configfile import ConfigError, StrictModel, load_config

DEFAULT_TIERS_FILE = Path(__file__).resolve().parent.parent / "configs" / "tiers.yaml"
TIER_RESOURCE_UNITS = 1000


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


class TiersFile(StrictModel):
    """The tiers file: a mapping from tier name to its declaration."""

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


def load_tiers(path: str | Path | None = None) -> TiersFile:
    """Load and validate the tiers file (configs/tiers.yaml by default)."""
    return load_config(TiersFile, path or DEFAULT_TIERS_FILE)


def get_tier(name: str, path: str | Path | None = None) -> HardwareTier:
    """Look up one tier by name in the tiers file."""
    return load_tiers(path).get(name)


def _declared_tier(name: str) -> str:
    get_tier(name)
    return name


TierName = Annotated[str, AfterValidator(_declared_tier)]
"""A config field naming a tier: validated against the tiers file when the config loads."""


def worker_resources(
    tier: HardwareTier, cpus: float | None = None, gpus: float | None = None
) -> dict[str, float]:
    """Resources one worker on `tier` asks for: a GPU per worker on GPU tiers, else 1 CPU."""
    gpus = (1 if tier.gpus else 0) if gpus is None else gpus
    if cpus is None:
        cpus = max(1.0, tier.cpus // tier.gpus - 1) if tier.gpus else 1.0
    request = {"CPU": float(cpus), tier.resource_name: 1.0}
    if gpus:
        request["GPU"] = float(gpus)
    return request


def scaling_config(tier: HardwareTier, num_workers: int, cpus_per_worker: float | None = None):
    """A Ray Train ScalingConfig that places `num_workers` workers on nodes of `tier`."""
    from ray.train import ScalingConfig

    resources = worker_resources(tier, cpus_per_worker)
    return ScalingConfig(
        num_workers=num_workers,
        use_gpu=bool(tier.gpus),
        resources_per_worker=resources,
        accelerator_type=tier.accelerator_type,
    )


def serve_actor_options(tier: HardwareTier, num_cpus: float, num_gpus: float = 0) -> dict[str, Any]:
    """Serve `ray_actor_options` for a replica on `tier` (fractional CPUs allowed)."""
    options: dict[str, Any] = {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "resources": {tier.resource_name: 1.0},
    }
    if num_gpus and tier.accelerator_type:
        options["accelerator_type"] = tier.accelerator_type
    return options


def data_remote_args(
    tier: HardwareTier, num_cpus: float | None = None, num_gpus: float | None = None
) -> dict[str, Any]:
    """Ray Data `map_batches` remote args for an actor of a stage on `tier`."""
    resources = worker_resources(tier, num_cpus, num_gpus)
    args: dict[str, Any] = {
        "num_cpus": resources.pop("CPU"),
        "num_gpus": resources.pop("GPU", 0),
        "resources": resources,
    }
    if args["num_gpus"] and tier.accelerator_type:
        args["accelerator_type"] = tier.accelerator_type
    return args


class TierUnavailable(RuntimeError):
    """The running cluster has no node that can hold the work asked of a tier."""


def check_schedulable(tier: HardwareTier, request: dict[str, float], count: int = 1) -> None:
    """Fail before scheduling when no alive node of `tier` can hold `count` × `request`."""
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    tier_nodes = [n for n in nodes if n["Resources"].get(tier.resource_name, 0) > 0]
    if tier.accelerator_type:  # Ray advertises `accelerator_type:<T>` on nodes with that GPU
        request = {**request, f"accelerator_type:{tier.accelerator_type}": 0.001}
    per_node_fit = [_fits(n["Resources"], request) for n in tier_nodes]
    if sum(per_node_fit) >= count:
        return
    wanted = ", ".join(f"{k}={v:g}" for k, v in request.items())
    have = "; ".join(_describe_node(n) for n in nodes) or "no alive nodes"
    raise TierUnavailable(
        f"tier '{tier.name}' cannot be scheduled: {count} worker(s) each need {{{wanted}}}"
        f"{' on ' + tier.accelerator_type if tier.accelerator_type else ''}, "
        f"but the cluster has: {have}"
    )


def _fits(node_resources: dict[str, float], request: dict[str, float]) -> int:
    """How many copies of `request` fit in one node's total resources."""
    counts = [int(node_resources.get(name, 0) // amount) for name, amount in request.items() if amount]
    return min(counts) if counts else 0


def _describe_node(node: dict[str, Any]) -> str:
    resources = node["Resources"]
    tiers = [name for name in resources if name.startswith("tier:")]
    return (
        f"node {node['NodeManagerAddress']} "
        f"(CPU={resources.get('CPU', 0):g}, GPU={resources.get('GPU', 0):g}, "
        f"tiers={','.join(tiers) or 'none'})"
    )
