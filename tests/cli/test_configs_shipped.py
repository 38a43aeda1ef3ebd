"""Every YAML shipped under configs/ validates with `ragtune validate`."""

from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli

SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_config_validates(path: Path):
    import importlib

    from ragtune.cli.common import CONFIG_KINDS, config_kind
    from ragtune.core.config import load_config, read_yaml

    module, name = CONFIG_KINDS[config_kind(path, read_yaml(path))]
    load_config(getattr(importlib.import_module(module), name), path)


def test_validate_cli_accepts_tiers():
    result = run_cli("validate", "configs/tiers.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid tiers config" in result.stdout


def test_validate_cli_typo_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "tiers.yaml"
    bad.write_text("tiers:\n  local: {cpus: 2, memory_gb: 8, cost_per_hour: 0, max_node: 1}\n")
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "tiers.local.max_node" in lines[0] and "did you mean 'max_nodes'" in lines[0]
    assert "Traceback" not in result.stderr


def test_validate_cli_debug_shows_traceback(tmp_path):
    bad = tmp_path / "tiers.yaml"
    bad.write_text("tiers: {}\n")
    result = run_cli("validate", str(bad), env={"RAGTUNE_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_tiers_cli_prints_table():
    result = run_cli("tiers")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["gpu-h100-x8"][3] == "8" and rows["gpu-h100-x8"][4] == "H100"
    assert rows["local"][1] == "2"
