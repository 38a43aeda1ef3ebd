"""Benchmark: the generator's decoding throughput, ragtune vs plain transformers.

    .venv/bin/python bench/generate.py [--hidden 64] [--layers 2] [--new-tokens 32] [--batches 1 8]

Builds a random-init Llama (the `ragtune model tiny` shape; `--hidden 1024 --layers 12` is 107M
parameters) and RAG prompts (a question and its retrieved context, through the shared prompt
format). For each batch size it times `GeneratorModel.generate_batch` (what the Serve generator
replica runs per batch: tokenise, left-pad, greedy `generate`, cut at EOS and stop strings) against
a plain `model.generate` on the same token ids in the same process, and prints generated tokens/s
of each and their ratio (median of --repeats runs after a warm-up). On a GPU both run in bf16.
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
    args = parser.parse_args()
    import torch

    from ragtune.serve.config import GeneratorDeploymentConfig
    from ragtune.serve.generator import GenerationParams, GeneratorModel
    from ragtune.train.models import build_tiny_llama

    rows = rag_rows(max(args.batches))
    with tempfile.TemporaryDirectory() as tmp:
        texts = [" ".join([r["question"], *r["context"], r["answer"]]) for r in rag_rows(300)]
        folder = build_tiny_llama(Path(tmp) / "model", texts, hidden_size=args.hidden, layers=args.layers)
        settings = {
            "base_model": str(folder),
            "max_new_tokens": args.new_tokens,
            "batch_size": max(args.batches),
        }
        generator = GeneratorModel(GeneratorDeploymentConfig(**settings))
    model, tokenizer = generator.model, generator.tokenizer
    prompts = [generator.prompt([{"role": "user", "content": r["question"]}], r["context"]) for r in rows]
    params = GenerationParams(args.new_tokens, 0.0, 1.0, ())
    params_count = model.num_parameters()
    device = torch.cuda.get_device_name() if generator.device.type == "cuda" else "CPU"
    print(
        f"model: Llama hidden={args.hidden} x {args.layers} layers ({params_count / 1e6:.1f}M params), "
        f"{model.dtype}, {device}; {args.new_tokens} new tokens, greedy"
    )
    print(f"{'batch':>5} {'ragtune tok/s':>14} {'plain tok/s':>12} {'ratio':>6}")
    for batch in args.batches:
        chosen = prompts[:batch]

        def ours(chosen=chosen) -> int:
            results = generator.generate_batch(generator.config.model_name, chosen, params)
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
        print(f"{batch:>5} {ours_rate:>14.0f} {plain_rate:>12.0f} {ours_rate / plain_rate:>5.2f}x")


if __name__ == "__main__":
    main()
