"""Training data with Ray Data: read JSONL/Parquet, render prompts, tokenise, split, report bad rows.

Rows come in four forms, detected per row unless the config names one:
- instruction: {"instruction", "input"?, "output"}
- chat: {"messages": [{"role", "content"}, ...]} (the last assistant turn is the target)
- raft: {"question", "answer", "oracle", "distractors", "random_distractors"?} (train.raft)
- rag: {"question", "context": str | [str], "answer"} (the generator learns to use context)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragtune.cluster.resources import data_remote_args
from ragtune.cluster.tiers import HardwareTier
from ragtune.core.errors import InputError
from ragtune.core.prompt import rag_messages, tokenize_example
from ragtune.train.config import DataConfig
from ragtune.train.raft import BadRaftRow, raft_context

IGNORE_INDEX = -100


class BadRow(ValueError):
    """A row that cannot become a training example; the message is the reason counted."""


def to_messages(row: dict[str, Any], config: DataConfig) -> tuple[list[dict], str]:
    """(prompt messages, answer) of one row in the configured or detected format."""
    fmt, system_prompt = config.format, config.system_prompt
    if fmt == "auto":
        fmt = next((f for f, key in FORMAT_KEYS.items() if row.get(key) is not None), "")
        if not fmt:
            raise BadRow("unknown format (no instruction, messages or question field)")
    if fmt == "instruction":
        instruction, extra = _text(row, "instruction"), row.get("input") or ""
        question = f"{instruction}\n\n{extra}" if str(extra).strip() else instruction
        messages, answer = rag_messages(question, [], system_prompt), _text(row, "output")
    elif fmt == "raft":
        question, answer = _text(row, "question"), _text(row, "answer")
        try:
            contexts, answer = raft_context(row, question, answer, config.raft)
        except BadRaftRow as exc:
            raise BadRow(str(exc)) from None
        messages = rag_messages(question, contexts, system_prompt)
    elif fmt == "rag":
        context = row.get("context") or []
        contexts = [context] if isinstance(context, str) else context
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise BadRow("context must be a string or a list of strings")
        messages = rag_messages(_text(row, "question"), contexts, system_prompt)
        answer = _text(row, "answer")
    else:
        turns = row.get("messages")
        if not isinstance(turns, list) or len(turns) < 2:
            raise BadRow("messages must hold at least a user and an assistant turn")
        turns = [dict(t) for t in turns]
        if turns[-1].get("role") != "assistant":
            raise BadRow("the last message must be the assistant's answer")
        messages, answer = turns[:-1], str(turns[-1].get("content") or "")
        if messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
    if not answer.strip():
        raise BadRow("empty answer")
    return messages, answer


FORMAT_KEYS = {"instruction": "instruction", "chat": "messages", "raft": "oracle", "rag": "question"}


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise BadRow(f"missing field '{key}'")
    if not value.strip():
        raise BadRow(f"empty field '{key}'")
    return value


def _plain(value: Any) -> Any:
    """A Ray/numpy cell as plain Python: arrays → lists, missing (NaN) → None."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


class Tokenize:
    """Ray Data stage: rows in, (input_ids, labels, bad) out; bad rows keep their reason and every
    row its split tag."""

    def __init__(self, tokenizer_path: str, config: dict[str, Any]):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.config = DataConfig(**config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "labels": [], "bad": []}
        if SPLIT_COLUMN in batch:
            out[SPLIT_COLUMN] = list(batch[SPLIT_COLUMN])
        keys = [key for key in batch if key != SPLIT_COLUMN]
        for i in range(len(next(iter(batch.values())))):
            row = {key: _plain(batch[key][i]) for key in keys}
            try:
                messages, answer = to_messages(row, self.config)
                ids, labels = tokenize_example(self.tokenizer, messages, answer)
                if len(ids) > self.config.max_length:
                    raise BadRow(f"longer than max_length {self.config.max_length}")
                reason = ""
            except BadRow as exc:
                ids, labels, reason = [], [], str(exc)
            out["input_ids"].append(np.array(ids, dtype=np.int64))
            out["labels"].append(np.array(labels, dtype=np.int64))
            out["bad"].append(reason)
        return out


@dataclass
class PreparedData:
    """Tokenised train and validation datasets, and the bad rows counted by reason."""

    train: Any
    validation: Any
    train_rows: int
    validation_rows: int
    bad_rows: dict[str, int]

    def summary(self) -> str:
        bad = sum(self.bad_rows.values())
        reasons = ", ".join(f"{n} {r}" for r, n in self.bad_rows.items())
        return f"data: {self.train_rows} train / {self.validation_rows} validation examples" + (
            f"; {bad} bad rows skipped ({reasons})" if bad else ""
        )


def read_rows(paths: list[str]):
    """A Ray dataset of the raw rows of JSONL or Parquet files."""
    import ray

    parquet = [p for p in paths if p.endswith(".parquet")]
    jsonl = [p for p in paths if not p.endswith(".parquet")]
    parts = ([ray.data.read_parquet(parquet)] if parquet else []) + (
        [ray.data.read_json(jsonl, lines=True)] if jsonl else []
    )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def prepare_data(config: DataConfig, tokenizer_path: str, seed: int, tier: HardwareTier) -> PreparedData:
    """Tokenise the train and validation files in one Ray Data pass on `tier` (one tokenizer
    actor, not one per split); split the train rows when there are no validation files."""
    import ray

    parts = [_tagged(config.train_files, TRAIN)]
    if config.validation_files:
        parts.append(_tagged(config.validation_files, VALIDATION))
    try:
        rows = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        data = rows.map_batches(
            Tokenize,
            fn_constructor_kwargs={"tokenizer_path": tokenizer_path, "config": config.model_dump()},
            batch_size=64,
            compute=ray.data.ActorPoolStrategy(size=1),
            **data_remote_args(tier, num_cpus=1, num_gpus=0),
        ).materialize()
    except ray.exceptions.RayError as exc:  # a file Ray Data cannot parse, or a tokenizer that fails
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(
            f"cannot prepare training rows from {config.train_files + config.validation_files}: {reason}",
            "check the files (JSONL or Parquet rows) and the base model's tokenizer",
        ) from None
    bad = data.select_columns(["bad"]).filter(lambda row: row["bad"] != "").take_all()
    counts = Counter(row["bad"] for row in bad)

    def usable(split: str):
        return (
            data.filter(lambda row: row["bad"] == "" and row[SPLIT_COLUMN] == split)
            .drop_columns(["bad", SPLIT_COLUMN])
            .materialize()
        )

    train = usable(TRAIN)
    if config.validation_files:
        validation = usable(VALIDATION)
        if validation.count() == 0:
            raise InputError(
                f"no usable validation rows in {config.validation_files}: {dict(counts)}", "fix the data"
            )
    else:
        train, validation = train.train_test_split(
            test_size=config.validation_fraction, shuffle=True, seed=seed
        )
    if train.count() == 0:
        raise InputError(f"no usable training rows in {config.train_files}: {dict(counts)}", "fix the data")
    return PreparedData(train, validation, train.count(), validation.count(), dict(counts))


TRAIN, VALIDATION = "train", "validation"
SPLIT_COLUMN = "ragtune_split"  # which files a row came from, carried through tokenising


def _tagged(paths: list[str], split: str):
    """The raw rows of `paths`, each tagged with the split it belongs to."""
    import pyarrow as pa

    def tag(table: pa.Table) -> pa.Table:
        return table.append_column(SPLIT_COLUMN, pa.array([split] * table.num_rows, pa.string()))

    return read_rows(paths).map_batches(tag, batch_format="pyarrow")


def pad_batch(batch: dict[str, np.ndarray], pad_token_id: int) -> dict[str, Any]:
    """Left-pad a batch of variable-length examples into tensors with an attention mask and the
    position ids the padding would otherwise shift. Every example ends in the last column, so the
    answers (the labelled tail of each example) share one narrow window on the right
    (`loss_window`)."""
    import torch

    length = max(len(ids) for ids in batch["input_ids"])
    count = len(batch["input_ids"])
    input_ids = torch.full((count, length), pad_token_id, dtype=torch.long)
    labels = torch.full((count, length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((count, length), dtype=torch.long)
    for i, (ids, labs) in enumerate(zip(batch["input_ids"], batch["labels"])):
        input_ids[i, length - len(ids) :] = torch.tensor(ids)  # a copy: Ray hands read-only arrays
        labels[i, length - len(labs) :] = torch.tensor(labs)
        mask[i, length - len(ids) :] = 1
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask, "position_ids": position_ids}


def loss_window(labels) -> int:
    """How many columns, counted from the right, hold every position whose next token is a label:
    the only logits the loss needs. The vocabulary projection of the prompt (most of a RAG
    example) is skipped by passing this as `logits_to_keep` with the labels cut to match."""
    labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    if len(labelled) == 0:
        return labels.shape[1]
    return labels.shape[1] - max(int(labelled[0]) - 1, 0)
