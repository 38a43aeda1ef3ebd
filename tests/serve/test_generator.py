"""The generator model without Serve: a stream closed early stops decoding and frees the model at
once; stop strings match the decoded text only, never the prompt."""

from __future__ import annotations

import threading

import pytest
import torch

from ragtune.serve.config import GeneratorDeploymentConfig
from ragtune.serve.generator import GenerationParams, GeneratorModel, StopCriteria
from tests.helpers import tiny_model

LONG = GenerationParams(max_tokens=300, temperature=0.0, top_p=1.0, stop=())


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    model = tiny_model(tmp_path_factory.mktemp("generator"))
    return GeneratorModel(GeneratorDeploymentConfig(base_model=str(model), max_new_tokens=300))


def count_forward_passes(generator):
    calls = []
    handle = generator.model.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_a_stream_closed_early_stops_decoding_and_frees_the_model(generator):
    prompt = generator.prompt([{"role": "user", "content": "tea?"}], ["Steep green tea for two minutes."])
    generator.model.generation_config.eos_token_id = None  # decode to max_tokens unless stopped
    generator.eos_ids = set()
    calls, handle = count_forward_passes(generator)
    try:
        finished = list(generator.stream("base", prompt, LONG))
        assert finished[-1]["usage"]["completion_tokens"] == 300 and len(calls) == 300
        calls.clear()
        stream = generator.stream("base", prompt, LONG)
        next(stream)
        stream.close()  # what Serve does when the client goes away
        assert len(calls) < 60, f"{len(calls)} decoding steps after the stream was closed"
        assert generator._lock.acquire(blocking=False)  # the model is free at once
        generator._lock.release()
    finally:
        handle.remove()


def test_stop_strings_match_the_decoded_text_only():
    from transformers import AutoTokenizer

    from ragtune.retrieval.embed import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))

    def ids(text):
        return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    prompt, answer = ids("the stop word is answer and then"), ids("more words done")
    sequence = torch.cat([prompt, answer], dim=1)
    never = StopCriteria(tokenizer, prompt.shape[1], ("answer and",))
    assert not any(never(sequence[:, :end], None)[0] for end in range(prompt.shape[1] + 1, sequence.shape[1]))
    straddling = StopCriteria(tokenizer, prompt.shape[1], ("then more",))
    assert not straddling(sequence[:, : prompt.shape[1] + 1], None)[0]
    done = StopCriteria(tokenizer, prompt.shape[1], ("done",))
    assert not done(sequence[:, :-1], None)[0] and done(sequence, None)[0]
    cancelled = threading.Event()
    either = StopCriteria(tokenizer, prompt.shape[1], (), cancelled)
    assert not either(sequence, None)[0]
    cancelled.set()
    assert either(torch.cat([sequence, sequence]), None).tolist() == [True, True]
