"""Rendered clusters: the launcher YAML through Ray's own validator, the KubeRay manifests through
KubeRay's v1 CRD schemas; every node runs ragtune from the wheel or image given, token auth on."""

import importlib
import json
import os
from pathlib import Path

import pytest
import yaml

from ragtune.cluster.cluster_config import ClusterConfig
from ragtune.cluster.kuberay import render_kuberay
from ragtune.cluster.launcher import render_launcher
from ragtune.cluster.tiers import load_tiers
from ragtune.core.config import load_config, validate_data
from ragtune.core.errors import ConfigError
from tests.helpers import ROOT, run_cli

CLOUD = [ROOT / "configs" / "cluster.yaml", ROOT / "configs" / "cluster" / "gcp.yaml"]
KUBERNETES = ROOT / "configs" / "cluster" / "kubernetes.yaml"
IMAGE = "registry.example/ragtune:0.1.0"
SCHEMAS_ENV = "RAGTUNE_KUBERAY_SCHEMAS"


@pytest.fixture(scope="module")
def node_files(tmp_path_factory):
    """A wheel folder as `make dist` leaves it, and a cluster token file."""
    root = tmp_path_factory.mktemp("dist")
    wheel = root / "ragtune-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel")
    (root / f"{wheel.name}.sha256").write_text(f"0  {wheel.name}\n")
    token = root / "cluster.token"
    token.write_text("t" * 64)
    return root, token


@pytest.fixture(scope="module")
def kuberay_schemas():
    """KubeRay's v1 CRD schemas: $RAGTUNE_KUBERAY_SCHEMAS, else ../shared/kuberay/ beside the checkout."""
    candidates = [Path(os.environ[SCHEMAS_ENV])] if os.environ.get(SCHEMAS_ENV) else []
    candidates.append(ROOT.parent / "shared" / "kuberay" / "kuberay-v1-schemas.json")
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text())
    pytest.skip(
        f"no KubeRay CRD schemas: set {SCHEMAS_ENV} to kuberay-v1-schemas.json ({candidates[-1]} is absent)"
    )


def cloud_config(path: Path, node_files, **changes) -> ClusterConfig:
    root, token = node_files
    return load_config(ClusterConfig, path, [f"wheel={root}", f"auth_token_file={token}"]).model_copy(
        update=changes
    )


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_launcher_yaml_passes_rays_validator_and_installs_the_wheel(path, node_files):
    from ray.autoscaler._private.util import prepare_config, validate_config

    root, token = node_files
    config = cloud_config(path, node_files)
    rendered = render_launcher(config)
    validate_config(prepare_config(yaml.safe_load(yaml.safe_dump(rendered))))
    tiers = load_tiers()
    workers = {k: v for k, v in rendered["available_node_types"].items() if not k.startswith("head")}
    assert set(workers) == set(config.worker_tiers)
    wheel = "ragtune-0.1.0-py3-none-any.whl"
    install = f"bash ~/ragtune/install-ragtune.sh ~/ragtune/{wheel}"
    assert rendered["head_setup_commands"] == [install] and rendered["worker_setup_commands"] == [install]
    for name, node_type in workers.items():
        tier = tiers.get(name)
        assert node_type["resources"][f"tier:{name}"] == 1000
        assert node_type["labels"]["ragtune.io/tier"] == name
        assert node_type["resources"].get("GPU", 0) == tier.gpus
        assert (node_type["min_workers"], node_type["max_workers"]) == (tier.min_nodes, tier.max_nodes)
        if tier.gpus:
            assert node_type["resources"][f"accelerator_type:{tier.accelerator_type}"] == 1
            assert node_type["docker"]["worker_image"].endswith("-gpu")
            assert node_type["worker_setup_commands"][-1] == f"{install} gpu"
    assert rendered["available_node_types"][rendered["head_node_type"]]["resources"]["CPU"] == 0
    mounts = rendered["file_mounts"]
    assert mounts[f"~/ragtune/{wheel}"] == str(root / wheel)
    assert mounts[f"~/ragtune/{wheel}.sha256"] == str(root / f"{wheel}.sha256")
    assert Path(mounts["~/ragtune/install-ragtune.sh"]).read_text().startswith("#!/usr/bin/env bash")
    assert mounts["~/ragtune/auth_token"] == str(token)
    for command in (rendered["head_start_ray_commands"][-1], rendered["worker_start_ray_commands"][-1]):
        assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN_PATH=~/ragtune/auth_token" in command
        assert "RAY_SERVE_USE_GRPC_BY_DEFAULT=1 RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0" in command
    assert "--dashboard-host=127.0.0.1" in rendered["head_start_ray_commands"][-1]
    assert "example.com" not in yaml.safe_dump(rendered)


def test_launcher_needs_ragtune_and_a_token_and_says_how(node_files, tmp_path):
    root, token = node_files
    bare = load_config(ClusterConfig, CLOUD[0], [f"auth_token_file={token}", "wheel=null"])
    with pytest.raises(ConfigError, match="wheel.*make dist"):
        render_launcher(bare)
    with pytest.raises(ConfigError, match="no ragtune wheel at"):
        render_launcher(bare.model_copy(update={"wheel": str(tmp_path)}))
    from_image = render_launcher(bare.model_copy(update={"image": IMAGE}))
    assert from_image["docker"]["image"] == IMAGE and from_image["worker_setup_commands"] == []
    missing = bare.model_copy(update={"wheel": str(root), "auth_token_file": tmp_path / "none"})
    with pytest.raises(ConfigError, match="auth_token_file.*does not exist.*token_hex"):
        render_launcher(missing)
    url = render_launcher(
        bare.model_copy(update={"wheel": "https://pkgs.example/ragtune-0.1.0-py3-none-any.whl"})
    )
    assert url["worker_setup_commands"] == [
        "bash ~/ragtune/install-ragtune.sh https://pkgs.example/ragtune-0.1.0-py3-none-any.whl"
    ]


def test_kuberay_cluster_validates_runs_the_image_and_has_token_auth(kuberay_schemas):
    import jsonschema

    config = load_config(ClusterConfig, KUBERNETES, [f"image={IMAGE}", f"gpu_image={IMAGE}-gpu"])
    (cluster,) = render_kuberay(config)
    jsonschema.validate(cluster, kuberay_schemas["RayCluster"])
    spec = cluster["spec"]
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert list(groups) == config.worker_tiers
    for pod in [spec["headGroupSpec"]["template"], *(g["template"] for g in groups.values())]:
        env = {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"]}
        assert env["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1"  # Serve's fast path on every node
    tiers = load_tiers()
    for name, group in groups.items():
        tier = tiers.get(name)
        container = group["template"]["spec"]["containers"][0]
        assert container["image"] == (f"{IMAGE}-gpu" if tier.gpus else IMAGE)
        limits = container["resources"]["limits"]
        assert limits == container["resources"]["requests"]
        assert limits["cpu"] == str(int(tier.cpus))
        assert limits.get("nvidia.com/gpu") == (str(tier.gpus) if tier.gpus else None)
        assert (group["minReplicas"], group["maxReplicas"]) == (tier.min_nodes, tier.max_nodes)
        advertised = json.loads(json.loads(group["rayStartParams"]["resources"]))
        assert advertised == {f"tier:{name}": 1000}
        assert group["labels"] == {"ragtune.io/tier": name}
        if tier.gpus:
            assert group["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    named = render_kuberay(config.model_copy(update={"auth_token_secret": "ray-token"}))[0]
    assert named["spec"]["authOptions"] == {"mode": "token", "secretName": "ray-token"}


def test_kuberay_without_an_image_says_how_to_build_one():
    config = load_config(ClusterConfig, KUBERNETES)
    with pytest.raises(ConfigError, match="field 'image'.*make image"):
        render_kuberay(config)
    cpu_only = config.model_copy(update={"image": IMAGE})
    assert (
        render_kuberay(cpu_only)[0]["spec"]["workerGroupSpecs"][2]["template"]["spec"]["containers"][0][
            "image"
        ]
        == IMAGE
    )  # GPU tiers fall back to `image` when no gpu_image is set


def test_rayjob_and_rayservice_from_the_cli_validate_and_carry_their_config(kuberay_schemas, tmp_path):
    import jsonschema

    job = tmp_path / "index.yaml"
    job.write_text("kind: index\ndocuments: [/mnt/shared/docs]\noutput_dir: /mnt/shared/index\n")
    image = f"--set=image={IMAGE}"
    rendered = run_cli("cluster", "render", str(KUBERNETES), "--target", "rayjob", "index", str(job), image)
    assert rendered.returncode == 0, rendered.stderr
    config_map, ray_job = yaml.safe_load_all(rendered.stdout)
    jsonschema.validate(ray_job, kuberay_schemas["RayJob"])
    assert config_map["kind"] == "ConfigMap" and config_map["data"]["index.yaml"] == job.read_text()
    assert "tiers:" in config_map["data"]["tiers.yaml"]
    assert ray_job["spec"]["entrypoint"] == "ragtune index /etc/ragtune/job/index.yaml"
    assert yaml.safe_load(ray_job["spec"]["runtimeEnvYAML"]) == {
        "env_vars": {"RAGTUNE_TIERS": "/etc/ragtune/job/tiers.yaml"}
    }
    head = ray_job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"] == "index-files"
    assert ray_job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"

    serve = tmp_path / "serve.yaml"
    serve.write_text(
        "kind: serve\napi_keys_file: /etc/ragtune/keys/keys.txt\n"
        "retriever: {index_dir: /mnt/shared/index}\ngenerator: {base_model: HuggingFaceTB/SmolLM2-135M}\n"
    )
    rendered = run_cli(
        "cluster", "render", str(KUBERNETES), "--target", "rayservice", str(serve), image, "--name", "rag"
    )
    assert rendered.returncode == 0, rendered.stderr
    config_map, service = yaml.safe_load_all(rendered.stdout)
    jsonschema.validate(service, kuberay_schemas["RayService"])
    assert service["metadata"]["name"] == "rag" and "serve.yaml" in config_map["data"]
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app["args"] == {"config": "/etc/ragtune/job/serve.yaml"}
    module, _, attribute = app["import_path"].partition(":")
    from ragtune.serve.app import app_builder

    assert getattr(importlib.import_module(module), attribute) is app_builder  # as `ragtune serve` builds


def test_render_refuses_what_the_cluster_could_not_run(tmp_path):
    relative = tmp_path / "index.yaml"
    relative.write_text("kind: index\ndocuments: [/mnt/docs]\noutput_dir: out/index\n")
    image = f"--set=image={IMAGE}"
    result = run_cli(
        "cluster", "render", str(KUBERNETES), "--target", "rayjob", "index", str(relative), image
    )
    assert result.returncode == 2 and "output_dir" in result.stderr and "absolute path" in result.stderr
    open_app = tmp_path / "serve.yaml"
    open_app.write_text("kind: serve\nretriever: {index_dir: /mnt/i}\ngenerator: {base_model: org/m}\n")
    result = run_cli("cluster", "render", str(KUBERNETES), "--target", "rayservice", str(open_app), image)
    assert result.returncode == 2 and "auth" in result.stderr
    result = run_cli("cluster", "render", str(KUBERNETES), "--target", "kuberay", "extra")
    assert result.returncode == 2 and "no more arguments" in result.stderr
    result = run_cli("cluster", "render", str(KUBERNETES), "--target", "kuberay")
    assert result.returncode == 2 and "make image" in result.stderr


def test_cluster_config_errors():
    base = {"kind": "cluster", "provider": "aws", "head_tier": "cpu-small", "worker_tiers": ["x"]}
    with pytest.raises(ConfigError, match="region"):
        validate_data(ClusterConfig, {**base, "worker_tiers": ["cpu-small"]}, "c.yaml")
    with pytest.raises(ConfigError, match="known tiers"):
        validate_data(ClusterConfig, {**base, "region": "us-east-1"}, "c.yaml")
