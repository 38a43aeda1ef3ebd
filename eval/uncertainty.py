"""Paired bootstrap intervals: how sure a mean score, or a difference between two systems that
answered the same questions, is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _interval(values: np.ndarray, resamples: int, seed: int) -> Interval:
    """Percentile bootstrap of the mean of `values` (one per question)."""
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    draws = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(values.mean()), float(low), float(high))


def mean_interval(scores: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The mean score over the questions, with its 95% interval."""
    return _interval(np.asarray(scores, dtype=float), resamples, seed)


def paired_difference(
    scores: Sequence[float], baseline: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Mean of `scores − baseline` question by question, with its 95% interval: the questions are
    resampled together, so what both systems find hard cancels out."""
    if len(scores) != len(baseline):
        raise ValueError(f"paired scores differ in length: {len(scores)} vs {len(baseline)}")
    return _interval(np.asarray(scores, dtype=float) - np.asarray(baseline, dtype=float), resamples, seed)
