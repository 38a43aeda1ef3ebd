"""Crash-safe writes: build in a temp sibling, flush it to disk, then rename it into place, so a
failure or a crash loses nothing; the next write to the same place cleans up after a writer on
this host that was killed half-way."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp dir beside `target`; on success it replaces `target` whole.

    On an exception the temp dir is removed and `target` is left exactly as it was. The new
    files reach the disk before the swap, and the swap before this returns.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.parent / f".{target.name}.tmp-{_owner()}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{_owner()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    _fsync(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover(target: Path) -> None:
    """Clean up after writers of `target` on this host whose process is gone: their temp dirs are
    removed and a previous version they had moved aside comes back if nothing took its place.
    Leftovers of other hosts' writers, or of an unknown owner, are only reported."""
    host = socket.gethostname()
    for leftover in sorted(target.parent.glob(glob.escape(f".{target.name}.") + "*")):
        stage, _, owner = leftover.name.removeprefix(f".{target.name}.").partition("-")
        if stage not in ("tmp", "old"):
            continue
        owner_host, _, pid = owner.rpartition("-")[0].rpartition("-")
        if owner_host != host or not pid.isdigit():
            print(f"left over from another writer: {leftover} (remove it once no job writes {target})")
        elif not _alive(int(pid)):
            if stage == "old" and not target.exists():
                leftover.rename(target)
                print(f"restored {target} from {leftover.name}, which a killed write had moved aside")
            else:
                shutil.rmtree(leftover, ignore_errors=True)
                print(f"removed {leftover}, left by a killed write")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to `path` through a temp file, flushed to disk, and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to `path` through a temp file and rename."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def write_jsonl_atomic(path: str | Path, rows: list[dict]) -> None:
    """Write one JSON object per line to `path` through a temp file and rename."""
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def _owner() -> str:
    """Who writes: host, process id and a random tag, so leftovers can be told apart."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entry to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))
