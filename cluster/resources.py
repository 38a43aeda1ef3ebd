"""The resource policy: how a tier becomes Ray requests (Train workers, Serve replicas, Ray Data
stages, tasks), how many threads torch computes on in each, and whether a running cluster can
place the work at all. Every job asks for its tier's `tier:<name>` resource, so it can only
land on that tier's nodes.
"""

from __future__ import annotations

from typing import Any

from ragtune.cluster.tiers import HardwareTier
from ragtune.core.errors import RagtuneError


def torch_threads(tier: HardwareTier, cpus: float, configured: int | None = None) -> int | None:
    """Threads torch computes on in one process of a job on `tier`: `configured` when given;
    on GPU tiers None (torch's default: the GPU does the work); on CPU tiers the `cpus` the
    process stands for, at least one. A single-process stage stands for the whole node (one actor
    with every core beats several that each load the model), data-parallel workers for their
    share of it, a Serve replica for the CPUs it reserves. Ray would otherwise set
    OMP_NUM_THREADS to the CPUs reserved, which is 1 for fractional reservations."""
    if configured:
        return configured
    return None if tier.gpus else max(1, int(cpus))


def cpus_per_worker(tier: HardwareTier, num_workers: int) -> float | None:
    """CPUs each data-parallel worker reserves: on CPU tiers the workers split a node's cores;
    on GPU tiers None (`worker_resources`' default beside each GPU)."""
    if tier.gpus:
        return None
    return float(max(1, int(tier.cpus) // num_workers))


def set_torch_threads(threads: int | None) -> None:
    """Apply `torch_threads` in the process that computes (a Ray worker, actor or replica)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


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


def driver_resources(tier: HardwareTier) -> dict[str, float]:
    """What a process that only launches a job's workers asks for (a Ray Tune trial running a
    Ray Train job): a sliver of the tier's resource and no CPU, so it lands on the tier without
    holding a core its workers need."""
    return {tier.resource_name: 0.001}


def scaling_config(tier: HardwareTier, num_workers: int, worker_cpus: float | None = None):
    """A Ray Train ScalingConfig that places `num_workers` workers on nodes of `tier`."""
    from ray.train import ScalingConfig

    resources = worker_resources(tier, worker_cpus)
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


class TierUnavailable(RagtuneError):
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
        f"but the cluster has: {have}",
        "pick a tier the cluster has, or --address a cluster with such nodes",
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
