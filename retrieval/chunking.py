"""Token-aware chunking: pack a section's paragraphs into windows of at most `max_tokens`."""

from __future__ import annotations

import re
from collections.abc import Iterator

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def chunk_spans(
    text: str, token_offsets: list[tuple[int, int]], max_tokens: int, overlap_tokens: int
) -> Iterator[tuple[int, int]]:
    """Yield (start, end) character spans of chunks of `text`.

    `token_offsets` are the tokenizer's character offsets of each token. A chunk ends at the
    last paragraph break that keeps it within `max_tokens` (if that keeps at least half the
    window), otherwise mid-paragraph; the next chunk repeats the last `overlap_tokens` tokens.
    """
    count = len(token_offsets)
    breaks = [m.end() for m in PARAGRAPH_BREAK.finditer(text)]
    start = 0
    while start < count:
        end = min(start + max_tokens, count)
        if end < count:
            end = _paragraph_end(token_offsets, breaks, start, end, max_tokens)
        yield token_offsets[start][0], token_offsets[end - 1][1]
        if end >= count:
            return
        start = max(end - overlap_tokens, start + 1)


def _paragraph_end(
    offsets: list[tuple[int, int]], breaks: list[int], start: int, end: int, max_tokens: int
) -> int:
    """Move `end` back to the token after the last paragraph break inside the window."""
    window_start, window_end = offsets[start][0], offsets[end][0]
    inside = [b for b in breaks if window_start < b <= window_end]
    if not inside:
        return end
    for token in range(end, start, -1):
        if offsets[token - 1][1] <= inside[-1] and token - start >= max_tokens // 2:
            return token
    return end
