"""Test helpers: running the installed `ragtune` command, a learnable RAG dataset and a tiny Llama
trained on its words. Benchmarks use them too."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAGTUNE = str(Path(sys.executable).parent / "ragtune")

COUNTRIES = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Italy", "Rome"),
    ("Egypt", "Cairo"),
    ("Spain", "Madrid"),
    ("Chile", "Santiago"),
    ("Norway", "Oslo"),
    ("Cuba", "Havana"),
    ("Iran", "Tehran"),
    ("Laos", "Vientiane"),
]


def rag_rows(count: int, seed: int = 0) -> list[dict]:
    """Questions whose answer is copied from one of the context sentences."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        country, capital = COUNTRIES[i % len(COUNTRIES)]
        other = rng.choice([c for c in COUNTRIES if c[0] != country])
        facts = [
            f"The capital of {country} is {capital}.",
            f"The capital of {other[0]} is {other[1]}.",
        ]
        rng.shuffle(facts)
        rows.append(
            {
                "question": f"What is the capital of {country}?",
                "context": facts,
                "answer": f"The capital of {country} is {capital}.",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def tiny_model(root: Path) -> Path:
    from ragtune.train.models import build_tiny_llama

    texts = [" ".join([row["question"], *row["context"], row["answer"]]) for row in rag_rows(200)]
    texts += [
        "You are a helpful assistant. Answer the question using the context when it is "
        "relevant. Context: Question:"
    ] * 5
    return build_tiny_llama(root / "tiny-llama", texts)


def run_cli(
    *args: str, env: dict | None = None, timeout: int = 180, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run the installed `ragtune` command as a user would."""
    return subprocess.run(
        [RAGTUNE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def make_adapter(model_dir, out):
    """A real (untrained) PEFT LoRA adapter for the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(out)
    return out
