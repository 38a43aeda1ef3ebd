"""`ragtune export`: merge a run's LoRA adapter into its base model as a standalone folder."""

from __future__ import annotations

import json
from pathlib import Path

from cluster.atomic import atomic_dir, write_json_atomic
from train.trainer import MANIFEST_FILE


def read_model_manifest(model_dir: Path) -> dict:
    """The manifest `ragtune train` wrote beside a model or adapter."""
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: {model_dir} is not a ragtune model directory")
    return json.loads(path.read_text())


def merge_adapter(run_dir: Path) -> Path:
    """Write <run>/merged: base weights with the adapter folded in, tokenizer and manifest."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = run_dir / "model"
    manifest = read_model_manifest(model_dir)
    if not manifest["adapter"]:
        raise ValueError(f"{model_dir} is a full fine-tune already; nothing to merge")
    extra = {"gguf_file": manifest["gguf_file"]} if manifest.get("gguf_file") else {}
    base = AutoModelForCausalLM.from_pretrained(manifest["base_model"], **extra)
    merged = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    target = run_dir / "merged"
    with atomic_dir(target) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
        write_json_atomic(tmp / MANIFEST_FILE, {**manifest, "adapter": False,
                                                "merged_from": str(model_dir)})  # fmt: skip
    return target
