"""Render the autoscaling cluster from configs/cluster.yaml and the tiers: Ray cluster-launcher
YAML (for `ray up`) and KubeRay manifests (RayCluster, RayJob, RayService)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ragtune.cluster.tiers import HardwareTier, TiersFile, load_tiers
from ragtune.core.config import StrictModel

GPU_NODE_SELECTOR = {  # GKE/EKS label values for accelerator types
    "A10G": "nvidia-a10g",
    "H100": "nvidia-h100-80gb",
    "A100": "nvidia-tesla-a100",
    "L4": "nvidia-l4",
    "T4": "nvidia-tesla-t4",
}


class ClusterConfig(StrictModel):
    """Where the cluster runs and which tiers it is made of."""

    kind: Literal["cluster"] = "cluster"
    cluster_name: str = Field("ragtune", description="Cluster name.")
    provider: Literal["aws", "gcp", "kubernetes"] = Field(description="Cloud or Kubernetes.")
    region: str | None = Field(None, description="Cloud region (aws, gcp).")
    availability_zone: str | None = Field(None, description="Zone(s), comma-separated.")
    project_id: str | None = Field(None, description="GCP project.")
    namespace: str = Field("default", description="Kubernetes namespace.")
    head_tier: str = Field(description="Tier of the head node (runs no work itself).")
    worker_tiers: list[str] = Field(min_length=1, description="Tiers the autoscaler may add.")
    image: str = Field("rayproject/ray:2.60.0-py311", description="Container image.")
    idle_timeout_minutes: float = Field(10, gt=0, description="Idle nodes go after this.")
    ssh_user: str = Field("ubuntu", description="SSH user for cloud VMs.")
    setup_commands: list[str] = Field(
        default_factory=lambda: ["pip install 'ragtune[gpu] @ git+https://example.com/ragtune'"],
        description="Commands run on every node after boot.",
    )
    tiers_file: Path | None = Field(
        None, description="Tiers file; default the one in effect (--tiers, RAGTUNE_TIERS, else shipped)."
    )

    @model_validator(mode="after")
    def _cloud_needs_region(self) -> ClusterConfig:
        if self.provider in ("aws", "gcp") and not self.region:
            raise ValueError(f"provider {self.provider} needs a region")
        if self.provider == "gcp" and not self.project_id:
            raise ValueError("provider gcp needs project_id")
        tiers = load_tiers(self.tiers_file)
        for name in [self.head_tier, *self.worker_tiers]:
            tiers.get(name)
        return self


def _resources(tier: HardwareTier) -> dict[str, Any]:
    """What a node of the tier advertises to Ray: CPUs, GPUs, accelerator, tier resource."""
    resources: dict[str, Any] = {"CPU": int(tier.cpus), **tier.node_resources()}
    if tier.gpus:
        resources["GPU"] = tier.gpus
        resources[f"accelerator_type:{tier.accelerator_type}"] = 1
    return resources


def render_launcher(config: ClusterConfig, tiers: TiersFile | None = None) -> dict[str, Any]:
    """A Ray cluster-launcher config: one `available_node_types` entry per tier."""
    tiers = tiers or load_tiers(config.tiers_file)
    head = tiers.get(config.head_tier)
    node_types: dict[str, Any] = {
        f"head-{head.name}": {
            "resources": {**_resources(head), "CPU": 0},  # the head schedules, it does not work
            "node_config": _node_config(config, head),
        }
    }
    for name in config.worker_tiers:
        tier = tiers.get(name)
        node_types[name] = {
            "min_workers": tier.min_nodes,
            "max_workers": tier.max_nodes,
            "resources": _resources(tier),
            "node_config": _node_config(config, tier),
            **({"labels": tier.labels} if tier.labels else {}),
        }
    provider: dict[str, Any] = {"type": config.provider, "region": config.region}
    if config.availability_zone:
        provider["availability_zone"] = config.availability_zone
    if config.provider == "gcp":
        provider["project_id"] = config.project_id
    return {
        "cluster_name": config.cluster_name,
        "max_workers": sum(tiers.get(n).max_nodes for n in config.worker_tiers),
        "idle_timeout_minutes": config.idle_timeout_minutes,
        "provider": provider,
        "auth": {"ssh_user": config.ssh_user},
        "docker": {
            "image": config.image,
            "container_name": "ray_container",
            "run_options": ["--ulimit nofile=65536:65536"],
        },
        "available_node_types": node_types,
        "head_node_type": f"head-{head.name}",
        "setup_commands": list(config.setup_commands),
    }


def _node_config(config: ClusterConfig, tier: HardwareTier) -> dict[str, Any]:
    if config.provider == "aws":
        return {
            "InstanceType": tier.instance_types.get("aws", "m6i.2xlarge"),
            "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 256}}],
        }
    node: dict[str, Any] = {
        "machineType": tier.instance_types.get("gcp", "n2-standard-8"),
        "disks": [
            {"boot": True, "autoDelete": True, "type": "PERSISTENT", "initializeParams": {"diskSizeGb": 256}}
        ],
    }
    if tier.gpus:
        node["guestAccelerators"] = [
            {
                "acceleratorType": GPU_NODE_SELECTOR.get(tier.accelerator_type or "", "nvidia-l4"),
                "acceleratorCount": tier.gpus,
            }
        ]
        node["scheduling"] = [{"onHostMaintenance": "TERMINATE"}]
    return node


def render_kuberay(config: ClusterConfig, tiers: TiersFile | None = None) -> list[dict[str, Any]]:
    """A RayCluster with one autoscaled worker group per tier."""
    tiers = tiers or load_tiers(config.tiers_file)
    head = tiers.get(config.head_tier)
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": config.cluster_name, "namespace": config.namespace},
        "spec": {
            "rayVersion": "2.60.0",
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {"idleTimeoutSeconds": int(config.idle_timeout_minutes * 60)},
            "headGroupSpec": {
                "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                "template": _pod(config, head, "ray-head"),
            },
            "workerGroupSpecs": [_worker_group(config, tiers.get(name)) for name in config.worker_tiers],
        },
    }
    return [cluster]


def _worker_group(config: ClusterConfig, tier: HardwareTier) -> dict[str, Any]:
    return {
        "groupName": tier.name,
        "replicas": tier.min_nodes,
        "minReplicas": tier.min_nodes,
        "maxReplicas": tier.max_nodes,
        # KubeRay passes this verbatim to `ray start --resources`, quotes included.
        "rayStartParams": {"resources": json.dumps(json.dumps(tier.node_resources()))},
        "template": _pod(config, tier, "ray-worker"),
    }


def _pod(config: ClusterConfig, tier: HardwareTier, container: str) -> dict[str, Any]:
    quantities = {"cpu": str(int(tier.cpus)), "memory": f"{int(tier.memory_gb)}Gi"}
    if tier.gpus:
        quantities["nvidia.com/gpu"] = str(tier.gpus)
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": container,
                "image": config.image,
                "resources": {"requests": dict(quantities), "limits": dict(quantities)},
            }
        ],
        "nodeSelector": dict(tier.labels),
    }
    if tier.gpus:
        accelerator = GPU_NODE_SELECTOR.get(tier.accelerator_type or "", "nvidia")
        spec["nodeSelector"]["cloud.google.com/gke-accelerator"] = accelerator
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": {"ragtune.io/tier": tier.name}}, "spec": spec}


def render_rayjob(config: ClusterConfig, entrypoint: str, name: str) -> dict[str, Any]:
    """A RayJob running `entrypoint` (e.g. `ragtune train configs/train/x.yaml`) on the cluster."""
    cluster = render_kuberay(config)[0]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": config.namespace},
        "spec": {
            "entrypoint": entrypoint,
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": cluster["spec"],
        },
    }


def render_rayservice(config: ClusterConfig, serve_config_path: str, name: str) -> dict[str, Any]:
    """A RayService whose Serve app is built by `ragtune.serve.app:app_builder` from a serve config."""
    import yaml

    cluster = render_kuberay(config)[0]
    apps = {
        "applications": [
            {
                "name": "ragtune",
                "route_prefix": "/",
                "import_path": "ragtune.serve.app:app_builder",
                "args": {"config": serve_config_path},
            }
        ]
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": config.namespace},
        "spec": {"serveConfigV2": yaml.safe_dump(apps), "rayClusterConfig": cluster["spec"]},
    }
