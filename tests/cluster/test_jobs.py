"""A real two-node Ray cluster on this machine (`ragtune up --network`, auth on), its second node
running ragtune only from the built wheel: tier placement and `ragtune submit`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ragtune.core.artifacts import IndexManifest
from tests.helpers import ROOT, node_env, rag_rows, run_cli, tiny_model, write_jsonl

PORT, DASHBOARD = "6393", "8293"
ADDRESS = f"http://127.0.0.1:{DASHBOARD}"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Head advertising tier `local` (`ragtune up --network`), plus a second node advertising
    tiers `cpu-small` and `edge`, started by `ray start` from a Python that has ragtune only from
    its wheel."""
    home = tmp_path_factory.mktemp("ragtune-home")
    env = {"RAGTUNE_HOME": str(home)}
    node_python = node_env(tmp_path_factory.mktemp("node"))
    node_disk = tempfile.mkdtemp(prefix="rt-node-", dir="/tmp")  # short: Ray's socket paths live in it
    # Own agent ports: the session's embedded Ray already holds the default one.
    up = run_cli(
        "up", "--network", "--port", PORT, "--dashboard-port", DASHBOARD, "--agent-port", "52393", env=env
    )
    assert up.returncode == 0, up.stderr
    worker = subprocess.Popen(
        [
            node_python,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--block",
            f"--address=127.0.0.1:{PORT}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={node_disk}",  # a disk of its own, as another machine has
            "--num-cpus=1",
            '--resources={"tier:cpu-small": 1000, "tier:edge": 1000}',  # edge: a tier of custom tiers only
            '--labels={"ragtune.io/tier": "cpu-small"}',  # as rendered clusters label their nodes
            "--disable-usage-stats",
            "--dashboard-agent-listen-port=52394",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "token"},  # joining a head with token auth on
        cwd=node_python.parent,  # not the checkout: nothing of it on this node's path
    )
    try:
        _wait_for_nodes(2, env)
        yield env
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        run_cli("down", env=env)
        shutil.rmtree(node_disk, ignore_errors=True)


def _wait_for_nodes(count: int, env: dict) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = run_cli("status", env=env)
        if status.stdout.count(" alive ") >= count:
            return
        time.sleep(2)
    raise AssertionError(f"cluster never reached {count} nodes:\n{status.stdout}{status.stderr}")


PLACEMENT = """
import json, ray
from ragtune.cluster.resources import TierUnavailable, check_schedulable, data_remote_args, worker_resources
from ragtune.cluster.tiers import get_tier
ray.init(address="127.0.0.1:{port}")
nodes = {{n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}}
@ray.remote
def where():
    return ray.get_runtime_context().get_node_id()
placed = {{}}
for name in ("cpu-small", "local"):
    tier = get_tier(name)
    check_schedulable(tier, worker_resources(tier))
    args = data_remote_args(tier, num_cpus=0.5)
    found = set(ray.get([where.options(**args).remote() for _ in range(6)]))
    placed[name] = sorted(k for nid in found for k in nodes[nid] if k.startswith("tier:"))
    by_label = where.options(label_selector={{"ragtune.io/tier": name}}, num_cpus=0.1)
    found = set(ray.get([by_label.remote() for _ in range(6)]))
    placed["label:" + name] = sorted(k for nid in found for k in nodes[nid] if k.startswith("tier:"))
try:
    check_schedulable(get_tier("gpu-a10g-x1"), worker_resources(get_tier("gpu-a10g-x1")))
    placed["gpu"] = "scheduled?!"
except TierUnavailable as exc:
    placed["gpu"] = str(exc)
print(json.dumps(placed))
"""


def test_work_lands_only_on_its_tiers_node(two_nodes):
    result = subprocess.run(
        [sys.executable, "-c", PLACEMENT.format(port=PORT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **two_nodes, "RAY_AUTH_MODE": "token"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    placed = json.loads(result.stdout.strip().splitlines()[-1])
    assert placed["cpu-small"] == ["tier:cpu-small", "tier:edge"]  # only the second node
    assert placed["local"] == ["tier:local"]
    # Ray node labels place work too: `ragtune up` labels the head, the second node was labelled
    assert placed["label:cpu-small"] == ["tier:cpu-small", "tier:edge"]
    assert placed["label:local"] == ["tier:local"]
    assert "gpu-a10g-x1" in placed["gpu"] and "A10G" in placed["gpu"]


def test_a_submitted_job_can_be_stopped(two_nodes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    config = tmp_path / "index.yaml"
    config.write_text(f"kind: index\ntier: local\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n")
    started = run_cli("submit", "index", str(config), "--address", ADDRESS, env=two_nodes)
    job_id = started.stdout.split()[1]
    stopped = run_cli("jobs", "stop", job_id, "--address", ADDRESS, env=two_nodes)
    assert stopped.returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = run_cli("jobs", "status", job_id, "--address", ADDRESS, env=two_nodes).stdout
        if "STOPPED" in state:
            break
        time.sleep(1)
    assert "STOPPED" in state
    assert not (tmp_path / "idx").exists()


def test_submit_refuses_bad_config_before_submitting(two_nodes, tmp_path):
    config = tmp_path / "index.yaml"
    config.write_text("kind: index\ndocuments: [x]\noutput_dir: y\ntier: gpu-a100\n")
    result = run_cli("submit", "index", str(config), "--address", ADDRESS, env=two_nodes)
    assert result.returncode == 2 and "known tiers" in result.stderr


def test_plain_http_off_this_machine_needs_insecure():
    from ragtune.cluster.jobs import require_secure_transport
    from ragtune.core.errors import ClusterError

    refused = run_cli("jobs", "list", "--address", "http://203.0.113.7:8265")
    assert refused.returncode == 2 and "token in clear" in refused.stderr and "--insecure" in refused.stderr
    for url in (
        "https://ray.example:443",
        "http://127.0.0.1:8265",
        "http://localhost:8265",
        "http://[::1]:8265",
    ):
        require_secure_transport(url, insecure=False)
    require_secure_transport("http://203.0.113.7:8265", insecure=True)
    with pytest.raises(ClusterError, match="in clear"):
        require_secure_transport("http://ray-head.internal:8265", insecure=False)


def test_submit_refuses_paths_relative_to_the_submitter(tmp_path):
    config = tmp_path / "index.yaml"
    config.write_text(f"kind: index\ndocuments: [{tmp_path}]\noutput_dir: runs/idx\n")
    result = run_cli("submit", "index", str(config), "--address", ADDRESS)
    assert result.returncode == 2 and "field 'output_dir'" in result.stderr
    assert "absolute path on storage every node mounts" in result.stderr


WORK_PLACEMENT = """
import json, ray
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_actors, list_workers
ray.init(address="127.0.0.1:{port}")
tiers = {{n["NodeID"]: [k for k in n["Resources"] if k.startswith("tier:")] for n in ray.nodes()}}
job = JobSubmissionClient("{address}").get_job_info("{submission_id}")
actors = list_actors(filters=[("class_name", "=", "{actor}")], detail=True, limit=10000)
mine = [a for a in actors if a.job_id == job.job_id]
ready = [w.start_time_ms for w in list_workers(detail=True, limit=10000)
         for a in mine if (w.node_id, w.pid) == (a.node_id, a.pid) and w.start_time_ms]
print(json.dumps({{
    "tiers": sorted({{t for a in mine for t in tiers.get(a.node_id, [])}}),
    "seconds_to_work": (min(ready) - job.start_time) / 1000 if ready else None,
}}))
"""


def work_placement(submission_id: str, actor: str, env: dict) -> dict:
    """The tiers of the nodes where `actor`s of a submitted job ran, and the seconds from the
    submission to the first of them starting (Ray's state API)."""
    script = WORK_PLACEMENT.format(port=PORT, address=ADDRESS, submission_id=submission_id, actor=actor)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "RAY_AUTH_MODE": "token"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_index_and_train_jobs_run_on_the_node_of_their_tier(two_nodes, tmp_path):
    """Submitted jobs whose tier only the wheel-installed node has, declared in the submitter's
    tiers file: their work runs there (Ray's state API names the node) and their outputs land
    where the config said."""
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        "tiers:\n  local: {cpus: 2, memory_gb: 8, cost_per_hour: 0}\n"
        "  edge: {cpus: 1, memory_gb: 4, cost_per_hour: 0.1}\n"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    index = tmp_path / "index.yaml"
    index.write_text(f"kind: index\ntier: edge\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n")
    write_jsonl(tmp_path / "train.jsonl", rag_rows(16))
    train = tmp_path / "train.yaml"
    train.write_text(
        f"kind: train\ntier: edge\nbase_model: {tiny_model(tmp_path)}\nnum_workers: 1\n"
        f"data: {{train_files: [{tmp_path / 'train.jsonl'}], max_length: 128}}\n"
        "micro_batch_size: 2\nglobal_batch_size: 2\nmax_steps: 2\neval_every_steps: 2\n"
        f"checkpoint_every_steps: 2\nlora: {{r: 4, alpha: 8}}\noutput_dir: {tmp_path / 'run'}\n"
    )
    unknown = run_cli("submit", "index", str(index), "--address", ADDRESS, env=two_nodes)
    assert unknown.returncode == 2 and "tier 'edge' is not declared" in unknown.stderr  # --tiers says
    placed, ids = {}, {}
    for verb, config, actor in (
        ("index", index, "MapWorker(MapBatches(Embedder))"),
        ("train", train, "RayTrainWorker"),
    ):
        submitted = run_cli(
            "submit",
            verb,
            str(config),
            "--tiers",
            str(tiers),
            "--address",
            ADDRESS,
            "--follow",
            env=two_nodes,
            timeout=600,
        )
        assert submitted.returncode == 0 and "SUCCEEDED" in submitted.stdout, (
            submitted.stdout[-3000:] + submitted.stderr[-3000:]
        )
        job_id = submitted.stdout.split()[1]
        placed[verb] = work_placement(job_id, actor, two_nodes)
        assert placed[verb]["tiers"] == ["tier:cpu-small", "tier:edge"], placed  # the second node only
        listed = run_cli("jobs", "list", "--address", ADDRESS, env=two_nodes)
        assert f"{job_id}  SUCCEEDED  ragtune {verb} {config.name}" in listed.stdout, listed.stdout
        ids[verb] = job_id
    logs = run_cli("jobs", "logs", ids["index"], "--address", ADDRESS, env=two_nodes)
    assert "1 chunks" in logs.stdout, logs.stdout[-2000:]
    print(f"\nsubmit → work running on the second node: {placed}")
    assert IndexManifest.read(tmp_path / "idx").tier == "edge"
    from ragtune.core.artifacts import ModelManifest

    assert ModelManifest.read(tmp_path / "run" / "model").final_metrics["step"] == 2
