"""Crash-safe writes: a killed writer leaves the old folder whole, and the next write cleans up
after it; folders that are not ragtune artifacts of the kind are never replaced."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ragtune.core.artifacts import IndexManifest, ModelManifest
from ragtune.core.atomic import atomic_dir, machine_id, writer_lock
from ragtune.core.errors import ArtifactError, InputError

KILLED_WRITER = """
import os, signal, sys
from ragtune.core.atomic import atomic_dir, machine_id
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "data.txt").write_text("new, half written")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_leaves_the_old_folder_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "index"
    with atomic_dir(target) as tmp:
        (tmp / "data.txt").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], capture_output=True)
    assert killed.returncode == -9
    assert (target / "data.txt").read_text() == "old"
    assert [p.name.split("-")[0] for p in tmp_path.glob(".index.*")] == [".index.tmp"]
    with atomic_dir(target) as tmp:
        (tmp / "data.txt").write_text("newer")
    assert (target / "data.txt").read_text() == "newer" and not list(tmp_path.glob(".index.*"))


def test_a_version_moved_aside_by_a_killed_write_comes_back(tmp_path, capsys):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = f"{machine_id()}-{gone.stdout.strip()}"
    older = tmp_path / f".index.old-{dead}-00000000"
    older.mkdir()
    (older / "data.txt").write_text("older")
    moved = tmp_path / f".index.old-{dead}-abcd1234"
    moved.mkdir()
    (moved / "data.txt").write_text("previous")
    os.utime(older, (1, 1))  # the newest version moved aside is the one restored
    with atomic_dir(tmp_path / "other") as tmp:  # a write elsewhere leaves them alone
        (tmp / "x").write_text("x")
    assert moved.exists()
    with atomic_dir(tmp_path / "index") as tmp:
        assert (tmp_path / "index" / "data.txt").read_text() == "previous"  # restored first
        (tmp / "data.txt").write_text("new")
    assert (tmp_path / "index" / "data.txt").read_text() == "new" and not older.exists()


def test_leftovers_of_other_hosts_or_containers_are_kept_and_reported(tmp_path, capsys):
    host, boot, namespace = machine_id().rsplit("-", 2)
    foreign = [
        tmp_path / ".index.tmp-otherhost-1-abcd1234",  # an older ragtune's tag: owner unknown
        tmp_path / f".index.tmp-elsewhere-{boot}-{namespace}-1-abcd1234",  # another host
        tmp_path / f".index.old-{host}-{boot}-1-1-abcd1234",  # another PID namespace
    ]
    for path in foreign:
        path.mkdir()
    with atomic_dir(tmp_path / "index") as tmp:
        (tmp / "data.txt").write_text("new")
    assert all(path.exists() for path in foreign)
    assert capsys.readouterr().out.count("left by another writer, or one still at work") == 3


def test_only_missing_empty_or_same_kind_folders_are_replaced(tmp_path):
    IndexManifest.check_replaceable(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    IndexManifest.check_replaceable(tmp_path / "empty")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.md").write_text("# precious\n")
    with pytest.raises(ArtifactError, match="is not a ragtune index folder; refusing to replace it"):
        IndexManifest.check_replaceable(corpus)
    model = tmp_path / "model"
    model.mkdir()
    ModelManifest(base_model="m", adapter=True, system_prompt="s", data_fingerprint="f").write(model)
    ModelManifest.check_replaceable(model)
    with pytest.raises(ArtifactError, match="kind 'model', not 'index'"):
        IndexManifest.check_replaceable(model)
    assert os.listdir(corpus) == ["notes.md"]


HOLDING_WRITER = """
import sys, time
from ragtune.core.atomic import writer_lock
with writer_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_fails_clearly_while_one_holds_the_lock(tmp_path):
    from ragtune.retrieval.config import IndexJobConfig
    from ragtune.retrieval.job import run_index_job

    target = tmp_path / "index"
    holder = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(target)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        with pytest.raises(InputError, match=f"being written by pid {holder.pid} on"):
            with writer_lock(target):
                pass
        config = IndexJobConfig(documents=[str(tmp_path)], output_dir=target)
        with pytest.raises(InputError, match="being written by"):  # before any work
            run_index_job(config, update=True)
    finally:
        holder.kill()  # a killed holder frees the lock: the kernel drops it
        holder.wait()
    with writer_lock(target):
        assert (tmp_path / ".index.lock").read_text().startswith(f"pid {os.getpid()} on")
    assert not list(tmp_path.glob(".index.*"))  # the lock file goes with its writer
