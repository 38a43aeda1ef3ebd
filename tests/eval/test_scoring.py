"""Answer scores against hand-computed values, and the FAQ benchmark's short answers."""

import pytest

from ragtune.core.scoring import rouge_l, token_f1
from ragtune.eval.benchmarks import short_answer


def test_token_f1_and_rouge_l_match_hand_computed_values():
    # tokens after normalisation: [cat, sat, on, mat] vs [cat, sat, mat]: 3 shared
    assert token_f1("The cat sat on the mat.", "a cat sat mat") == pytest.approx(2 * 0.75 * 1 / 1.75)
    # LCS of [cat, mat, sat] and [cat, sat, mat] is 2 → P = R = 2/3
    assert rouge_l("cat mat sat", "cat sat mat") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and rouge_l("dog", "cat") == 0.0


def test_short_answer_keeps_prose_and_drops_markup_and_code():
    text = (
        "\nUse :func:`sorted` or see :pep:`8` and `the docs <https://x.org>`_::\n\n"
        "   sorted(x)\n\n.. note:: skip me\n\nA second sentence. A third one.\n"
    )
    assert short_answer(text) == "Use sorted or see PEP 8 and the docs: A second sentence. A third one."
    assert short_answer(text, max_words=9) == "Use sorted or see PEP 8 and the docs:"
