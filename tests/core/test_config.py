"""Config loading: overrides, unknown fields with close matches, one-line errors."""

import pytest

from ragtune.cluster.tiers import TiersFile
from ragtune.core.config import apply_overrides, load_config
from ragtune.core.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    return path


GOOD = """
tiers:
  local: {cpus: 2, memory_gb: 8, cost_per_hour: 0}
"""


def test_override_sets_nested_value_parsed_as_yaml():
    data = apply_overrides({"a": {"b": 1}}, ["a.b=3", "a.c=[1, 2]", "d=x"], "f")
    assert data == {"a": {"b": 3, "c": [1, 2]}, "d": "x"}


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["a.b"], "f.yaml")


def test_typo_in_nested_field_names_field_and_close_match(tmp_path):
    path = write(tmp_path, "tiers:\n  local: {cpu: 2, memory_gb: 8, cost_per_hour: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_config(TiersFile, path)
    error = info.value
    assert error.field == "tiers.local.cpu"
    assert error.suggestion == "cpus"
    assert str(path) in str(error) and "did you mean 'cpus'" in str(error)


def test_override_can_fix_a_value(tmp_path):
    tiers = load_config(TiersFile, write(tmp_path, GOOD), ["tiers.local.cpus=4"])
    assert tiers.tiers["local"].cpus == 4


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(TiersFile, write(tmp_path, "tiers: [unclosed"))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(TiersFile, tmp_path / "nope.yaml")


def test_model_fields_make_local_folders_absolute(tmp_path, monkeypatch):
    from ragtune.retrieval.config import EmbedderTuneConfig, EmbeddingConfig
    from ragtune.train.config import TrainJobConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    folder = str(tmp_path / "models" / "mine")
    assert EmbeddingConfig(model="models/mine").model == folder  # Ray workers run elsewhere
    assert EmbedderTuneConfig(documents=["d"], output_dir="o", base_model="models/mine").base_model == folder
    train = TrainJobConfig(base_model="models/mine", data={"train_files": ["t.jsonl"]}, output_dir="o")
    assert train.base_model == folder
    assert EmbeddingConfig(model="org/hub-model").model == "org/hub-model"  # no such folder: a hub name


def test_relative_paths_are_found_by_type_or_on_disk(tmp_path, monkeypatch):
    from ragtune.core.config import relative_paths
    from ragtune.serve.config import ServeJobConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    data = {
        "kind": "serve",
        "app_name": "models",  # a folder of that name exists, but a name is no path
        "retriever": {"index_dir": "idx", "k": 3},
        "generator": {
            "base_model": "models/tiny",  # a local folder
            "adapters": {"ft": "runs/a/model", "abs": "/mnt/shared/model"},
            "model_name": "org/model",  # a hub-style name that is no folder here
        },
        "api_keys_file": "s3://bucket/keys",
    }
    assert relative_paths(ServeJobConfig, data) == [
        "retriever.index_dir: idx",
        "generator.base_model: models/tiny",
        "generator.adapters.ft: runs/a/model",
    ]
