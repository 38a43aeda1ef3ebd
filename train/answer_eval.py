"""Validation answer F1 during training: greedy answers to validation prompts, scored against
their reference answers with the token F1 `ragtune eval answers` reports."""

from __future__ import annotations

import torch

from ragtune.core.prompt import end_of_sequence_ids
from ragtune.core.scoring import token_f1
from ragtune.train.config import AnswerEvalConfig
from ragtune.train.data import IGNORE_INDEX, pad_batch


def prompts_and_references(batch: dict[str, torch.Tensor]) -> list[tuple[list[int], list[int]]]:
    """Each padded example of a batch as (prompt ids, reference answer ids): the unlabelled head
    of its tokens and the labelled tail."""
    examples = []
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        kept = mask.bool()
        ids, labels = ids[kept].tolist(), labels[kept]
        labelled = (labels != IGNORE_INDEX).nonzero()
        start = int(labelled[0]) if len(labelled) else len(ids)
        examples.append((ids[:start], ids[start:]))
    return examples


class AnswerScorer:
    """Answers prompts greedily with the model being trained and sums their token F1."""

    def __init__(self, tokenizer, generation_config, config: AnswerEvalConfig, synced_ranks: bool):
        self.tokenizer = tokenizer
        self.config = config
        self.synced_ranks = synced_ranks  # ZeRO-3 over ranks: every rank decodes until all are done
        self.eos_ids = end_of_sequence_ids(tokenizer, generation_config)

    def f1_sum(self, module, examples: list[tuple[list[int], list[int]]], device) -> float:
        """Sum of the token F1 of `module`'s answers to the examples' prompts."""
        total = 0.0
        size = self.config.batch_size
        for start in range(0, len(examples), size):
            chunk = examples[start : start + size]
            answers = self._answer(module, [prompt for prompt, _ in chunk], device)
            for answer, (_, reference) in zip(answers, chunk):
                total += token_f1(answer, self._text(reference))
        return total

    @torch.no_grad()
    def _answer(self, module, prompts: list[list[int]], device) -> list[str]:
        pad_id = self.tokenizer.pad_token_id
        padded = pad_batch({"input_ids": prompts, "labels": prompts}, pad_id)
        width = padded["input_ids"].shape[1]
        sequences = module.generate(
            input_ids=padded["input_ids"].to(device),
            attention_mask=padded["attention_mask"].to(device),
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            synced_gpus=self.synced_ranks,
        )
        return [self._text(row[width:].tolist()) for row in sequences]

    def _text(self, ids: list[int]) -> str:
        """Text of the tokens before the first end-of-sequence token."""
        ends = [i for i, token in enumerate(ids) if token in self.eos_ids]
        return self.tokenizer.decode(ids[: ends[0]] if ends else ids, skip_special_tokens=True)
