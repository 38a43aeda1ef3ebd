"""Crash-safe writes: build in a temp sibling, flush it to disk, then rename it into place, so a
failure or a crash loses nothing; the next write to the same place cleans up after a writer on
this host that was killed half-way."""

from __future__ import annotations

import errno
import fcntl
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

from ragtune.core.errors import InputError


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


@contextmanager
def writer_lock(target: str | Path) -> Iterator[None]:
    """Hold the one writer's lock of `target` for the block: an flock on `.NAME.lock` beside it,
    which the kernel drops if the holder dies, removed on release. A second job writing the same
    folder fails at once, saying who holds it, instead of racing the first (an update reads, then
    rewrites)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    while True:
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise InputError(
                f"{target} is being written by {holder}", "wait for that job to finish, or write elsewhere"
            ) from None
        if _same_file(lock, path):
            break
        lock.close()  # its holder removed it as we opened it: lock the file now in its place
    try:
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        lock.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter never locks a removed file
        lock.close()


def _same_file(handle, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), path.stat())
    except FileNotFoundError:
        return False


def recover(target: Path) -> None:
    """Clean up after writers of `target` whose process is surely gone (this host and PID
    namespace, or a boot ago): their temp dirs are removed, and the newest version they had moved
    aside comes back if nothing took its place. Other leftovers (another host or container, a
    writer that may still run) are only reported."""
    dead, kept = [], []
    for leftover in sorted(target.parent.glob(glob.escape(f".{target.name}.") + "*")):
        stage, _, owner = leftover.name.removeprefix(f".{target.name}.").partition("-")
        if stage in ("tmp", "old"):
            (dead if _writer_gone(owner) else kept).append((stage, leftover))
    for _, leftover in kept:
        print(
            f"left by another writer, or one still at work: {leftover} (remove it once none writes {target})"
        )
    moved_aside = sorted((p for stage, p in dead if stage == "old"), key=lambda p: p.stat().st_mtime)
    if moved_aside and not target.exists() and not kept:
        moved_aside.pop().rename(target)
        print(f"restored {target}, which a killed write had moved aside")
    for _, leftover in dead:
        if leftover.exists():
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
    """Who writes: host, boot, PID namespace, process id and a random tag, so a leftover's writer
    can be known dead."""
    return f"{machine_id()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def machine_id() -> str:
    """This host, its current boot and this process's PID namespace (containers on one host may
    share the host name but not their process ids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        boot, namespace = "noboot", 0
    return f"{socket.gethostname()}-{boot}-{namespace}"


def _writer_gone(owner: str) -> bool:
    """Whether the writer named by a leftover's owner tag has surely exited."""
    where, _, _ = owner.rpartition("-")  # drop the random tag
    machine, _, pid = where.rpartition("-")
    host, boot, namespace = (machine.rsplit("-", 2) + ["", "", ""])[:3]
    here = machine_id().rsplit("-", 2)
    if not pid.isdigit() or host != here[0]:
        return False
    if boot != here[1]:
        return True  # the machine rebooted since
    if namespace != here[2]:
        return False  # another container: its process ids mean nothing here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entry to disk (some network file systems cannot sync a
    directory; their renames are then as durable as they make them)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if not path.is_dir() or exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))
