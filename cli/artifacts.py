"""Verbs that use what the jobs made: search or edit an index, export a model, ask the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

app = typer.Typer()


@app.command()
def search(
    index_dir: Path,
    query: str,
    k: Annotated[int, typer.Option("-k", min=1, help="How many chunks.")] = 5,
    mode: Annotated[Literal["dense", "bm25", "hybrid"], typer.Option(help="Search mode.")] = "dense",
    rerank: Annotated[
        str | None,
        typer.Option(help="Rerank with this cross-encoder (name or folder, e.g. from tune-reranker)."),
    ] = None,
    candidates: Annotated[
        int | None, typer.Option(min=1, help="Chunks retrieved for --rerank to rescore [default: 30].")
    ] = None,
    first_stage_weight: Annotated[
        float,
        typer.Option(min=0, max=100, help="Fuse the first stage's order into --rerank's with this weight."),
    ] = 0.0,
) -> None:
    """Search an index directory and print the top chunks with scores and sources."""
    from ragtune.core.config import require_model
    from ragtune.retrieval.config import RerankConfig
    from ragtune.retrieval.search import Retriever

    reranking = None
    if rerank is None and (candidates is not None or first_stage_weight):
        raise typer.BadParameter("--candidates and --first-stage-weight shape --rerank; give --rerank MODEL")
    if rerank is not None:
        shape = {"candidates": candidates} if candidates is not None else {}
        reranking = RerankConfig(model=rerank, first_stage_weight=first_stage_weight, **shape)
        require_model(reranking.model, "--rerank")
    for rank, hit in enumerate(Retriever(index_dir, rerank=reranking).search(query, k, mode), start=1):
        snippet = " ".join(hit.text.split())[:160]
        scores = f"{hit.score:.3f}" + (f" → {hit.rerank_score:.3f}" if hit.rerank_score is not None else "")
        typer.echo(f"{rank}. [{scores}] {hit.source} — {hit.heading}\n   {snippet}")


@app.command()
def delete(
    index_dir: Path,
    sources: Annotated[list[str], typer.Argument(help="Source paths whose chunks to remove.")],
) -> None:
    """Remove documents from an index by source path, without a rebuild."""
    from ragtune.retrieval.job import delete_sources

    typer.echo(f"removed {delete_sources(index_dir, sources)} chunks from {index_dir}")


@app.command()
def export(
    run_dir: Path,
    merge: Annotated[bool, typer.Option("--merge", help="Fold the LoRA adapter into the base.")] = False,
) -> None:
    """Export a training run's model; --merge writes standalone merged weights."""
    from ragtune.core.artifacts import ModelManifest
    from ragtune.train.export import merge_adapter

    if not merge:
        manifest = ModelManifest.read(run_dir / "model")
        kind = "adapter" if manifest.adapter else "model"
        typer.echo(f"{run_dir / 'model'}: {kind} for {manifest.base_model} (use --merge)")
        return
    typer.echo(f"merged model written to {merge_adapter(run_dir)}")


@app.command()
def query(
    question: str,
    url: Annotated[str, typer.Option(help="Base URL of the served app.")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option(help="Model or adapter name.")] = None,
    k: Annotated[int | None, typer.Option("-k", min=1, help="Chunks to retrieve.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="RAGTUNE_API_KEY")] = None,
) -> None:
    """Ask the served app a question: the answer streams, then its sources."""
    from ragtune.serve.client import ask

    result = ask(url, question, model, api_key, k, lambda piece: typer.echo(piece, nl=False))
    typer.echo("\n\nsources:")
    for rank, source in enumerate(result["sources"], start=1):
        typer.echo(f"  {rank}. [{source['score']:.3f}] {source['source']} — {source['heading']}")
