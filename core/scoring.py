"""Answer quality against a reference: SQuAD-style token F1 and ROUGE-L (LCS F-measure)."""

from __future__ import annotations

from collections import Counter

from ragtune.core.text import normalise_tokens


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over the shared bag of tokens."""
    predicted, expected = normalise_tokens(prediction), normalise_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of tokens over prediction and reference lengths."""
    predicted, expected = normalise_tokens(prediction), normalise_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    previous = [0] * (len(expected) + 1)
    for token in predicted:
        current = [0]
        for j, other in enumerate(expected):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(expected)
    return 2 * precision * recall / (precision + recall)
