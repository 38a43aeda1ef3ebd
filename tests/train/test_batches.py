"""Training batches: left padding with position ids, and a loss computed only over the answers'
window that equals the loss over every position."""

from __future__ import annotations

import pytest

from ragtune.core.prompt import tokenize_example
from ragtune.train.config import DataConfig
from ragtune.train.data import IGNORE_INDEX, loss_window, pad_batch, to_messages
from tests.helpers import rag_rows, tiny_model


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tiny_model(tmp_path_factory.mktemp("batches"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = DataConfig(train_files=["unused.jsonl"])
    rows = rag_rows(4, seed=3)
    rows[1]["context"] = rows[1]["context"][:1]  # examples of different lengths
    examples = [tokenize_example(tokenizer, *to_messages(row, config)) for row in rows]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = {"input_ids": [ids for ids, _ in examples], "labels": [labels for _, labels in examples]}
    return model, batch, tokenizer.pad_token_id


def right_padded(batch: dict, pad_id: int) -> dict:
    import torch

    length = max(len(ids) for ids in batch["input_ids"])
    out = {
        "input_ids": torch.full((len(batch["input_ids"]), length), pad_id),
        "labels": torch.full((len(batch["input_ids"]), length), IGNORE_INDEX),
        "attention_mask": torch.zeros((len(batch["input_ids"]), length), dtype=torch.long),
    }
    for i, (ids, labels) in enumerate(zip(batch["input_ids"], batch["labels"])):
        out["input_ids"][i, : len(ids)] = torch.tensor(ids)
        out["labels"][i, : len(labels)] = torch.tensor(labels)
        out["attention_mask"][i, : len(ids)] = 1
    return out


def test_examples_end_together_and_keep_their_positions(model_and_batch):
    _, batch, pad_id = model_and_batch
    padded = pad_batch(batch, pad_id)
    lengths = [len(ids) for ids in batch["input_ids"]]
    assert len(set(lengths)) > 1
    for row, length in enumerate(lengths):
        assert padded["attention_mask"][row].sum() == length
        assert padded["input_ids"][row, -length:].tolist() == batch["input_ids"][row]
        assert padded["position_ids"][row, -length:].tolist() == list(range(length))


def test_the_windowed_loss_and_gradients_equal_those_over_every_position(model_and_batch):
    import torch

    model, batch, pad_id = model_and_batch
    padded = pad_batch(batch, pad_id)
    keep = loss_window(padded["labels"])
    longest_answer = max(sum(label != IGNORE_INDEX for label in labels) for labels in batch["labels"])
    assert keep == longest_answer + 1 < padded["labels"].shape[1]

    def loss_and_grad(inputs: dict) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        return loss.item(), model.lm_head.weight.grad.clone()

    full, full_grad = loss_and_grad(right_padded(batch, pad_id))
    windowed, windowed_grad = loss_and_grad(
        {**padded, "labels": padded["labels"][:, -keep:], "logits_to_keep": keep}
    )
    assert windowed == pytest.approx(full, rel=1e-5)
    assert torch.allclose(windowed_grad, full_grad, rtol=1e-4, atol=1e-6)


def test_a_batch_without_labels_keeps_every_column():
    import torch

    labels = torch.full((2, 7), IGNORE_INDEX)
    assert loss_window(labels) == 7
    labels[0, 0] = 5  # a label no logit predicts still needs every column after it
    assert loss_window(labels) == 7
