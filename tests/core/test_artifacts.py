"""Artifact manifests: typed round trips, folders from before the typed format, and refusals that
say what to do."""

from __future__ import annotations

import json

import pytest

from ragtune.core.artifacts import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    EmbedderManifest,
    IndexManifest,
    ModelManifest,
)
from ragtune.core.errors import ArtifactError

# The manifests ragtune wrote before FORMAT_VERSION 2, field for field.
LEGACY_INDEX = {
    "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
    "embedding_fingerprint": None,
    "chunking": {"max_tokens": 128},
    "tier": "local",
    "versions": {"ray": "2.60.0"},
    "num_documents": 3,
    "num_sources": 2,
    "corpus_fingerprint": "abcd",
    "index": {"type": "flat"},
    "format_version": 1,
    "num_chunks": 7,
    "next_id": 7,
    "created_at": "2026-11-20T10:00:00Z",
    "files": {"index.faiss": "00", "chunks.parquet": "11"},
}
LEGACY_MODEL = {
    "base_model": "/models/smollm2",
    "gguf_file": None,
    "adapter": True,
    "system_prompt": "Be brief.",
    "data_fingerprint": "ff",
    "final_metrics": {"step": 32},
    "mlflow_run_id": "r1",
    "config": {"seed": 0},
}
LEGACY_EMBEDDER = {
    "base_model": "sentence-transformers/all-MiniLM-L6-v2",
    "config": {"epochs": 1},
    "train_pairs": 40,
    "validation_pairs": 2,
    "steps": 10,
    "loss_curve": [[5, 1.5], [10, 1.2]],
    "recall_before": 0.5,
    "recall_after": 1.0,
}


@pytest.mark.parametrize(
    ("kind", "legacy"),
    [(IndexManifest, LEGACY_INDEX), (ModelManifest, LEGACY_MODEL), (EmbedderManifest, LEGACY_EMBEDDER)],
)
def test_folders_from_before_the_typed_format_still_load(tmp_path, kind, legacy):
    (tmp_path / kind.LEGACY_FILE).write_text(json.dumps(legacy))
    manifest = kind.read(tmp_path)
    assert manifest.format_version == 1 and manifest.kind == kind.model_fields["kind"].default
    assert json.loads(manifest.model_dump_json(include=set(legacy))) == legacy


def test_new_manifests_record_config_and_versions_and_win_over_legacy(tmp_path):
    written = ModelManifest(**{**LEGACY_MODEL, "system_prompt": "new"})
    written.write(tmp_path)
    (tmp_path / ModelManifest.LEGACY_FILE).write_text(json.dumps(LEGACY_MODEL))
    read = ModelManifest.read(tmp_path)
    assert read == written and read.system_prompt == "new" and read.format_version == FORMAT_VERSION
    assert read.versions["ragtune"] and read.versions["torch"] and read.config == {"seed": 0}
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["kind"] == "model"


def test_refusals_say_what_is_wrong_and_what_to_do(tmp_path):
    with pytest.raises(ArtifactError, match="no such folder.*ragtune index CONFIG"):
        IndexManifest.read(tmp_path / "missing")
    with pytest.raises(ArtifactError, match="no ragtune-manifest.json.*never finished"):
        IndexManifest.read(tmp_path)
    assert IndexManifest.find(tmp_path) is None
    ModelManifest(**LEGACY_MODEL).write(tmp_path)
    with pytest.raises(ArtifactError, match="of kind 'model', not 'index'"):
        IndexManifest.read(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest.*ragtune train CONFIG"):
        ModelManifest.read(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"kind": "model", "format_version": 99}))
    with pytest.raises(ArtifactError, match="newer than this ragtune reads.*upgrade"):
        ModelManifest.read(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**LEGACY_MODEL, "kind": "model", "surprise": 1}))
    with pytest.raises(ArtifactError, match="surprise"):
        ModelManifest.read(tmp_path)
