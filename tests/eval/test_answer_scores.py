"""Intervals, grounding, citations and the judge of `ragtune eval answers`, on hand-made answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ragtune.core.config import validate_data
from ragtune.core.errors import ClusterError, ConfigError
from ragtune.core.text import supported_share
from ragtune.eval.answers import AnswerEvalConfig
from ragtune.eval.grounding import citation_precision, citations
from ragtune.eval.judge import Judge, JudgeConfig, verdict
from ragtune.eval.uncertainty import mean_interval, paired_difference

PASSAGES = ["The sorted function returns a new sorted list.", "Tuples are immutable sequences."]


def test_bootstrap_intervals_cover_the_mean_and_narrow_with_more_questions():
    few = mean_interval([0.0, 1.0] * 5)
    many = mean_interval([0.0, 1.0] * 200)
    assert few.low < 0.5 < few.high and many.low < 0.5 < many.high
    assert many.high - many.low < (few.high - few.low) / 3
    assert mean_interval([0.4] * 7) == mean_interval([0.4] * 7)  # seeded: reproducible


def test_bootstrap_over_many_questions_draws_in_blocks_with_the_normal_width():
    values = np.random.default_rng(1).random(4_000)  # 40 M resampled values: 20 blocks
    interval = mean_interval(values)
    half_width = 1.96 * values.std() / np.sqrt(values.size)
    assert interval.low < values.mean() < interval.high
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.1)


def test_a_paired_difference_cancels_what_both_systems_find_hard():
    hard_easy = [0.0, 0.9, 0.1, 0.8, 0.05, 0.95] * 5
    better = [score + 0.05 for score in hard_easy]  # always a little better, on the same questions
    paired = paired_difference(better, hard_easy)
    assert paired.mean == pytest.approx(0.05) and paired.excludes_zero()
    same = paired_difference(hard_easy, hard_easy)
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero()
    noisy = paired_difference([1.0, 0.0] * 10, [0.0, 1.0] * 10)
    assert not noisy.excludes_zero()
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 0.0])


def test_grounding_counts_content_words_found_in_the_passages():
    assert supported_share("It returns a new sorted list.", PASSAGES) == 1.0
    # content tokens: returns, new, sorted, list, dictionary, keys → 4 of 6 in the passages
    assert supported_share("returns a new sorted list of dictionary keys", PASSAGES) == pytest.approx(4 / 6)
    assert supported_share("anything", []) is None and supported_share("it is the", PASSAGES) is None


def test_citation_precision_checks_the_cited_passage_holds_the_sentence():
    assert citations("First claim [1]. Second one [2]") == [(1, "First claim"), (2, "Second one")]
    assert citation_precision("sorted returns a new list [1].", PASSAGES) == 1.0
    assert citation_precision("sorted returns a new list [2].", PASSAGES) == 0.0  # wrong passage
    assert citation_precision("Tuples are immutable [2]. Lists sort [7].", PASSAGES) == 0.5  # [7]: none
    assert citation_precision("no citation here", PASSAGES) is None


class JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that says yes when the answer mentions tuples."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        asked = body["messages"][-1]["content"].split("Answer:")[1]
        JudgeHandler.seen.append((body["model"], self.headers.get("Authorization")))
        reply = "Yes." if "tuple" in asked.lower() else "No, it is not."
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_the_judge_asks_an_openai_compatible_endpoint(monkeypatch):
    JudgeHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("JUDGE_KEY", "secret")
    url = f"http://127.0.0.1:{server.server_port}"
    judge = Judge(JudgeConfig(url=url, model="judge-model", api_key_env="JUDGE_KEY"))
    try:
        assert judge("Tuples are immutable.", PASSAGES) == 1.0
        assert judge("Lists are immutable.", PASSAGES) == 0.0
        assert judge("Anything", []) is None  # nothing to judge against: no request
        assert JudgeHandler.seen == [("judge-model", "Bearer secret")] * 2
    finally:
        judge.close()
        server.shutdown()
        server.server_close()
    with pytest.raises(ClusterError, match="cannot reach the judge"):
        Judge(JudgeConfig(url=url, model="m"))("An answer", PASSAGES)
    assert verdict("**Yes**") == 1.0 and verdict("no") == 0.0 and verdict("maybe") is None


def test_answer_eval_config_checks_its_systems_and_comparisons(tmp_path):
    base = {"questions": "q.jsonl", "output_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="set fine_tuned_model"):
        validate_data(AnswerEvalConfig, base, "eval.yaml")
    defaults = validate_data(AnswerEvalConfig, {**base, "fine_tuned_model": "ft"}, "eval.yaml")
    assert [s.name for s in defaults.system_specs()] == ["base", "RAG", "fine-tuned", "fine-tuned + RAG"]
    assert defaults.comparison_pairs()[0] == ("RAG", "base")
    systems = [{"name": "a", "model": "m"}, {"name": "b", "model": "m", "retrieval": True, "k": 1}]
    with pytest.raises(ConfigError, match="unknown system 'c'"):
        validate_data(AnswerEvalConfig, {**base, "systems": systems, "comparisons": [["c", "a"]]}, "e")
    with pytest.raises(ConfigError, match="names repeat"):
        validate_data(AnswerEvalConfig, {**base, "systems": systems + systems[:1]}, "e")
