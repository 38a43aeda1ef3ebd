"""Typed manifests of the folders passed between stages: an index, a trained model or adapter,
and an adapted embedder.

Each folder holds one `ragtune-manifest.json`, written last, recording what the folder is, the
config that produced it and the package versions it was made with. Every reader goes through
these models; folders written before this format load from their old manifest file.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragtune.core.atomic import write_json_atomic
from ragtune.core.errors import ArtifactError

MANIFEST_FILE = "ragtune-manifest.json"
FORMAT_VERSION = 2  # 1: the untyped manifests of index folders before this module
VERSIONED_PACKAGES = (
    "ragtune",
    "ray",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "deepspeed",
    "faiss-cpu",
    "faiss-gpu",
)

Artifact = TypeVar("Artifact", bound="Manifest")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact (those installed here)."""
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Manifest(BaseModel):
    """What every artifact records: its kind, format, time, producing config and versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    LEGACY_FILE: ClassVar[str]  # the manifest file of this kind before FORMAT_VERSION 2
    REBUILD: ClassVar[str]  # the command that makes this kind of folder again

    kind: str
    format_version: int = FORMAT_VERSION
    created_at: str = Field(default_factory=utc_now)
    config: dict[str, Any] | None = Field(None, description="The producing job's config (JSON).")
    versions: dict[str, str] = Field(default_factory=package_versions)

    def write(self, folder: Path) -> None:
        """Write the manifest into `folder` (last, through a temp file and rename)."""
        write_json_atomic(Path(folder) / MANIFEST_FILE, self.model_dump(mode="json"))

    @classmethod
    def check_replaceable(cls, folder: str | Path) -> None:
        """Refuse to replace `folder` unless it is missing, empty or a ragtune folder of this kind:
        a typo in an output path must never delete a corpus."""
        folder = Path(folder)
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return
        kind = cls.model_fields["kind"].default
        try:
            if cls.find(folder) is not None:
                return
            problem = f"is not a ragtune {kind} folder"
        except ArtifactError as exc:
            problem = f"is not a readable ragtune {kind} folder ({exc.problem})"
        raise ArtifactError(
            f"{folder} exists and {problem}; refusing to replace it",
            "choose another output path, or remove that folder yourself",
        )

    @classmethod
    def find(cls: type[Artifact], folder: str | Path) -> Artifact | None:
        """The manifest of `folder`, or None when it has none (a folder ragtune did not make)."""
        folder = Path(folder)
        if not (folder / MANIFEST_FILE).is_file() and not (folder / cls.LEGACY_FILE).is_file():
            return None
        return cls.read(folder)

    @classmethod
    def read(cls: type[Artifact], folder: str | Path) -> Artifact:
        """The manifest of `folder`; an ArtifactError saying what to do when it is missing,
        corrupt, of another kind or from a newer ragtune."""
        folder = Path(folder)
        kind = cls.model_fields["kind"].default
        current, legacy = folder / MANIFEST_FILE, folder / cls.LEGACY_FILE
        path = current if current.is_file() else legacy
        if not path.is_file():
            what = "no such folder" if not folder.is_dir() else f"no {MANIFEST_FILE}"
            raise ArtifactError(
                f"{folder}: {what}; not a ragtune {kind} folder, or its write never finished",
                f"make it with `{cls.REBUILD}`",
            )
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if path == legacy:
                data = {"format_version": 1, "created_at": "", "versions": {}, **data, "kind": kind}
                data = {key: value for key, value in data.items() if key in cls.model_fields}
            found = data.get("kind")
            if found != kind:
                raise ArtifactError(
                    f"{folder}: a ragtune folder of kind '{found}', not '{kind}'", f"give a {kind} folder"
                )
            if int(data.get("format_version", 0)) > FORMAT_VERSION:
                raise ArtifactError(
                    f"{path}: format {data['format_version']} is newer than this ragtune reads "
                    f"({FORMAT_VERSION})",
                    "upgrade ragtune",
                )
            return cls.model_validate(data)
        except (ValueError, TypeError, ValidationError) as exc:
            raise ArtifactError(
                f"{path}: corrupt manifest ({exc})", f"rebuild with `{cls.REBUILD}`"
            ) from None


class IndexManifest(Manifest):
    """An index folder: FAISS index + chunk store, the model that embedded them, checksums."""

    LEGACY_FILE: ClassVar[str] = "manifest.json"
    REBUILD: ClassVar[str] = "ragtune index CONFIG"

    kind: Literal["index"] = "index"
    embedding_model: str
    embedding_fingerprint: str | None = Field(None, description="Hash of a local model's weights.")
    chunking: dict[str, Any]
    index: dict[str, Any] = Field(description="The FAISS index settings (IndexConfig).")
    tier: str
    num_chunks: int
    next_id: int = Field(description="The id the next added chunk gets.")
    num_documents: int
    num_sources: int
    corpus_fingerprint: str
    files: dict[str, str] = Field(description="SHA-256 of each data file in the folder.")


class ModelManifest(Manifest):
    """A trained model or LoRA adapter folder (`<run>/model`), or one merged from an adapter."""

    LEGACY_FILE: ClassVar[str] = "ragtune_manifest.json"
    REBUILD: ClassVar[str] = "ragtune train CONFIG"

    kind: Literal["model"] = "model"
    base_model: str
    gguf_file: str | None = None
    adapter: bool = Field(description="A LoRA adapter on base_model (else full weights).")
    system_prompt: str = Field(description="The system prompt it was trained with.")
    data_fingerprint: str
    final_metrics: dict[str, Any] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    merged_from: str | None = Field(None, description="The adapter folder merged into the base.")


class EmbedderManifest(Manifest):
    """A sentence-transformers model adapted to a corpus by `ragtune tune-embedder`."""

    LEGACY_FILE: ClassVar[str] = "ragtune-embedder.json"
    REBUILD: ClassVar[str] = "ragtune tune-embedder CONFIG"

    kind: Literal["embedder"] = "embedder"
    base_model: str
    train_pairs: int
    validation_pairs: int
    steps: int
    loss_curve: list[tuple[int, float]] = Field(default_factory=list, description="(step, mean loss).")
    recall_before: float = Field(description="Held-out heading→section recall@1 before training.")
    recall_after: float = Field(description="The same after training.")


class RerankerManifest(Manifest):
    """A cross-encoder trained on a corpus by `ragtune tune-reranker`."""

    LEGACY_FILE: ClassVar[str] = MANIFEST_FILE  # a kind born with the current format
    REBUILD: ClassVar[str] = "ragtune tune-reranker CONFIG"

    kind: Literal["reranker"] = "reranker"
    base_model: str
    train_pairs: int
    validation_pairs: int
    negatives: int = Field(description="Negative passages per heading.")
    steps: int
    loss_curve: list[tuple[int, float]] = Field(default_factory=list, description="(step, mean loss).")
    accuracy_before: float = Field(
        description="Held-out share of headings whose own passage scores above all its negatives, before."
    )
    accuracy_after: float = Field(description="The same after training.")
