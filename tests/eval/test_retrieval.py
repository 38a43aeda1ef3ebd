"""Retrieval metrics against hand-computed values, judgements parsing, and the eval CLI."""

import json
import math

import pytest

from ragtune.core.errors import InputError
from ragtune.eval.retrieval import (
    GAIN_KEY,
    RetrievalEvalResult,
    mrr_at_k,
    ndcg_at_k,
    read_judgements,
    recall_at_k,
)
from tests.helpers import cross_encoder, run_cli

RANKED = ["a", "b", "c", "d"]


def test_recall():
    assert recall_at_k(RANKED, {"b", "z"}, 2) == 0.5
    assert recall_at_k(RANKED, {"d"}, 3) == 0.0
    assert recall_at_k(RANKED, {"d"}, 4) == 1.0


def test_mrr():
    assert mrr_at_k(RANKED, {"c"}, 5) == pytest.approx(1 / 3)
    assert mrr_at_k(RANKED, {"c", "a"}, 5) == 1.0
    assert mrr_at_k(RANKED, {"d"}, 3) == 0.0


def test_ndcg():
    # relevant at ranks 2 and 4; ideal puts them at 1 and 2
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, {"b", "d"}, 4) == pytest.approx(expected)
    assert ndcg_at_k(RANKED, {"a"}, 4) == 1.0


def test_bad_judgement_line_is_named(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "ok", "relevant": ["a"]}\n{"query": "", "relevant": []}\n')
    with pytest.raises(InputError, match="q.jsonl:2"):
        read_judgements(path)


def test_cli_index_search_eval(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    corpus = [("tea", "Steep green tea for two minutes."), ("rose", "Prune roses in winter.")]
    (docs / "c.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in corpus))
    (tmp_path / "index.yaml").write_text(
        f"kind: index\ndocuments: [{docs}]\noutput_dir: {tmp_path / 'idx'}\n"
    )
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": "how to make tea", "relevant": ["tea"]}) + "\n")
    (tmp_path / "eval.yaml").write_text(
        f"kind: retrieval-eval\nindex_dir: {tmp_path / 'idx'}\nqueries: {tmp_path / 'q.jsonl'}\n"
        f"k: [1]\noutput: {tmp_path / 'out.json'}\n"
    )
    built = run_cli("index", str(tmp_path / "index.yaml"))
    assert built.returncode == 0, built.stderr[-2000:]
    assert "2 chunks" in built.stdout
    found = run_cli("search", str(tmp_path / "idx"), "pruning flowers", "-k", "1")
    assert found.returncode == 0 and "Prune roses" in found.stdout
    model = cross_encoder(tmp_path / "ce")
    reranked = run_cli("search", str(tmp_path / "idx"), "pruning flowers", "-k", "2", "--rerank", str(model))
    assert reranked.returncode == 0 and reranked.stdout.count(" → ") == 2, reranked.stderr[-2000:]
    scored = run_cli("eval", "retrieval", str(tmp_path / "eval.yaml"), "--set", f"rerank.model={model}")
    assert scored.returncode == 0, scored.stderr[-2000:]
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["dense"]["recall@1"] == 1.0
    assert set(figures) == {
        "dense",
        "bm25",
        "hybrid",
        "dense+rerank",
        "bm25+rerank",
        "hybrid+rerank",
        GAIN_KEY,
    }
    assert set(figures[GAIN_KEY]) == {"dense+rerank", "bm25+rerank", "hybrid+rerank"}
    gain = figures[GAIN_KEY]["bm25+rerank"]["recall@1"]
    assert gain["mean"] == figures["bm25+rerank"]["recall@1"] - figures["bm25"]["recall@1"]
    assert "dense+rerank" in scored.stdout and "reranked − first stage" in scored.stdout
    anchored = run_cli(
        "search", str(tmp_path / "idx"), "pruning flowers", "-k", "2", "--rerank", str(model),
        "--first-stage-weight", "100",
    )  # fmt: skip
    assert anchored.returncode == 0 and anchored.stdout.count(" → ") == 2, anchored.stderr[-2000:]
    for flag, value in (("--first-stage-weight", "1"), ("--candidates", "5")):
        refused = run_cli("search", str(tmp_path / "idx"), "tea", flag, value)
        assert refused.returncode == 2 and "give --rerank MODEL" in refused.stderr
    missing = run_cli("search", str(tmp_path / "idx"), "tea", "--rerank", str(tmp_path / "no-model"))
    assert missing.returncode == 2 and "--rerank: model folder" in missing.stderr
    missing = run_cli(
        "eval", "retrieval", str(tmp_path / "eval.yaml"), "--set", f"rerank.model={tmp_path}/no"
    )
    assert missing.returncode == 2 and "rerank.model: model folder" in missing.stderr


def test_cli_index_config_typo_exits_2(tmp_path):
    (tmp_path / "index.yaml").write_text("kind: index\ndocuments: [x]\noutput_dir: y\nembeding: {model: m}\n")
    result = run_cli("index", str(tmp_path / "index.yaml"))
    assert result.returncode == 2
    assert "did you mean 'embedding'" in result.stderr


def test_cli_unknown_tier_in_job_config(tmp_path):
    (tmp_path / "index.yaml").write_text("kind: index\ndocuments: [x]\noutput_dir: y\n")
    result = run_cli("validate", str(tmp_path / "index.yaml"), "--set", "tier=gpu-a100")
    assert result.returncode == 2 and "known tiers" in result.stderr


def test_rerank_gains_are_paired_per_query_with_an_interval():
    per_query = {
        "dense": {"recall@1": [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]},
        "dense+rerank": {"recall@1": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]},
    }
    result = RetrievalEvalResult.of(per_query)
    assert result.scores == {"dense": {"recall@1": 0.375}, "dense+rerank": {"recall@1": 0.625}}
    gain = result.rerank_gains["dense+rerank"]["recall@1"]
    # Two of eight queries gain 1 and none lose: no resample can lose, and with eight queries the
    # interval is still wide.
    assert gain.mean == 0.25 and 0 <= gain.low < 0.25 < gain.high
    assert "+0.250 [" in result.table() and set(result.to_json()) == {"dense", "dense+rerank", GAIN_KEY}
    assert RetrievalEvalResult.of({"dense": per_query["dense"]}).rerank_gains == {}
