"""Whether an answer is supported by the passages it was given, without a judge model.

`supported_share` (core.text): the share of the answer's content tokens found in the passages.
`citation_precision`: for answers citing passages as `[n]`, the share of citations whose passage
holds most of the content tokens of the sentence that cites it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragtune.core.text import CITATION, supported_share

SUPPORTED = 0.5  # a cited sentence counts as supported when its passage holds this share of it


def citations(answer: str) -> list[tuple[int, str]]:
    """(passage number, the sentence text before it) for every `[n]` in the answer."""
    found, start = [], 0
    for match in CITATION.finditer(answer):
        before = answer[start : match.start()]
        sentence = re.split(r"(?<=[.!?])\s+", before.strip())[-1] if before.strip() else ""
        found.append((int(match.group(1)), sentence))
        start = match.end()
    return found


def citation_precision(answer: str, passages: Sequence[str]) -> float | None:
    """Share of the answer's citations that name a given passage holding most of the cited
    sentence's content; None when the answer cites nothing."""
    cited = citations(answer)
    if not cited:
        return None
    good = 0
    for number, sentence in cited:
        if 1 <= number <= len(passages):
            share = supported_share(sentence, [passages[number - 1]])
            good += share is not None and share >= SUPPORTED
    return good / len(cited)
