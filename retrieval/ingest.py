"""Read documents with Ray Data and chunk them by structure, keeping source, heading and offsets."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.cluster.resources import data_remote_args
from ragtune.cluster.tiers import HardwareTier
from ragtune.core.errors import InputError
from ragtune.retrieval.chunking import chunk_spans
from ragtune.retrieval.config import DOCUMENT_EXTENSIONS, ChunkingConfig
from ragtune.retrieval.markup import plain_text
from ragtune.retrieval.parsing import pdf_text, split_sections

ROWS_PER_BLOCK = 1024
CHUNK_COLUMNS = ("doc_id", "source", "source_hash", "heading", "text", "start", "end")


@dataclass(frozen=True)
class SkippedFile:
    """A document that produced no chunks, and why."""

    source: str
    reason: str


def find_documents(patterns: list[str], follow_symlinks: bool = False) -> list[Path]:
    """Expand files, directories (recursively) and globs into document paths, sorted. A link
    found under a directory or glob that leads out of it is skipped (and said) unless
    `follow_symlinks`: a link must not pull a file from elsewhere into a served index."""
    found: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir() or path.is_file():
            root = path.resolve()
            candidates = _walk(path, follow_symlinks) if path.is_dir() else iter([path])
        else:
            root = _glob_root(pattern).resolve()
            candidates = (Path(p) for p in glob.glob(pattern, recursive=True))
        for candidate in candidates:
            if not _is_document(candidate):
                continue
            resolved = candidate.resolve()
            if follow_symlinks or resolved.is_relative_to(root):
                found.add(resolved)
            else:
                print(
                    f"skipped {candidate}: a link to {resolved}, outside {root} "
                    "(chunking.follow_symlinks: true indexes it)"
                )
    return sorted(found)


def require_documents(patterns: list[str], follow_symlinks: bool = False) -> list[Path]:
    """`find_documents`, refusing patterns that match no document."""
    if not (paths := find_documents(patterns, follow_symlinks)):
        raise InputError(
            f"no documents ({', '.join(DOCUMENT_EXTENSIONS)}) in {patterns}",
            "check the config's documents: files, folders or globs",
        )
    return paths


def _walk(folder: Path, follow_symlinks: bool):
    """Every file under `folder`; linked folders are entered only when `follow_symlinks`."""
    for parent, _, names in os.walk(folder, followlinks=follow_symlinks):
        for name in names:
            yield Path(parent) / name


def _glob_root(pattern: str) -> Path:
    """The folder a glob searches: its leading parts without wildcards."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _is_document(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(ext) for ext in DOCUMENT_EXTENSIONS)


def document_format(path: str) -> str:
    """The format suffix of a document; Sphinx sources like `x.rst.txt` count as `.rst`."""
    name = path.lower().removesuffix(".txt")
    return next((ext for ext in DOCUMENT_EXTENSIONS if name.endswith(ext)), ".txt")


def file_fingerprint(data: bytes) -> str:
    """Content hash of a document, used to detect changed files on update."""
    return hashlib.sha256(data).hexdigest()[:16]


class Chunker:
    """Ray Data stage: a batch of document paths in, a batch of chunk rows out."""

    def __init__(self, config: dict[str, Any], tokenizer_name: str):
        from transformers import AutoTokenizer

        self.config = ChunkingConfig(**config)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows: dict[str, list] = {name: [] for name in (*CHUNK_COLUMNS, "skipped")}
        for path in batch["path"]:
            try:
                chunks = list(self.chunk_file(str(path)))
                reason = "" if chunks else "no text"
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                chunks, reason = [], f"{type(exc).__name__}: {exc}"
            if reason:
                chunks = [{**dict.fromkeys(CHUNK_COLUMNS, ""), "source": str(path)}]
                chunks[0].update(start=0, end=0)
            for chunk in chunks:
                for name in CHUNK_COLUMNS:
                    rows[name].append(chunk[name])
                rows["skipped"].append(reason)
        return rows

    def chunk_file(self, path: str):
        """Yield the chunk rows of one file (jsonl: one document per line; PDF: its text layer,
        offsets into that text)."""
        size = Path(path).stat().st_size
        if size > self.config.max_file_mb * 2**20:
            raise ValueError(
                f"{size / 2**20:.1f} MB, over chunking.max_file_mb ({self.config.max_file_mb:g})"
            )
        data = Path(path).read_bytes()
        suffix = document_format(path)
        if suffix == ".pdf":
            text = pdf_text(data)
        elif b"\0" in data[:8192]:
            raise ValueError("binary file")
        else:
            text = data.decode("utf-8")
        fingerprint = file_fingerprint(data)
        if suffix == ".jsonl":
            documents = self._jsonl_documents(path, text)
        else:
            documents = [(path, Path(path).name.split(".")[0], text, suffix)]
        for doc_id, title, body, doc_format in documents:
            for section in split_sections(body, doc_format, title):
                for start, end in self._spans(section.text):
                    if not (text := plain_text(section.text[start:end], doc_format)).strip():
                        continue
                    yield {
                        "doc_id": doc_id,
                        "source": path,
                        "source_hash": fingerprint,
                        "heading": section.heading,
                        "text": text,
                        "start": section.start + start,
                        "end": section.start + end,
                    }

    def _jsonl_documents(self, path: str, text: str):
        cfg = self.config
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"line {line_no}: not a JSON object")
            body = record.get(cfg.text_field)
            if not isinstance(body, str):
                raise ValueError(f"line {line_no}: no string field '{cfg.text_field}'")
            doc_id = str(record.get(cfg.id_field, f"{path}:{line_no}"))
            yield doc_id, str(record.get(cfg.title_field, "")), body, ".txt"

    def _spans(self, text: str):
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoded["offset_mapping"]
        cfg = self.config
        return chunk_spans(text, offsets, cfg.max_tokens, cfg.overlap_tokens)


def read_chunks(patterns: list[str], chunking: ChunkingConfig, tokenizer_name: str, tier: HardwareTier):
    """Chunk every document with Ray Data on `tier`; return (chunk dataset, skipped files).

    The chunks are materialised (they are text, small next to their embeddings) so the
    skipped files can be reported and the embedding stage gets evenly sized blocks.
    """
    import ray

    items = ray.data.from_items([{"path": str(p)} for p in require_documents(patterns)])
    chunked = items.map_batches(
        Chunker,
        fn_constructor_kwargs={
            "config": chunking.model_dump(),
            "tokenizer_name": tokenizer_name,
        },
        batch_size=8,
        compute=ray.data.ActorPoolStrategy(size=1),
        **data_remote_args(tier, num_cpus=1, num_gpus=0),
    ).materialize()
    skipped = [
        SkippedFile(row["source"], row["skipped"])
        for row in chunked.filter(lambda row: row["skipped"] != "").take_all()
    ]
    chunks = chunked.filter(lambda row: row["skipped"] == "").drop_columns(["skipped"])
    # Even, modest blocks: embedding actors stream them (progress, bounded memory) instead of
    # receiving one block per input file.
    blocks = max(1, chunks.count() // ROWS_PER_BLOCK)
    return chunks.repartition(blocks).materialize(), skipped
