"""The built wheel is all a node needs: it installs `ragtune` and nothing else at the top level,
carries the default tiers file and the node install script, checks its hash, and runs from any
directory without the source checkout."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT
from tools.build_wheel import build_wheel


def test_wheel_installs_one_package_that_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], capture_output=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = wheel.name.split("-")[1]
    assert sorted(p.name for p in site.iterdir()) == ["bin", "ragtune", f"ragtune-{version}.dist-info"]
    assert (site / "ragtune" / "cluster" / "install-ragtune.sh").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAGTUNE_TIERS"} | {"PYTHONPATH": str(site)}

    def ragtune(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [site / "bin" / "ragtune", *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )

    tiers = ragtune("tiers")
    assert tiers.returncode == 0, tiers.stderr
    assert {"local", "cpu-small", "gpu-h100-x8"} <= {
        line.split()[0] for line in tiers.stdout.splitlines()[1:]
    }
    train_config = ROOT / "configs" / "train" / "tiny_lora_local.yaml"
    valid = ragtune("validate", str(train_config))
    assert valid.returncode == 0 and "valid train config" in valid.stdout, valid.stderr
    where = ragtune("version")
    assert where.stdout == f"ragtune {version} ({site / 'ragtune'})\n", where.stdout + where.stderr
    module = subprocess.run(
        [sys.executable, "-m", "ragtune", "tiers"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert module.returncode == 0 and "gpu-h100-x8" in module.stdout, module.stderr


def test_the_install_script_refuses_a_wheel_that_does_not_match_its_hash(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    result = subprocess.run(
        ["bash", tmp_path / "dist" / "install-ragtune.sh", wheel],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, "RAGTUNE_PIP_ARGS": "--no-deps --dry-run"},
    )
    assert result.returncode == 2 and "does not match" in result.stderr
    missing = subprocess.run(
        ["bash", tmp_path / "dist" / "install-ragtune.sh", tmp_path / "none.whl"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "make dist" in missing.stderr


def test_the_image_installs_with_the_same_script_on_the_base_the_launcher_uses():
    """No Docker daemon here: the Dockerfile is checked for what ties it to the install path."""
    from ragtune.cluster.cluster_config import BASE_IMAGE

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={BASE_IMAGE}\n" in dockerfile
    assert (
        "COPY --chown=1000:100 cluster/install-ragtune.sh ${WHEEL} ${WHEEL}.sha256 /tmp/ragtune/"
        in dockerfile
    )
    assert 'bash /tmp/ragtune/install-ragtune.sh "$wheel" ${EXTRAS}' in dockerfile
    allowed = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"*", "!cluster/install-ragtune.sh", "!dist/"} <= set(allowed)
    makefile = (ROOT / "Makefile").read_text()
    assert "--build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu" in makefile and "EXTRAS=gpu" in makefile
