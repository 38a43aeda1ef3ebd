"""Query processing before retrieval: normalise the text, decide whether to retrieve, and turn a
follow-up into a standalone search query.

The conversation itself is never changed; only the text sent to the retriever is.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

RetrievalChoice = Literal["auto", "always", "never"]

# Boilerplate that tries to steer the model; useless (and noisy) as search terms.
_INJECTION = re.compile(
    r"(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|system)\s+(?:instructions?|prompts?|messages?|rules)[^.?!\n]*[.?!]?"
    r"|you\s+are\s+now\s+[^.?!\n]*[.?!]?"
    r"|\b(?:system|assistant)\s*(?:prompt)?\s*:\s*",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|howdy|greetings|thanks|thank\s+you|cheers|bye|goodbye|good\s+"
    r"(?:morning|afternoon|evening)|ok(?:ay)?|great|cool|nice)\b[\s,!.]*"
    r"(?:there|so\s+much|a\s+lot|again|everyone|ragtune)?[\s,!.:)]*$",
    re.IGNORECASE,
)
GREETING_MAX_CHARS = 80  # longer messages are no greeting; the bound keeps the match linear
_ABOUT_CONVERSATION = re.compile(
    r"\b(?:what\s+(?:did|have)\s+(?:i|we|you)\s+(?:just\s+)?(?:say|said|ask|asked|mean|talk)"
    r"|(?:summari[sz]e|recap)\s+(?:our|this|the)\s+(?:conversation|chat|discussion)"
    r"|(?:repeat|rephrase|shorten)\s+(?:that|your\s+(?:last\s+)?answer)"
    r"|earlier\s+in\s+(?:this|our)\s+(?:conversation|chat))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QueryPlan:
    """What retrieval does for one request, and why: returned to the client and logged."""

    retrieval: bool
    reason: str
    query: str
    strategy: str

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(text: str, max_chars: int) -> str:
    """Injection boilerplate dropped, whitespace collapsed, trimmed, cut to `max_chars` at a word.
    Whitespace is collapsed first: runs of it would make the injection pattern backtrack."""
    text = " ".join(_INJECTION.sub(" ", " ".join(text.split())).split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def needs_retrieval(message: str) -> tuple[bool, str]:
    """Greetings and questions about the conversation itself skip retrieval; the rest retrieve."""
    short = " ".join(message.split()) if len(message) <= 4 * GREETING_MAX_CHARS else ""
    if 0 < len(short) <= GREETING_MAX_CHARS and _GREETING.match(short):
        return False, "greeting or small talk"
    if _ABOUT_CONVERSATION.search(message):
        return False, "about the conversation itself"
    return True, "knowledge question"


def user_turns(conversation: list[dict]) -> list[str]:
    return [turn["content"] for turn in conversation if turn["role"] == "user"]


def recent_turns_query(conversation: list[dict], turns: int) -> str:
    """The cheap rewrite: the last `turns` user messages (the last one included), oldest first."""
    return " ".join(user_turns(conversation)[-turns:])


def plan_query(
    conversation: list[dict], choice: RetrievalChoice, strategy: str, turns: int, max_chars: int
) -> QueryPlan:
    """Decide whether to retrieve and the search text, before any model-based rewrite.

    With the `condense` strategy on a multi-turn conversation, the plan's query is the cheap
    rewrite; the caller replaces it with the generator's condensed question.
    """
    last = conversation[-1]["content"]
    if choice == "never":
        return QueryPlan(False, "request asked for no retrieval", "", "none")
    retrieve, reason = needs_retrieval(last) if choice == "auto" else (True, "request forced retrieval")
    if not retrieve:
        return QueryPlan(False, reason, "", "none")
    if strategy == "none" or len(user_turns(conversation)) < 2:
        return QueryPlan(True, reason, normalise(last, max_chars), "none")
    return QueryPlan(True, reason, normalise(recent_turns_query(conversation, turns), max_chars), strategy)
