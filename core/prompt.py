"""The one prompt format: (question, retrieved chunks) → chat messages → model input.

Training and serving both call these, so a model is served exactly as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the question using the context when it is relevant."
)


def rag_messages(question: str, contexts: Sequence[str], system_prompt: str) -> list[dict]:
    """System and user messages for a question, with numbered context chunks when given."""
    if contexts:
        numbered = "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(contexts, 1))
        user = f"Context:\n{numbered}\n\nQuestion: {question.strip()}"
    else:
        user = question.strip()
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The text the model sees before it answers, through the tokenizer's chat template."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def end_of_sequence_ids(tokenizer, generation_config) -> set[int]:
    """Token ids that end an answer: the tokenizer's and the model's generation config's."""
    configured = generation_config.eos_token_id
    return {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}


def tokenize_example(tokenizer, messages: list[dict], answer: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for prompt + answer; labels are -100 except on the answer tokens."""
    prompt = render_prompt(tokenizer, messages)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": answer}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError("the chat template does not extend the prompt with the answer")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


CONDENSE_INSTRUCTION = (
    "Rewrite the user's last message as one standalone search question that makes sense without "
    "the conversation: replace pronouns with what they refer to. Reply with the question only."
)


# One worked example: small instruct models answer the question instead of rewriting it without one.
CONDENSE_EXAMPLE = [
    {"role": "user", "content": "I want to read a CSV file."},
    {"role": "assistant", "content": "You can use the csv module."},
    {"role": "user", "content": "How do I skip its header?"},
]
CONDENSE_EXAMPLE_ANSWER = "How do I skip the header row when reading a CSV file with the csv module?"


def condense_messages(conversation: Sequence[dict], max_turn_chars: int = 500) -> list[dict]:
    """Chat messages asking a model to turn the conversation's last user message into a
    standalone question (the generator-based query rewrite), after one worked example."""

    def transcript(turns: Sequence[dict]) -> str:
        lines = [
            f"{turn['role'].capitalize()}: {' '.join(turn['content'].split())[:max_turn_chars]}"
            for turn in turns
            if turn["role"] in ("user", "assistant")
        ]
        return "Conversation:\n" + "\n".join(lines) + "\n\nStandalone question:"

    return [
        {"role": "system", "content": CONDENSE_INSTRUCTION},
        {"role": "user", "content": transcript(CONDENSE_EXAMPLE)},
        {"role": "assistant", "content": CONDENSE_EXAMPLE_ANSWER},
        {"role": "user", "content": transcript(conversation)},
    ]
