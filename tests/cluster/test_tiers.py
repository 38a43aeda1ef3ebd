"""Hardware tiers: parsing, validation, the tiers file in effect, and the resource policy
(Ray requests, torch threads)."""

import pytest

from ragtune.cluster.resources import (
    TierUnavailable,
    check_schedulable,
    cpus_per_worker,
    data_remote_args,
    scaling_config,
    serve_actor_options,
    torch_threads,
    worker_resources,
)
from ragtune.cluster.tiers import (
    TIER_RESOURCE_UNITS,
    TiersFile,
    embedded_tier,
    get_tier,
    load_tiers,
    tiers_file,
)
from ragtune.core.config import load_config
from ragtune.core.errors import ConfigError


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


def test_one_thread_rule_for_every_process(shipped):
    local, gpu = shipped.get("local"), shipped.get("gpu-h100-x8")
    assert torch_threads(local, local.cpus) == 2  # a single-process stage: the whole node
    assert torch_threads(local, cpus_per_worker(local, 2)) == 1  # two data-parallel workers
    assert torch_threads(local, 0.25) == 1  # a fractional Serve replica: at least one
    assert torch_threads(local, 0.25, configured=3) == 3
    assert torch_threads(gpu, gpu.cpus) is None and cpus_per_worker(gpu, 8) is None  # the GPU works


def test_tiers_file_in_effect_follows_ragtune_tiers(tmp_path, monkeypatch):
    custom = tmp_path / "mine.yaml"
    local, edge = "{cpus: 1, memory_gb: 2, cost_per_hour: 0}", "{cpus: 4, memory_gb: 8, cost_per_hour: 1}"
    custom.write_text(f"tiers:\n  local: {local}\n  edge: {edge}\n")
    assert tiers_file().name == "tiers.yaml" and tiers_file().is_file()  # shipped with the package
    monkeypatch.setenv("RAGTUNE_TIERS", str(custom))
    assert get_tier("edge").cpus == 4 and embedded_tier().cpus == 1
    with pytest.raises(ConfigError, match="not declared; known tiers: (edge, local|local, edge)"):
        get_tier("cpu-small")


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
