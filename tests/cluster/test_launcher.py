"""Rendered cluster configs: Ray's own validator for the launcher YAML, structure for KubeRay."""

import importlib
import json

import pytest
import yaml

from ragtune.cluster.launcher import (
    ClusterConfig,
    render_kuberay,
    render_launcher,
    render_rayjob,
    render_rayservice,
)
from ragtune.cluster.tiers import load_tiers
from ragtune.core.config import load_config, validate_data
from ragtune.core.errors import ConfigError
from tests.helpers import ROOT, run_cli

CLOUD = [ROOT / "configs" / "cluster.yaml", ROOT / "configs" / "cluster" / "gcp.yaml"]
ALL = [*CLOUD, ROOT / "configs" / "cluster" / "kubernetes.yaml"]


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_launcher_yaml_passes_rays_validator(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load_config(ClusterConfig, path)
    rendered = render_launcher(config)
    validate_config(prepare_config(yaml.safe_load(yaml.safe_dump(rendered))))
    tiers = load_tiers()
    workers = {k: v for k, v in rendered["available_node_types"].items() if not k.startswith("head")}
    assert set(workers) == set(config.worker_tiers)
    for name, node_type in workers.items():
        tier = tiers.get(name)
        assert node_type["resources"][f"tier:{name}"] == 1000
        assert node_type["resources"].get("GPU", 0) == tier.gpus
        assert (node_type["min_workers"], node_type["max_workers"]) == (
            tier.min_nodes,
            tier.max_nodes,
        )
        if tier.gpus:
            assert node_type["resources"][f"accelerator_type:{tier.accelerator_type}"] == 1
    assert rendered["available_node_types"][rendered["head_node_type"]]["resources"]["CPU"] == 0


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_kuberay_has_one_group_per_tier_with_matching_resources(path):
    config = load_config(ClusterConfig, path)
    (cluster,) = render_kuberay(config)
    assert cluster["kind"] == "RayCluster" and cluster["spec"]["enableInTreeAutoscaling"]
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert list(groups) == config.worker_tiers
    tiers = load_tiers()
    for name, group in groups.items():
        tier = tiers.get(name)
        container = group["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert limits == container["resources"]["requests"]
        assert limits["cpu"] == str(int(tier.cpus))
        assert limits.get("nvidia.com/gpu") == (str(tier.gpus) if tier.gpus else None)
        assert (group["minReplicas"], group["maxReplicas"]) == (tier.min_nodes, tier.max_nodes)
        advertised = json.loads(json.loads(group["rayStartParams"]["resources"]))
        assert advertised == {f"tier:{name}": 1000}
        if tier.gpus:
            assert group["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_rayjob_and_rayservice_wrap_the_cluster():
    config = load_config(ClusterConfig, ALL[-1])
    job = render_rayjob(config, "ragtune train configs/train/x.yaml", "train-x")
    assert job["kind"] == "RayJob" and job["spec"]["entrypoint"].startswith("ragtune train")
    assert len(job["spec"]["rayClusterSpec"]["workerGroupSpecs"]) == 4
    service = render_rayservice(config, "configs/serve/python-docs.yaml", "rag")
    apps = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    module, _, attribute = apps[0]["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))  # Serve can import it


def test_cluster_config_errors():
    base = {"kind": "cluster", "provider": "aws", "head_tier": "cpu-small", "worker_tiers": ["x"]}
    with pytest.raises(ConfigError, match="region"):
        validate_data(ClusterConfig, {**base, "worker_tiers": ["cpu-small"]}, "c.yaml")
    with pytest.raises(ConfigError, match="known tiers"):
        validate_data(ClusterConfig, {**base, "region": "us-east-1"}, "c.yaml")


def test_render_cli(tmp_path):
    result = run_cli("cluster", "render", "configs/cluster.yaml", "--target", "kuberay")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "RayCluster"
