"""Render KubeRay manifests from the cluster config and the tiers: a RayCluster with one
autoscaled worker group per tier, and RayJob / RayService resources that run a ragtune job or
the Serve app on such a cluster. Every pod runs the ragtune image with Serve's fast path on;
token auth is on; the dashboard is reachable only inside the cluster (`kubectl port-forward`
with the token)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from ragtune.cluster.cluster_config import ClusterConfig
from ragtune.cluster.launcher import GPU_ACCELERATORS
from ragtune.cluster.serve_env import SERVE_NODE_ENV
from ragtune.cluster.tiers import TIER_LABEL, TIERS_ENV, HardwareTier, TiersFile, load_tiers, tiers_file

RAY_VERSION = "2.60.0"
JOB_FILES = "/etc/ragtune/job"  # where a RayJob's or RayService's config and tiers are mounted
JOB_TIERS = "tiers.yaml"


def render_kuberay(config: ClusterConfig, tiers: TiersFile | None = None) -> list[dict[str, Any]]:
    """A RayCluster with one autoscaled worker group per tier."""
    return [_resource(config, "RayCluster", config.cluster_name, _cluster_spec(config, tiers))]


def _cluster_spec(
    config: ClusterConfig, tiers: TiersFile | None = None, volume: dict[str, Any] | None = None
) -> dict[str, Any]:
    tiers = tiers or load_tiers(config.tiers_file)
    head = tiers.get(config.head_tier)
    auth: dict[str, Any] = {"mode": "token"}
    if config.auth_token_secret:
        auth["secretName"] = config.auth_token_secret
    return {
        "rayVersion": RAY_VERSION,
        "authOptions": auth,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {"idleTimeoutSeconds": int(config.idle_timeout_minutes * 60)},
        "headGroupSpec": {
            # In the pod, every interface (the operator and the job submitter call the dashboard);
            # the head Service stays ClusterIP: outside the cluster only through port-forward.
            "serviceType": "ClusterIP",
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "labels": head.node_labels(),
            "template": _pod(config, head, "ray-head", volume),
        },
        "workerGroupSpecs": [_worker_group(config, tiers.get(n), volume) for n in config.worker_tiers],
    }


def _resource(config: ClusterConfig, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": config.namespace},
        "spec": spec,
    }


def _worker_group(config: ClusterConfig, tier: HardwareTier, volume: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "groupName": tier.name,
        "replicas": tier.min_nodes,
        "minReplicas": tier.min_nodes,
        "maxReplicas": tier.max_nodes,
        # KubeRay passes this verbatim to `ray start --resources`, quotes included.
        "rayStartParams": {"resources": json.dumps(json.dumps(tier.node_resources()))},
        "labels": tier.node_labels(),  # KubeRay starts the node with these Ray labels
        "template": _pod(config, tier, "ray-worker", volume),
    }


def _pod(
    config: ClusterConfig, tier: HardwareTier, container: str, volume: dict[str, Any] | None
) -> dict[str, Any]:
    quantities = {"cpu": str(int(tier.cpus)), "memory": f"{int(tier.memory_gb)}Gi"}
    if tier.gpus:
        quantities["nvidia.com/gpu"] = str(tier.gpus)
    main: dict[str, Any] = {
        "name": container,
        "image": config.required_image(tier.gpus),
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "env": [{"name": name, "value": value} for name, value in SERVE_NODE_ENV.items()],
    }
    spec: dict[str, Any] = {"containers": [main], "nodeSelector": dict(tier.labels)}
    if volume is not None:
        main["volumeMounts"] = [{"name": volume["name"], "mountPath": JOB_FILES, "readOnly": True}]
        spec["volumes"] = [volume]
    if tier.gpus:
        accelerator = GPU_ACCELERATORS.get(tier.accelerator_type or "", "nvidia")
        spec["nodeSelector"]["cloud.google.com/gke-accelerator"] = accelerator
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": {TIER_LABEL: tier.name}}, "spec": spec}


def _job_files(config: ClusterConfig, name: str, job_config: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ConfigMap holding the job's config and the tiers file in effect, and the pod volume
    that mounts it at JOB_FILES on every node."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-files", "namespace": config.namespace},
        "data": {job_config.name: job_config.read_text(), JOB_TIERS: tiers_file().read_text()},
    }
    volume = {"name": "ragtune-job", "configMap": {"name": f"{name}-files"}}
    return config_map, volume


def render_rayjob(config: ClusterConfig, verb: str, job_config: Path, name: str) -> list[dict[str, Any]]:
    """A ConfigMap with the job's config, and a RayJob running `ragtune VERB CONFIG` on a
    cluster of the configured tiers, torn down when the job ends."""
    config_map, volume = _job_files(config, name, job_config)
    entrypoint = shlex.join(["ragtune", *verb.split(), f"{JOB_FILES}/{job_config.name}"])
    runtime_env = {"env_vars": {TIERS_ENV: f"{JOB_FILES}/{JOB_TIERS}"}}
    spec = {
        "entrypoint": entrypoint,
        "runtimeEnvYAML": yaml.safe_dump(runtime_env),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 600,
        "rayClusterSpec": _cluster_spec(config, volume=volume),
    }
    return [config_map, _resource(config, "RayJob", name, spec)]


def render_rayservice(config: ClusterConfig, serve_config: Path, name: str) -> list[dict[str, Any]]:
    """A ConfigMap with the serve config, and a RayService whose Serve app is built by the
    `app_builder` that `ragtune serve` uses, from that config."""
    config_map, volume = _job_files(config, name, serve_config)
    app = {
        "name": "ragtune",
        "route_prefix": "/",
        "import_path": "ragtune.serve.app:app_builder",
        "args": {"config": f"{JOB_FILES}/{serve_config.name}"},
        "runtime_env": {"env_vars": {TIERS_ENV: f"{JOB_FILES}/{JOB_TIERS}"}},
    }
    spec = {
        "serveConfigV2": yaml.safe_dump({"applications": [app]}, sort_keys=False),
        "rayClusterConfig": _cluster_spec(config, volume=volume),
    }
    return [config_map, _resource(config, "RayService", name, spec)]
