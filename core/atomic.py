"""Atomic writes: build in a temp sibling, then rename into place, so a failure loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp dir beside `target`; on success it replaces `target` whole.

    On an exception the temp dir is removed and `target` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to `path` through a temp file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to `path` through a temp file and rename."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def write_jsonl_atomic(path: str | Path, rows: list[dict]) -> None:
    """Write one JSON object per line to `path` through a temp file and rename."""
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))
