"""Hardware tiers: parsing, validation and the mapping onto Ray resource requests."""

import pytest

from cluster.configfile import ConfigError, load_config
from cluster.tiers import (
    TIER_RESOURCE_UNITS,
    TiersFile,
    TierUnavailable,
    check_schedulable,
    data_remote_args,
    load_tiers,
    scaling_config,
    serve_actor_options,
    worker_resources,
)


@pytest.fixture(scope="module")
def shipped():
    return load_tiers()


def test_shipped_tiers_have_local_cpu_and_gpu_tiers(shipped):
    assert {"local", "cpu-small", "gpu-a10g-x1", "gpu-h100-x8"} <= set(shipped.tiers)
    assert shipped.get("gpu-h100-x8").gpus == 8
    assert shipped.get("gpu-h100-x8").accelerator_type == "H100"
    assert shipped.get("local").name == "local"


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ("{cpus: 0, memory_gb: 8, cost_per_hour: 1}", "tiers.t.cpus", "greater than 0"),
        ("{cpus: 2, memory_gb: 8, cost_per_hour: -1}", "tiers.t.cost_per_hour", "greater than"),
        ("{cpus: 2, memory_gb: 8, cost_per_hour: 1, gpus: 2}", "tiers.t", "accelerator_type"),
        (
            "{cpus: 2, memory_gb: 8, cost_per_hour: 1, min_nodes: 3, max_nodes: 2}",
            "tiers.t",
            "min_nodes",
        ),
        ("{cpus: two, memory_gb: 8, cost_per_hour: 1}", "tiers.t.cpus", "number"),
        ("{memory_gb: 8, cost_per_hour: 1}", "tiers.t.cpus", "required"),
    ],
)
def test_bad_tier_values_name_the_field(tmp_path, spec, field, reason):
    path = tmp_path / "tiers.yaml"
    path.write_text(f"tiers:\n  t: {spec}\n")
    with pytest.raises(ConfigError) as info:
        load_config(TiersFile, path)
    assert info.value.field == field
    assert reason in info.value.reason


def test_unknown_tier_lists_known_and_suggests(shipped):
    with pytest.raises(ConfigError) as info:
        shipped.get("gpu-a10g")
    assert "gpu-h100-x8" in str(info.value)
    assert info.value.suggestion == "gpu-a10g-x1"


def test_gpu_tier_maps_to_gpu_workers_on_its_nodes(shipped):
    tier = shipped.get("gpu-h100-x8")
    config = scaling_config(tier, num_workers=8)
    assert config.num_workers == 8 and config.use_gpu
    assert config.accelerator_type == "H100"
    assert config.resources_per_worker["GPU"] == 1
    assert config.resources_per_worker["tier:gpu-h100-x8"] == 1
    assert config.resources_per_worker["CPU"] == 192 // 8 - 1


def test_cpu_tier_maps_to_cpu_workers(shipped):
    tier = shipped.get("local")
    config = scaling_config(tier, num_workers=2)
    assert not config.use_gpu and config.accelerator_type is None
    assert config.resources_per_worker == {"CPU": 1.0, "tier:local": 1.0}
    assert tier.node_resources() == {"tier:local": TIER_RESOURCE_UNITS}


def test_serve_and_data_options_pin_the_tier(shipped):
    gpu = shipped.get("gpu-a10g-x1")
    options = serve_actor_options(gpu, num_cpus=0.5, num_gpus=1)
    assert options == {
        "num_cpus": 0.5,
        "num_gpus": 1,
        "resources": {"tier:gpu-a10g-x1": 1.0},
        "accelerator_type": "A10G",
    }
    args = data_remote_args(gpu)
    assert args["num_gpus"] == 1 and args["accelerator_type"] == "A10G"
    assert args["resources"] == {"tier:gpu-a10g-x1": 1.0}
    cpu_args = data_remote_args(shipped.get("local"), num_cpus=0.5)
    assert cpu_args == {"num_cpus": 0.5, "num_gpus": 0, "resources": {"tier:local": 1.0}}


def test_schedulable_on_local_tier(ray_cluster, shipped):
    tier = shipped.get("local")
    check_schedulable(tier, worker_resources(tier), count=2)


def test_unsatisfiable_tier_says_what_it_needs_and_what_exists(ray_cluster, shipped):
    tier = shipped.get("gpu-h100-x8")
    with pytest.raises(TierUnavailable) as info:
        check_schedulable(tier, worker_resources(tier), count=8)
    message = str(info.value)
    assert "gpu-h100-x8" in message and "GPU=1" in message and "H100" in message
    assert "tiers=tier:local" in message


def test_too_many_workers_for_local_tier(ray_cluster, shipped):
    tier = shipped.get("local")
    with pytest.raises(TierUnavailable, match="3 worker"):
        check_schedulable(tier, worker_resources(tier), count=3)
