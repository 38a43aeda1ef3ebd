"""Benchmark: the generator's decoding throughput, ragtune vs plain transformers.

    .venv/bin/python bench/generate.py [--hidden 64] [--layers 2] [--new-tokens 32] [--batches 1 8]
        [--base-model data/models/smollm2] [--lora] [--continuous] [--dtype bfloat16]
        [--model-attention]

Builds a random-init Llama (the `ragtune model tiny` shape; `--hidden 1024 --layers 12` is 107M
parameters) and RAG prompts (a question and its retrieved context, through the shared prompt
format). For each batch size it times `GeneratorModel.generate_batch` (what the Serve generator
replica runs per batch: tokenise, left-pad, greedy `generate`, cut at EOS and stop strings) against
a plain `model.generate` on the same token ids in the same process, and prints generated tokens/s
of each and their ratio (median of --repeats runs after a warm-up). Both run in the generator's
dtype (`--dtype`; by default bf16 on a GPU, fp32 on CPU). The plain run uses the model's own
attention; the generator its batch-invariant one (`--model-attention`: the model's own too).

`--base-model` times a model folder instead (e.g. SmolLM2-135M); `--lora` serves through a fresh
LoRA adapter on every linear layer, as a served fine-tune is; `--continuous` also times transformers'
continuous batching (`model.generate_batch`: paged attention, requests scheduled per token) on
the same prompts, with a KV cache sized for them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.helpers; an installed ragtune comes first

from tests.helpers import rag_rows  # noqa: E402


def timed(run, repeats: int) -> tuple[float, int]:
    """Median seconds of `run()` after one warm-up, and the tokens it generated."""
    import torch

    tokens = run()
    seconds = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base-model", help="a model folder to time instead of a random tiny Llama")
    parser.add_argument("--lora", action="store_true", help="serve through a LoRA adapter")
    parser.add_argument("--continuous", action="store_true", help="also time continuous batching")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument(
        "--model-attention", action="store_true", help="the generator with batch_invariant: false"
    )
    args = parser.parse_args()
    import torch

    from ragtune.serve.config import GeneratorDeploymentConfig
    from ragtune.serve.generator import GenerationParams, GeneratorModel
    from ragtune.train.models import build_tiny_llama

    rows = rag_rows(max(args.batches))
    with tempfile.TemporaryDirectory() as tmp:
        texts = [" ".join([r["question"], *r["context"], r["answer"]]) for r in rag_rows(300)]
        folder = args.base_model or build_tiny_llama(
            Path(tmp) / "model", texts, hidden_size=args.hidden, layers=args.layers
        )
        adapters = {"lora": save_lora(folder, Path(tmp) / "lora")} if args.lora else {}
        settings = {
            "base_model": str(folder),
            "adapters": adapters,
            "max_new_tokens": args.new_tokens,
            "batch_size": max(args.batches),
            "dtype": args.dtype,
            "batch_invariant": not args.model_attention,
        }
        generator = GeneratorModel(GeneratorDeploymentConfig(**settings))
        # Plain transformers runs the same model loaded with its own attention.
        model = GeneratorModel(GeneratorDeploymentConfig(**{**settings, "batch_invariant": False})).model
    served = "lora" if args.lora else generator.config.model_name
    tokenizer = generator.tokenizer
    prompts = [generator.prompt([{"role": "user", "content": r["question"]}], r["context"]) for r in rows]
    params = GenerationParams(args.new_tokens, 0.0, 1.0, ())
    params_count = model.num_parameters()
    device = torch.cuda.get_device_name() if generator.device.type == "cuda" else "CPU"
    shape = args.base_model or f"Llama hidden={args.hidden} x {args.layers} layers"
    attention = "the model's own attention" if args.model_attention else "batch-invariant attention"
    print(
        f"model: {shape} ({params_count / 1e6:.1f}M params{', LoRA' if args.lora else ''}), "
        f"{model.dtype}, {device}; {args.new_tokens} new tokens, greedy; ragtune with {attention}"
    )
    extra = f" {'continuous tok/s':>17} {'ratio':>6}" if args.continuous else ""
    print(f"{'batch':>5} {'ragtune tok/s':>14} {'plain tok/s':>12} {'ratio':>6}{extra}")
    for batch in args.batches:
        chosen = prompts[:batch]

        def ours(chosen=chosen) -> int:
            results = generator.generate_batch(served, chosen, params)
            return sum(r["usage"]["completion_tokens"] for r in results)

        ids = generator.encode_prompts(chosen)

        @torch.no_grad()
        def plain(ids=ids) -> int:
            out = model.generate(
                **ids, max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            new = out[:, ids["input_ids"].shape[1] :]
            ended = (new == tokenizer.eos_token_id).int()
            lengths = torch.where(ended.any(dim=1), ended.argmax(dim=1), new.shape[1])
            return int(lengths.sum())

        our_s, our_tokens = timed(ours, args.repeats)
        plain_s, plain_tokens = timed(plain, args.repeats)
        ours_rate, plain_rate = our_tokens / our_s, plain_tokens / plain_s
        line = f"{batch:>5} {ours_rate:>14.0f} {plain_rate:>12.0f} {ours_rate / plain_rate:>5.2f}x"
        if args.continuous:
            cb_s, cb_tokens = timed(continuous(model, tokenizer, chosen, args.new_tokens), args.repeats)
            line += f" {cb_tokens / cb_s:>17.0f} {cb_tokens / cb_s / ours_rate:>5.2f}x"
        print(line)


def save_lora(folder, out: Path) -> Path:
    """A fresh LoRA adapter on every linear layer of the blocks, as a served fine-tune has."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=targets)
    get_peft_model(AutoModelForCausalLM.from_pretrained(folder), lora).save_pretrained(out)
    return out


def continuous(model, tokenizer, prompts: list[str], new_tokens: int):
    """A run of transformers' continuous batching over `prompts` (greedy); returns the tokens made.
    The KV cache is sized for these prompts: sized by default from free memory, on CPU it takes
    most of RAM and a run of 16 short prompts takes tens of seconds."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    longest = max(len(i) for i in ids) + new_tokens
    page = 64
    cache = ContinuousBatchingConfig(
        page_size=page,
        num_blocks=len(ids) * (longest // page + 1),
        max_batch_tokens=max(512, longest),
        max_requests_per_batch=len(ids),
    )
    settings = GenerationConfig(
        max_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    def run() -> int:
        outputs = model.generate_batch(
            inputs=ids, generation_config=settings, continuous_batching_config=cache, warmup=False
        )
        return sum(len(output.generated_tokens) for output in outputs.values())

    return run


if __name__ == "__main__":
    main()
