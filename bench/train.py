"""Benchmark: `ragtune train` (Ray Train + DeepSpeed ZeRO-2, 1 worker) vs a plain PyTorch loop.

    .venv/bin/python bench/train.py [--steps 20] [--batch 16] [--hidden 512] [--layers 2] [--tier local]

Same model (a small Llama built here), same data, same micro-batch, same optimizer (AdamW, full
fine-tune) in one run. Prints tokens/s of each and the ratio, then 2-worker throughput (scaling,
CPU tiers) and peak RSS. Tokens/s of ragtune is the mean of its logged windows after the first
(warm-up). On a GPU tier both run in bf16 (DeepSpeed bf16 vs torch autocast) and MFU is printed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.helpers; an installed ragtune comes first

from tests.helpers import rag_rows, write_jsonl  # noqa: E402

# Dense bf16 tensor-core peak per GPU (TFLOP/s), for MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A10G": 70.0}


def build(root: Path, hidden: int, layers: int) -> Path:
    from ragtune.train.models import build_tiny_llama

    texts = [" ".join([r["question"], *r["context"], r["answer"]]) for r in rag_rows(300)]
    return build_tiny_llama(root / "model", texts, hidden_size=hidden, layers=layers)


def plain_loop(model_dir: Path, data: Path, steps: int, batch: int, gpu: bool) -> tuple[float, float]:
    """Tokens/s and peak RSS (MB) of a hand-written loop: same tokenisation, AdamW, no Ray;
    on a GPU in bf16 autocast."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.train.config import DataConfig
    from ragtune.train.data import Tokenize, pad_batch

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    stage = Tokenize(str(model_dir), DataConfig(train_files=[str(data)]).model_dump())
    rows = rag_rows(steps * batch + 8 * batch)
    columns = {k: [r[k] for r in rows] for k in ("question", "context", "answer")}
    examples = stage(columns)
    device = "cuda" if gpu else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    tokens, started = 0, None
    for step in range(steps + 2):
        lo = step * batch
        chunk = {k: examples[k][lo : lo + batch] for k in ("input_ids", "labels")}
        inputs = {k: v.to(device) for k, v in pad_batch(chunk, tokenizer.pad_token_id).items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=gpu):
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if step == 1:  # skip two warm-up steps, as ragtune's first window is skipped
            started = time.perf_counter()
        elif step > 1:
            tokens += int(inputs["attention_mask"].sum())
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return tokens / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ragtune_run(model_dir: Path, data: Path, out: Path, steps: int, batch: int, workers: int, tier):
    """Mean tokens/s over logged windows after the first, peak RSS of rank 0, wall seconds."""
    from mlflow.tracking import MlflowClient

    from ragtune.train.config import TrainJobConfig
    from ragtune.train.trainer import run_train_job

    config = TrainJobConfig.model_validate(
        {
            "base_model": str(model_dir),
            "data": {"train_files": [str(data)], "validation_fraction": 0.05},
            "lora": None,
            "deepspeed": {"zero_stage": 2, "precision": "bf16" if tier.gpus else "fp32"},
            "tier": tier.name,
            "optimizer": {"lr": 5e-3, "schedule": "constant"},
            "max_steps": steps,
            "micro_batch_size": batch,
            "global_batch_size": batch * workers,
            "num_workers": workers,
            "log_every_steps": 5,
            "eval_every_steps": 10_000,
            "checkpoint_every_steps": 10_000,
            "output_dir": str(out),
        }
    )
    started = time.perf_counter()
    result = run_train_job(config)
    wall = time.perf_counter() - started
    client = MlflowClient(config.tracking_uri())
    rates = sorted(client.get_metric_history(result.mlflow_run_id, "tokens_per_s"), key=lambda m: m.step)
    rss = client.get_metric_history(result.mlflow_run_id, "peak_rss_mb")
    steady = [m.value for m in rates[1:]] or [m.value for m in rates]
    return sum(steady) / len(steady), max(m.value for m in rss), wall


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--tier", default="local", help="tier the ragtune workers run on")
    args = parser.parse_args()
    import os

    import torch

    from ragtune.cluster.tiers import get_tier

    tier = get_tier(args.tier)
    gpu = bool(tier.gpus)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build(root, args.hidden, args.layers)
        data = write_jsonl(root / "train.jsonl", rag_rows(args.steps * args.batch * 2 + 64))
        cpus = min(int(tier.cpus), os.cpu_count() or 1)
        ray.init(
            address="local",
            num_cpus=cpus,
            resources=tier.node_resources(),
            include_dashboard=False,
            configure_logging=False,
        )
        run = lambda name, workers: ragtune_run(  # noqa: E731
            model_dir, data, root / name, args.steps, args.batch, workers, tier
        )
        one, one_rss, one_wall = run("run1", 1)
        two = None if gpu else run("run2", 2)
        ray.shutdown()
        plain, plain_rss = plain_loop(model_dir, data, args.steps, args.batch, gpu)
        from transformers import AutoModelForCausalLM

        params = AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()

    device = torch.cuda.get_device_name() if gpu else "CPU"
    print(
        f"\nmodel: Llama hidden={args.hidden} x {args.layers} layers ({params / 1e6:.1f}M params), "
        f"micro-batch {args.batch}, {args.steps} steps, {device}, tier {tier.name}"
    )
    print(f"plain PyTorch loop        : {plain:8.0f} tokens/s  peak RSS {plain_rss:6.0f} MB")
    print(
        f"ragtune train, 1 worker   : {one:8.0f} tokens/s  peak RSS {one_rss:6.0f} MB (rank 0)"
        f"  wall {one_wall:.0f}s incl. start-up"
    )
    print(f"ratio ragtune/plain       : {one / plain:.2f}x")
    if two is not None:
        two_rate, _, two_wall = two
        print(
            f"ragtune train, 2 workers  : {two_rate:8.0f} tokens/s  ({two_rate / one:.2f}x of 1 worker)"
            f"  wall {two_wall:.0f}s"
        )
    if gpu and tier.accelerator_type in PEAK_BF16_TFLOPS:
        peak = PEAK_BF16_TFLOPS[tier.accelerator_type] * 1e12
        print(
            f"MFU (6 x params x tokens/s): ragtune {6 * params * one / peak:.1%}, "
            f"plain {6 * params * plain / peak:.1%} of {tier.accelerator_type} bf16 peak"
        )


if __name__ == "__main__":
    main()
