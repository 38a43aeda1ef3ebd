"""The generator model without Serve: a stream closed early stops decoding and frees the model at
once; stop strings match the decoded text only, never the prompt; a prompt decodes the same alone
or beside any others."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from ragtune.serve.config import GeneratorDeploymentConfig
from ragtune.serve.generator import GenerationParams, GeneratorModel, StopCriteria
from tests.helpers import make_adapter, rag_rows, tiny_model

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


def joined(steps) -> list[dict]:
    """Each stream's text and last piece, from a `stream_batch` iterator."""
    streams: list[dict] = []
    for items in steps:
        streams = streams or [{"text": ""} for _ in items]
        for stream, item in zip(streams, items):
            if item is not None:
                assert "finish_reason" not in stream, "a piece after the last one"
                stream.update({**item, "text": stream["text"] + item["text"]})
    return streams


def test_streams_decoded_together_match_the_batch_and_keep_their_own_limits(generator):
    generator.model.generation_config.eos_token_id = None
    generator.eos_ids = set()
    prompts = [
        generator.prompt([{"role": "user", "content": q}], ["Steep green tea for two minutes."])
        for q in ("tea?", "how long should green tea steep?", "coffee?")
    ]
    params = GenerationParams(max_tokens=12, temperature=0.0, top_p=1.0, stop=())
    never = [threading.Event() for _ in prompts]
    streamed = joined(generator.stream_batch("base", prompts, [params] * 3, never))
    whole = generator.generate_batch("base", prompts, params)
    assert [s["text"] for s in streamed] == [w["text"] for w in whole]
    assert [s["usage"] for s in streamed] == [w["usage"] for w in whole]
    assert all(s["finish_reason"] == "length" for s in streamed)

    stop = whole[1]["text"][len(whole[1]["text"]) // 2 :][:3]
    own = [replace(params, max_tokens=4), replace(params, stop=(stop,)), params]
    streamed = joined(generator.stream_batch("base", prompts, own, never))
    assert streamed[0]["usage"]["completion_tokens"] == 4 and streamed[0]["finish_reason"] == "length"
    assert whole[0]["text"].startswith(streamed[0]["text"])
    assert streamed[1]["text"] == whole[1]["text"][: whole[1]["text"].index(stop)]
    assert streamed[1]["finish_reason"] == "stop"
    assert streamed[2]["text"] == whole[2]["text"]


def test_a_cancelled_stream_stops_alone_and_the_batch_ends_with_the_last(generator):
    generator.model.generation_config.eos_token_id = None
    generator.eos_ids = set()
    prompt = generator.prompt([{"role": "user", "content": "tea?"}], ["Steep green tea."])
    cancelled = [threading.Event(), threading.Event()]
    calls, handle = count_forward_passes(generator)
    try:
        steps = generator.stream_batch("base", [prompt, prompt], [LONG, LONG], cancelled)
        next(steps)
        cancelled[0].set()
        for _ in range(10):
            items = next(steps)
        assert items[0] is None and items[1] is not None  # the other stream carries on
        cancelled[1].set()
        rest = list(steps)
        assert len(calls) < 40, f"{len(calls)} decoding steps after both streams went away"
        assert all(item is None for items in rest for item in items)
    finally:
        handle.remove()
    assert generator._lock.acquire(blocking=False)
    generator._lock.release()


def test_a_bfloat16_generator_serves_base_and_adapter_in_bfloat16(tmp_path):
    model = tiny_model(tmp_path / "model")
    config = GeneratorDeploymentConfig(
        base_model=str(model), adapters={"qa": make_adapter(model, tmp_path / "adapter")}, dtype="bfloat16"
    )
    generator = GeneratorModel(config)
    assert {p.dtype for p in generator.model.parameters()} == {torch.bfloat16}
    prompt = generator.prompt([{"role": "user", "content": "tea?"}], ["Steep green tea for two minutes."])
    params = GenerationParams(max_tokens=8, temperature=0.0, top_p=1.0, stop=())
    for name in ("base", "qa"):
        (whole,) = generator.generate_batch(name, [prompt], params)
        assert 0 < whole["usage"]["completion_tokens"] <= 8
        (streamed,) = joined(generator.stream_batch(name, [prompt], [params], [threading.Event()]))
        assert streamed["text"] == whole["text"]


def step_scores(generator, model: str, prompts: list[str], steps: int) -> torch.Tensor:
    """The logits of every greedy decoding step, [prompts, steps, vocabulary]."""
    ids = generator.encode_prompts(prompts)
    with torch.no_grad(), generator._adapter(model):
        out = generator.model.generate(
            **ids,
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=generator.tokenizer.pad_token_id,
        )
    return torch.stack(out.scores, dim=1)


def rag_prompts(generator, count: int) -> list[str]:
    """RAG prompts of as many different lengths."""
    rows = rag_rows(count)
    return [
        generator.prompt([{"role": "user", "content": r["question"]}], [" ".join(r["context"] * (1 + i))])
        for i, r in enumerate(rows)
    ]


def test_a_prompt_decodes_the_same_alone_or_beside_any_others_in_bfloat16(tmp_path):
    model = tiny_model(tmp_path / "model")
    config = GeneratorDeploymentConfig(
        base_model=str(model), adapters={"qa": make_adapter(model, tmp_path / "adapter")}, dtype="bfloat16"
    )
    generator = GeneratorModel(config)
    prompts = rag_prompts(generator, 6)
    for name in ("base", "qa"):
        together = step_scores(generator, name, prompts, steps=10)
        assert torch.equal(step_scores(generator, name, prompts[1:4], steps=10), together[1:4])
        for row, prompt in enumerate(prompts):  # alone: no padding, a one-row batch
            assert torch.equal(step_scores(generator, name, [prompt], steps=10)[0], together[row]), (
                name,
                row,
            )


def test_batch_invariant_attention_computes_what_the_models_own_attention_does(tmp_path):
    model = str(tiny_model(tmp_path / "model"))
    invariant = GeneratorModel(GeneratorDeploymentConfig(base_model=model, dtype="float32"))
    own = GeneratorModel(GeneratorDeploymentConfig(base_model=model, dtype="float32", batch_invariant=False))
    prompts = rag_prompts(own, 4)
    expected = step_scores(own, "base", prompts, steps=4)
    assert torch.allclose(step_scores(invariant, "base", prompts, steps=4), expected, atol=1e-4)
