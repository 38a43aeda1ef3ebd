"""The follow-up benchmark's conversations."""

from collections import Counter

from ragtune.eval.followups import followup_conversation, key_phrase


def test_followup_benchmark_replaces_the_rarest_phrase_with_a_pronoun():
    frequencies = Counter({"python": 90, "strings": 30, "immutable": 2, "are": 99, "why": 99})
    assert key_phrase("Why are Python strings immutable?", frequencies, 100) == "Python strings immutable"
    first, reply, followup = followup_conversation("Why are Python strings immutable?", frequencies, 100)
    assert first["content"] == "I have a question about Python strings immutable."
    assert reply["role"] == "assistant" and followup["content"] == "Why are it?"
