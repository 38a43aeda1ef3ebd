"""Words as the scores see them: SQuAD's token normalisation, content words, and how much of a
text a set of passages supports. Shared by answer scoring, grounding and RAFT's citations."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
CITATION = re.compile(r"\[(\d{1,3})\]")

# Words that carry no claim: a text is not "supported" by sharing them.
STOPWORDS = frozenset(
    "i me my we our you your he him his she her it its they them their this that these those "
    "am is are was were be been being have has had do does did will would shall should can could "
    "may might must of to in on at by for with from as into about than then so and or but if not "
    "no yes there here what which who whom when where why how all any each some such only also "
    "very just use used using".split()
)


def normalise_tokens(text: str) -> list[str]:
    """Lower case, punctuation and articles removed, split on whitespace (SQuAD's normalisation)."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def same_words_key(text: str) -> str:
    """The text with case and spacing ignored: two headings or questions with the same words
    share it."""
    return " ".join(text.casefold().split())


def content_tokens(text: str) -> list[str]:
    """Normalised tokens that are not stopwords, numbers or citation markers."""
    return [t for t in normalise_tokens(CITATION.sub(" ", text)) if t not in STOPWORDS and not t.isdigit()]


def supported_share(text: str, passages: Sequence[str]) -> float | None:
    """Share of the text's content tokens that occur in the passages; None without passages or
    content."""
    tokens = content_tokens(text)
    if not passages or not tokens:
        return None
    vocabulary = set(content_tokens(" ".join(passages)))
    return sum(token in vocabulary for token in tokens) / len(tokens)
