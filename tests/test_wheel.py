"""The built wheel is all a node needs: it installs `ragtune` and nothing else at the top level,
carries the default tiers file, and runs from any directory without the source checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.helpers import ROOT

LOCAL_ONLY = (".git", ".venv", "build", "*.egg-info", "data", "runs", ".whl", ".devbundle", "__pycache__")


def test_wheel_installs_one_package_that_runs_outside_the_checkout(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q"]
    source = tmp_path / "source"  # a clean copy: setuptools' build/ folder keeps deleted modules
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_ONLY))
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("ragtune-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], capture_output=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = wheel.name.split("-")[1]
    assert sorted(p.name for p in site.iterdir()) == ["bin", "ragtune", f"ragtune-{version}.dist-info"]

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
    where = subprocess.run(
        [sys.executable, "-m", "ragtune", "tiers"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert where.returncode == 0 and "gpu-h100-x8" in where.stdout, where.stderr
    origin = subprocess.run(
        [sys.executable, "-c", "import ragtune.cluster.tiers as t; print(t.__file__); print(t.tiers_file())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert [line.startswith(str(site)) for line in origin.stdout.splitlines()] == [True, True], origin.stdout
