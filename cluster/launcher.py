"""Render the Ray cluster-launcher YAML (`ray up`) from the cluster config and the tiers: one node
type per tier, every node running ragtune from its wheel or image, token auth on, the dashboard
on the head's loopback (reached with `ray dashboard CLUSTER.yaml`, an SSH tunnel)."""

from __future__ import annotations

import shlex
from importlib.resources import files
from pathlib import Path
from typing import Any

from ragtune.cluster.cluster_config import BASE_IMAGE, GPU_BASE_IMAGE, ClusterConfig, is_url
from ragtune.cluster.serve_env import SERVE_NODE_ENV
from ragtune.cluster.tiers import HardwareTier, TiersFile, load_tiers

GPU_ACCELERATORS = {  # GCP accelerator type names
    "A10G": "nvidia-a10g",
    "H100": "nvidia-h100-80gb",
    "A100": "nvidia-tesla-a100",
    "L4": "nvidia-l4",
    "T4": "nvidia-tesla-t4",
}
NODE_DIR = "~/ragtune"  # on every node: the wheel, the install script and the token
TOKEN = f"{NODE_DIR}/auth_token"
SERVE_ENV = " ".join(f"{name}={value}" for name, value in SERVE_NODE_ENV.items())
RAY_ENV = f"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={TOKEN} {SERVE_ENV}"
START = "ulimit -n 65536; ray start --object-manager-port=8076 --disable-usage-stats"


def node_resources(tier: HardwareTier) -> dict[str, Any]:
    """What a node of the tier advertises to Ray: CPUs, GPUs, accelerator, tier resource."""
    resources: dict[str, Any] = {"CPU": int(tier.cpus), **tier.node_resources()}
    if tier.gpus:
        resources["GPU"] = tier.gpus
        resources[f"accelerator_type:{tier.accelerator_type}"] = 1
    return resources


def render_launcher(config: ClusterConfig, tiers: TiersFile | None = None) -> dict[str, Any]:
    """A Ray cluster-launcher config: one `available_node_types` entry per tier."""
    tiers = tiers or load_tiers(config.tiers_file)
    wheel = config.wheel_file()
    token = config.token_file()
    head = tiers.get(config.head_tier)
    common_setup = [f"chmod 600 {TOKEN}", *config.setup_commands]
    node_types: dict[str, Any] = {
        f"head-{head.name}": {
            "resources": {**node_resources(head), "CPU": 0},  # the head schedules, it does not work
            "node_config": _node_config(config, head),
        }
    }
    for name in config.worker_tiers:
        tier = tiers.get(name)
        node_types[name] = {
            "min_workers": tier.min_nodes,
            "max_workers": tier.max_nodes,
            "resources": node_resources(tier),
            "node_config": _node_config(config, tier),
            "labels": {**tier.labels, **tier.node_labels()},
        }
        if tier.gpus:  # the GPU image, and the wheel with its GPU extras (replaces the common setup)
            node_types[name]["docker"] = {"worker_image": config.node_image(tier.gpus) or GPU_BASE_IMAGE}
            node_types[name]["worker_setup_commands"] = [*common_setup, *_install(wheel, tier)]
    return {
        "cluster_name": config.cluster_name,
        "max_workers": sum(tiers.get(n).max_nodes for n in config.worker_tiers),
        "idle_timeout_minutes": config.idle_timeout_minutes,
        "provider": _provider(config),
        "auth": {"ssh_user": config.ssh_user},
        "docker": _docker(config, head),
        "file_mounts": _file_mounts(token, wheel),
        "available_node_types": node_types,
        "head_node_type": f"head-{head.name}",
        "setup_commands": common_setup,
        "head_setup_commands": _install(wheel, head),
        "worker_setup_commands": _install(wheel, None),
        # Token auth and Serve's fast path on every Ray process; the dashboard (Jobs API) on the
        # head's loopback only.
        "head_start_ray_commands": [
            "ray stop",
            f"{RAY_ENV}; {START} --head --port=6379 --dashboard-host=127.0.0.1 "
            "--autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": ["ray stop", f"{RAY_ENV}; {START} --address=$RAY_HEAD_IP:6379"],
    }


def _file_mounts(token: Path, wheel: str | None) -> dict[str, str]:
    """Node path → local path: the token, and the install script, wheel and hash to install."""
    mounts = {f"{NODE_DIR}/auth_token": str(token)}
    if wheel is not None:
        mounts[f"{NODE_DIR}/install-ragtune.sh"] = str(files("ragtune.cluster") / "install-ragtune.sh")
        if not is_url(wheel):
            mounts[f"{NODE_DIR}/{Path(wheel).name}"] = wheel
            if Path(f"{wheel}.sha256").is_file():
                mounts[f"{NODE_DIR}/{Path(wheel).name}.sha256"] = f"{wheel}.sha256"
    return mounts


def _docker(config: ClusterConfig, head: HardwareTier) -> dict[str, Any]:
    """The image nodes run: the ragtune image if set, else Ray's (the wheel installed on it)."""
    docker: dict[str, Any] = {
        "image": config.image or BASE_IMAGE,
        "container_name": "ray_container",
        "run_options": ["--ulimit nofile=65536:65536"],
    }
    if head.gpus:
        docker["head_image"] = config.node_image(head.gpus) or GPU_BASE_IMAGE
    return docker


def _provider(config: ClusterConfig) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": config.provider, "region": config.region}
    if config.availability_zone:
        provider["availability_zone"] = config.availability_zone
    if config.provider == "gcp":
        provider["project_id"] = config.project_id
    return provider


def _install(wheel: str | None, tier: HardwareTier | None) -> list[str]:
    """The command installing ragtune's wheel on a node, with the extras of the tier's hardware;
    none when the image carries ragtune."""
    if wheel is None:
        return []
    where = shlex.quote(wheel) if is_url(wheel) else f"{NODE_DIR}/{Path(wheel).name}"  # ~ expands
    extras = " gpu" if tier is not None and tier.gpus else ""
    return [f"bash {NODE_DIR}/install-ragtune.sh {where}{extras}"]


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
                "acceleratorType": GPU_ACCELERATORS.get(tier.accelerator_type or "", "nvidia-l4"),
                "acceleratorCount": tier.gpus,
            }
        ]
        node["scheduling"] = [{"onHostMaintenance": "TERMINATE"}]
    return node
