"""The error contract: every verb, given a missing input, an unreachable cluster or app, or an
unknown verb, prints one line saying what is wrong and exits non-zero; never a traceback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import run_cli

NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Name → (arguments, a fragment the one error line must hold)."""
    gone = tmp / "missing"
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nSteep green tea for two minutes.\n")
    index = write(tmp, "index.yaml", f"kind: index\ndocuments: [{gone}]\noutput_dir: {tmp / 'idx'}\n")
    indexable = write(tmp, "ok-index.yaml", f"kind: index\ndocuments: [{docs}]\noutput_dir: {tmp / 'i'}\n")
    onto_docs = write(tmp, "onto-docs.yaml", f"kind: index\ndocuments: [{docs}]\noutput_dir: {docs}\n")
    embedder = write(tmp, "embedder.yaml", f"kind: embedder\ndocuments: [{gone}]\noutput_dir: {tmp / 'e'}\n")
    reranker = write(
        tmp,
        "reranker.yaml",
        f"kind: reranker\ndocuments: [{docs}]\nindex_dir: {gone}\noutput_dir: {tmp / 'r'}\n",
    )
    train = write(
        tmp,
        "train.yaml",
        f"kind: train\nbase_model: {docs}\ndata: {{train_files: [{gone}.jsonl]}}\n"
        f"output_dir: {tmp / 'run'}\n",
    )
    serve = write(
        tmp,
        "serve.yaml",
        f"kind: serve\nretriever: {{index_dir: {gone}}}\ngenerator: {{base_model: {docs}}}\n",
    )
    demo = write(tmp, "demo.yaml", f"kind: demo\ndocuments: [{gone}.jsonl]\nbase_model: {docs}\n")
    retrieval_eval = write(tmp, "r.yaml", f"kind: retrieval-eval\nindex_dir: {gone}\nqueries: {gone}.jsonl\n")
    answer_eval = write(
        tmp,
        "a.yaml",
        f"kind: answer-eval\nquestions: {gone}.jsonl\nfine_tuned_model: ft\noutput_dir: {tmp}\n",
    )
    followups = write(
        tmp,
        "f.yaml",
        f"kind: followup-eval\nindex_dir: {gone}\nqueries: {gone}.jsonl\ncorpus: {gone}.jsonl\n",
    )
    return {
        "validate": (["validate", f"{gone}.yaml"], "cannot read"),
        "index: no config": (["index", f"{gone}.yaml"], "cannot read"),
        "index: no documents": (["index", index], "no documents"),
        "index --update: no index": (["index", indexable, "--update"], "no such folder"),
        "index: output onto a corpus": (["index", onto_docs], "refusing to replace it"),
        "tune-embedder": (["tune-embedder", embedder], "no documents"),
        "tune-reranker": (["tune-reranker", reranker], "not a ragtune index folder"),
        "train": (["train", train], "data file"),
        "serve": (["serve", serve], "no such folder"),
        "demo": (["demo", demo], "ragtune data python-docs"),
        "search": (["search", str(gone), "tea"], "not a ragtune index folder"),
        "delete": (["delete", str(gone), "tea.md"], "not a ragtune index folder"),
        "export": (["export", str(gone)], "not a ragtune model folder"),
        "query": (["query", "tea?", "--url", NOWHERE], "cannot reach the app"),
        "submit: unknown verb": (["submit", "nope", indexable], "cannot submit 'nope'"),
        "submit: no cluster": (["submit", "index", indexable, "--address", NOWHERE], "Jobs API"),
        "jobs list": (["jobs", "list", "--address", NOWHERE], "Jobs API"),
        "jobs status": (["jobs", "status", "raysubmit_x", "--address", NOWHERE], "Jobs API"),
        "jobs logs": (["jobs", "logs", "raysubmit_x", "--address", NOWHERE], "Jobs API"),
        "jobs stop": (["jobs", "stop", "raysubmit_x", "--address", NOWHERE], "Jobs API"),
        "status": (["status", "--address", "127.0.0.1:9"], "cannot reach the Ray cluster"),
        "cluster render": (["cluster", "render", f"{gone}.yaml"], "cannot read"),
        "eval retrieval": (["eval", "retrieval", retrieval_eval], "cannot read"),
        "eval answers": (["eval", "answers", answer_eval], "cannot read"),
        "eval followups": (["eval", "followups", followups], "cannot read"),
        "data python-docs": (
            ["data", "python-docs", "--sources", str(gone), "--out", str(tmp)],
            "python3.11-doc",
        ),
        "model tiny": (["model", "tiny", str(tmp / "m"), "--corpus", f"{gone}.txt"], "corpus file"),
        "model import": (
            ["model", "import", str(tmp / "m"), "--gguf-dir", str(gone), "--gguf-file", "x.gguf"],
            "not found",
        ),
        "tiers": (["tiers", "--tiers", f"{gone}.yaml"], "cannot read"),
        "up": (["up", "--tiers", f"{gone}.yaml"], "cannot read"),
        "unknown verb": (["nope"], "No such command 'nope'"),
    }


def test_every_verb_fails_in_one_line(tmp_path):
    table = cases(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(table, pool.map(lambda case: run_cli(*case[0], timeout=120), table.values())))
    wrong = {}
    for name, result in results.items():
        lines = result.stderr.strip().splitlines()
        fragment = table[name][1]
        if (
            result.returncode == 0
            or len(lines) != 1
            or not lines[0].startswith("error: ")
            or fragment not in lines[0]
        ):
            wrong[name] = f"rc={result.returncode} stderr={result.stderr[-600:]!r}"
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())
    assert (tmp_path / "docs" / "tea.md").is_file()  # nothing a job did not write was deleted


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("search", str(tmp_path / "missing"), "tea", env={"RAGTUNE_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "ArtifactError" in result.stderr
