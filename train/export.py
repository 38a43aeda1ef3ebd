"""`ragtune export`: merge a run's LoRA adapter into its base model as a standalone folder."""

from __future__ import annotations

from pathlib import Path

from ragtune.core.artifacts import ModelManifest
from ragtune.core.atomic import atomic_dir
from ragtune.core.config import require_model
from ragtune.core.errors import InputError


def merge_adapter(run_dir: Path) -> Path:
    """Write <run>/merged: base weights with the adapter folded in, tokenizer and manifest."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = run_dir / "model"
    manifest = ModelManifest.read(model_dir)
    require_model(manifest.base_model, f"{model_dir}: base_model")
    if not manifest.adapter:
        raise InputError(f"{model_dir} is a full fine-tune already", "use it as it is; nothing to merge")
    target = run_dir / "merged"
    ModelManifest.check_replaceable(target)
    extra = {"gguf_file": manifest.gguf_file} if manifest.gguf_file else {}
    base = AutoModelForCausalLM.from_pretrained(manifest.base_model, **extra)
    merged = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    with atomic_dir(target) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
        fresh = {"format_version", "created_at", "versions", "adapter", "merged_from"}
        inherited = manifest.model_dump(exclude=fresh)
        ModelManifest(**inherited, adapter=False, merged_from=str(model_dir)).write(tmp)
    return target
