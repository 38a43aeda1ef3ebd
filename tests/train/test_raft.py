"""RAFT rows become prompts: the oracle shown with the configured probability, hard and random
distractors in the other slots, shuffled, citations that point at the oracle."""

from __future__ import annotations

import pytest

from ragtune.train.config import DataConfig, RaftConfig
from ragtune.train.data import BadRow, to_messages
from ragtune.train.raft import raft_context


def row(number: int) -> dict:
    return {
        "question": f"Question {number}?",
        "answer": f"The colour of item {number} is teal.",
        "oracle": f"Item {number} has a teal colour.",
        "distractors": [f"hard {number}.{i}" for i in range(4)],
        "random_distractors": [f"random {number}.{i}" for i in range(2)],
    }


def shown(example: dict, config: RaftConfig) -> tuple[list[str], str]:
    return raft_context(example, example["question"], example["answer"], config)


def test_the_oracle_is_shown_with_the_configured_probability():
    config = RaftConfig(passages=3, oracle_probability=0.7, random_distractors=1)
    draws = [shown(row(n), config) for n in range(400)]
    with_oracle = [p for p, _ in draws if any(text.startswith("Item") for text in p)]
    assert 0.63 < len(with_oracle) / len(draws) < 0.77
    assert all(len(passages) == 3 for passages, _ in draws)
    for passages, _ in draws:
        kinds = sorted(text.split()[0] for text in passages)
        assert kinds in (["Item", "hard", "random"], ["hard", "hard", "random"])
    positions = {next(i for i, t in enumerate(p) if t.startswith("Item")) for p in with_oracle}
    assert positions == {0, 1, 2}  # shuffled
    assert draws == [shown(row(n), config) for n in range(400)]  # the same draws every run


def test_hard_distractors_come_best_first_and_random_ones_fill_what_is_missing():
    config = RaftConfig(passages=4, oracle_probability=0.0, random_distractors=0)
    passages, _ = shown(row(1), config)
    assert sorted(passages) == ["hard 1.0", "hard 1.1", "hard 1.2", "hard 1.3"]
    few_hard = {**row(2), "distractors": ["hard only"]}
    passages, _ = shown(few_hard, config.model_copy(update={"passages": 3}))
    assert sorted(passages) == ["hard only", "random 2.0", "random 2.1"]
    with pytest.raises(ValueError, match="needs 4 distractors, has 3"):
        shown(few_hard, config)


def test_citations_name_the_oracle_only_when_it_supports_the_answer():
    config = RaftConfig(passages=3, oracle_probability=1.0, cite=True)
    passages, answer = shown(row(5), config)
    number = int(answer.rsplit("[", 1)[1].rstrip("]"))
    assert passages[number - 1] == "Item 5 has a teal colour."
    unsupported = {**row(6), "answer": "Nobody knows that."}
    _, answer = shown(unsupported, config)
    assert answer == "Nobody knows that."
    _, answer = shown(row(7), config.model_copy(update={"oracle_probability": 0.0}))
    assert "[" not in answer  # no oracle shown: nothing to cite


def test_raft_rows_are_detected_and_bad_ones_get_a_reason():
    config = DataConfig(train_files=["x"], raft={"oracle_probability": 1.0})
    messages, answer = to_messages(row(3), config)
    assert "Item 3 has a teal colour." in messages[-1]["content"] and answer == row(3)["answer"]
    with pytest.raises(BadRow, match="missing oracle"):
        to_messages({**row(3), "oracle": []}, config.model_copy(update={"format": "raft"}))
    with pytest.raises(BadRow, match="distractors must be"):
        to_messages({**row(3), "distractors": [1, 2]}, config)
