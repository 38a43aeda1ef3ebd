"""Paired bootstrap intervals: how sure a mean score, or a difference between two systems that
answered the same questions, is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
BLOCK_CELLS = 2_000_000  # resampled values drawn at once (16 MB), whatever the number of questions


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
    rng, per_block = np.random.default_rng(seed), max(1, BLOCK_CELLS // values.size)
    means = np.concatenate(
        [
            values[rng.integers(0, values.size, size=(min(per_block, resamples - start), values.size))].mean(
                axis=1
            )
            for start in range(0, resamples, per_block)
        ]
    )
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
