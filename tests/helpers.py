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


def node_env(root: Path) -> Path:
    """A node's Python environment with ragtune only from its built wheel, installed by the
    script every node uses (cluster/install-ragtune.sh): a fresh venv whose dependencies are this
    venv's packages (read from a path entry, so its editable ragtune is not loaded), and its
    interpreter's path."""
    import sysconfig

    from tools.build_wheel import build_wheel

    wheel = build_wheel(root / "dist")
    venv = root / "node-env"
    subprocess.run([sys._base_executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "ragtune-node-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        ["bash", root / "dist" / "install-ragtune.sh", wheel],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(python), "RAGTUNE_PIP_ARGS": "--no-deps"},
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = wheel.name.split("-")[1]
    assert installed.stdout.startswith(f"ragtune {version} ({site}/ragtune)"), installed.stdout
    return python


def cross_encoder(out: Path) -> Path:
    """A real (untrained) cross-encoder folder: the shipped MiniLM with a seeded scoring head."""
    import torch
    from sentence_transformers import CrossEncoder

    from ragtune.retrieval.embed import resolve_model

    torch.manual_seed(0)
    CrossEncoder(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), num_labels=1).save(str(out))
    return out
