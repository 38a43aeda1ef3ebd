"""The generator model: a causal LM with optional LoRA adapters, prompted by the shared RAG
prompt; on a GPU when one is visible, else on CPU, in the configured dtype (by default bf16 on a
GPU, fp32 on CPU). Serve's deployment around it is in `ragtune.serve.replicas`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.core.artifacts import ModelManifest
from ragtune.core.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    condense_messages,
    end_of_sequence_ids,
    rag_messages,
    render_prompt,
)
from ragtune.serve.batch_invariance import attention_implementation, decode_single_rows_as_two
from ragtune.serve.config import GeneratorDeploymentConfig


@dataclass(frozen=True)
class GenerationParams:
    """The sampling knobs of one request."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]


def condense_params(max_tokens: int = 48) -> GenerationParams:
    """Greedy, one line: how the generator rewrites a follow-up into a standalone question."""
    return GenerationParams(max_tokens, temperature=0.0, top_p=1.0, stop=("\n",))


class UnknownModel(ValueError):
    """A request named a model (adapter) this generator does not serve."""


class GeneratorModel:
    """Loads base + adapters once; answers (conversation, contexts) one request at a time."""

    def __init__(self, config: GeneratorDeploymentConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        # The one place serving picks its device and precision.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        auto = "bfloat16" if self.device.type == "cuda" else "float32"
        dtype = getattr(torch, auto if config.dtype == "auto" else config.dtype)
        extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
        # A trained adapter folder carries the tokenizer (and chat template) it was trained with.
        trained = [p for p in config.adapters.values() if (Path(p) / "tokenizer_config.json").is_file()]
        self.tokenizer = (
            AutoTokenizer.from_pretrained(trained[0])
            if trained
            else AutoTokenizer.from_pretrained(config.base_model, **extra)
        )
        if config.batch_invariant:
            extra["attn_implementation"] = attention_implementation()
        model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype, **extra)
        for position, (name, path) in enumerate(config.adapters.items()):
            if position == 0:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
            else:
                model.load_adapter(str(path), adapter_name=name)
        self.model = model.to(self.device, dtype).eval()  # adapters too: PEFT loads them in fp32
        if config.batch_invariant:
            decode_single_rows_as_two(self.model)
        self.tokenizer.padding_side = "left"  # batched prompts end together, where decoding starts
        self.eos_ids = end_of_sequence_ids(self.tokenizer, model.generation_config)
        self.system_prompt = config.system_prompt or self._trained_system_prompt()
        self._lock = threading.Lock()  # the active adapter is model-wide state

    @property
    def model_names(self) -> list[str]:
        return self.config.model_names

    def prompt(self, conversation: list[dict], contexts: list[str]) -> str:
        """History as is; the last user turn rebuilt with the context, as training did."""
        *history, last = conversation
        turns = [t for t in history if t["role"] != "system"]
        rag = rag_messages(last["content"], contexts, self.system_prompt)
        return render_prompt(self.tokenizer, [rag[0], *turns, rag[1]])

    def condense_batch(self, conversations: list[list[dict]], max_tokens: int = 48) -> list[str]:
        """The base model's standalone rewrite of each conversation's last user message."""
        prompts = [self.condense_prompt(conversation) for conversation in conversations]
        results = self.generate_batch(self.config.model_name, prompts, condense_params(max_tokens))
        return [r["text"].strip() for r in results]

    def condense_prompt(self, conversation: list[dict]) -> str:
        return render_prompt(self.tokenizer, condense_messages(conversation))

    def generate_batch(self, model: str, prompts: list[str], params: GenerationParams) -> list[dict]:
        """Whole completions of several prompts in one left-padded `generate`: text, finish
        reason and token usage of each."""
        import torch

        self._check_model(model)
        ids = self.encode_prompts(prompts)
        kwargs = self._generate_kwargs(ids, params, streamer=None)
        with self._lock, torch.no_grad(), self._adapter(model):
            sequences = self.model.generate(**kwargs).sequences
        prompt_tokens = ids["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_length in zip(sequences[:, ids["input_ids"].shape[1] :], prompt_tokens):
            new = row.tolist()
            ends = [i for i, token in enumerate(new) if token in self.eos_ids]
            finished = bool(ends)
            new = new[: ends[0]] if finished else new
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            cut = _cut_at_stop(text, params.stop)
            stopped = finished or cut is not None or len(new) < kwargs["max_new_tokens"]
            results.append(
                {
                    "text": text if cut is None else cut,
                    "finish_reason": "stop" if stopped else "length",
                    "usage": {
                        "prompt_tokens": prompt_length,
                        "completion_tokens": len(new),
                        "total_tokens": prompt_length + len(new),
                    },
                }
            )
        return results

    def stream(self, model: str, prompt: str, params: GenerationParams) -> Iterator[dict]:
        """Yield {"text"} pieces as they decode; the last piece carries finish_reason and usage.
        Closing the iterator early (the client went away) stops decoding at the next token and
        releases the model before `close()` returns."""
        cancelled = threading.Event()
        steps = self.stream_batch(model, [prompt], [params], [cancelled])
        try:
            for (piece,) in steps:
                if piece is not None:
                    yield piece
        finally:
            cancelled.set()
            steps.close()

    def stream_batch(
        self,
        model: str,
        prompts: list[str],
        params: list[GenerationParams],
        cancelled: list[threading.Event],
    ) -> Iterator[list[dict | None]]:
        """Decode several streams as one left-padded batch (they share `model`, temperature and
        top_p; each keeps its own max_tokens and stop strings). Per decoding step, yield one item
        per stream: a {"text"} piece, its last piece (with finish_reason and usage), or None
        (nothing new, or already finished). A stream whose `cancelled` is set (its client went
        away) stops; decoding ends when every stream has. Closing the iterator stops decoding
        and releases the model before `close()` returns."""
        import queue

        self._check_model(model)
        ids = self.encode_prompts(prompts)
        rows = RowStreams(self.tokenizer, self.eos_ids, params, self.config.max_new_tokens, ids)
        steps: queue.Queue = queue.Queue()
        stopper = RowsFinished(rows.finished, cancelled)
        first = params[0]
        widest = GenerationParams(max(rows.limits), first.temperature, first.top_p, ())
        kwargs = self._generate_kwargs(ids, widest, StepQueue(steps), stopper=stopper)
        output: dict[str, Any] = {}
        with self._lock:
            worker = threading.Thread(target=self._run, args=(model, kwargs, output))
            worker.start()
            try:
                while (tokens := steps.get()) is not None:
                    yield rows.step(tokens.tolist(), cancelled)
                if "error" in output:
                    raise output["error"]
                yield rows.end()
            finally:  # finished, or closed by the consumer: end decoding, then unlock
                rows.finished[:] = [True] * len(prompts)
                while worker.is_alive() or not steps.empty():
                    try:
                        steps.get(timeout=0.05)
                    except queue.Empty:
                        pass
                worker.join()

    def encode_prompts(self, prompts: list[str]) -> dict:
        """Token ids of the prompts, left-padded, cut to their last `max_input_tokens`, on the
        model's device."""
        ids = self.tokenizer(prompts, return_tensors="pt", add_special_tokens=False, padding=True)
        return {k: v[:, -self.config.max_input_tokens :].to(self.device) for k, v in ids.items()}

    def _check_model(self, model: str) -> None:
        if model not in self.model_names:
            raise UnknownModel(f"model '{model}' is not served; available: {self.model_names}")

    def _adapter(self, model: str):
        """Context in which `model` (an adapter name, or the base) is the active model."""
        import contextlib

        adapters = self.config.adapters
        if model in adapters:
            self.model.set_adapter(model)
            return contextlib.nullcontext()
        return self.model.disable_adapter() if adapters else contextlib.nullcontext()

    def _generate_kwargs(self, ids: dict, params: GenerationParams, streamer, stopper=None) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        sampling = params.temperature > 0
        stopper = stopper or StopCriteria(self.tokenizer, ids["input_ids"].shape[1], params.stop)
        kwargs: dict[str, Any] = {
            **ids,
            "max_new_tokens": min(params.max_tokens, self.config.max_new_tokens),
            "do_sample": sampling,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([stopper]),
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            "return_dict_in_generate": True,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        return kwargs

    def _run(self, model: str, kwargs: dict, output: dict) -> None:
        import torch

        try:
            with torch.no_grad(), self._adapter(model):
                output["sequences"] = self.model.generate(**kwargs).sequences
        except Exception as exc:  # surfaced to the caller after the streamer drains
            output["error"] = exc
            kwargs["streamer"].end()

    def _trained_system_prompt(self) -> str:
        """The system prompt the first ragtune-trained adapter was trained with, else the default."""
        for path in self.config.adapters.values():
            if (manifest := ModelManifest.find(path)) is not None:
                return manifest.system_prompt
        return DEFAULT_SYSTEM_PROMPT


class StopCriteria:
    """Per row, stop once the text decoded after the prompt holds a stop string (text that
    straddles the prompt's end never counts)."""

    def __init__(self, tokenizer, prompt_length: int, stops: tuple[str, ...]):
        self.tokenizer, self.prompt_length, self.stops = tokenizer, prompt_length, stops
        # A stop string spans at most one token per character, plus a partial token each side.
        self.tail = max((len(s) for s in stops), default=0) + 2

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        rows = input_ids.shape[0]
        if not self.stops:
            return torch.zeros(rows, dtype=torch.bool, device=input_ids.device)
        new = input_ids[:, self.prompt_length :][:, -self.tail :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        found = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(found, dtype=torch.bool, device=input_ids.device)


class RowsFinished:
    """Stopping criterion of a batch of streams: a row stops once its stream has finished
    (`finished`, set by `RowStreams`) or its client went away (`cancelled`)."""

    def __init__(self, finished: list[bool], cancelled: list[threading.Event]):
        self.finished, self.cancelled = finished, cancelled

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = [f or c.is_set() for f, c in zip(self.finished, self.cancelled)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class StepQueue:
    """A `generate` streamer that queues each step's new token of every row (the prompt, put
    first, is skipped); None once generation ends."""

    def __init__(self, steps):
        self.steps, self.prompt_seen = steps, False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.steps.put(value.reshape(-1).cpu())

    def end(self) -> None:
        self.steps.put(None)


class RowStreams:
    """The text each row of a streamed batch has decoded, cut into pieces: a piece per new
    complete text, the row's last piece at EOS, a stop string or its max_tokens."""

    def __init__(self, tokenizer, eos_ids: set, params: list[GenerationParams], ceiling: int, ids: dict):
        self.tokenizer, self.eos_ids, self.params = tokenizer, eos_ids, params
        self.limits = [min(p.max_tokens, ceiling) for p in params]
        self.prompt_tokens = ids["attention_mask"].sum(dim=1).tolist()
        self.tokens: list[list[int]] = [[] for _ in params]
        self.emitted = [""] * len(params)
        self.finished = [False] * len(params)

    def step(self, tokens: list[int], cancelled: list[threading.Event]) -> list[dict | None]:
        """Each row's item for one decoding step's tokens."""
        items: list[dict | None] = []
        for row, token in enumerate(tokens):
            if self.finished[row] or cancelled[row].is_set():
                self.finished[row] = True
                items.append(None)
            elif token in self.eos_ids:
                items.append(self._last(row, self._text(row), "stop"))
            else:
                self.tokens[row].append(token)
                items.append(self._piece(row))
        return items

    def end(self) -> list[dict | None]:
        """The last piece of every row still open when decoding ended."""
        items: list[dict | None] = []
        for row in range(len(self.params)):
            if self.finished[row]:
                items.append(None)
            else:
                full = len(self.tokens[row]) >= self.limits[row]
                items.append(self._last(row, self._text(row), "length" if full else "stop"))
        return items

    def _piece(self, row: int) -> dict | None:
        text = self._text(row)
        cut = _cut_at_stop(text, self.params[row].stop)
        if cut is not None:
            return self._last(row, cut, "stop")
        if len(self.tokens[row]) >= self.limits[row]:
            return self._last(row, text, "length")
        if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            return None
        shown = text[: len(text) - _stop_prefix(text, self.params[row].stop)]
        piece = shown[len(self.emitted[row]) :]
        self.emitted[row] = shown
        return {"text": piece} if piece else None

    def _last(self, row: int, text: str, reason: str) -> dict:
        self.finished[row] = True
        completion = len(self.tokens[row])
        prompt = self.prompt_tokens[row]
        return {
            "text": text[len(self.emitted[row]) :],
            "finish_reason": reason,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _text(self, row: int) -> str:
        return self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)


def _stop_prefix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that begins a stop string: held back from a stream
    until the next tokens show whether the stop string follows."""
    return max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """`text` up to the earliest stop string, or None if none occurs."""
    hits = [text.index(s) for s in stops if s and s in text]
    return text[: min(hits)] if hits else None
