"""Evaluation verbs: each runs an evaluation, which returns its results, and prints them."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.cli.common import SetOption, TiersOption, load_job_config, verb_group

app = verb_group("Evaluate retrieval or answers.")


@app.command("retrieval")
def eval_retrieval(config: Path, set_: SetOption = None, tiers: TiersOption = None) -> None:
    """recall@k, MRR@k and nDCG@k of an index on judged queries, per search mode."""
    from ragtune.eval.retrieval import run_retrieval_eval

    typer.echo(run_retrieval_eval(load_job_config(config, set_, "retrieval-eval")).table())


@app.command("answers")
def eval_answers(config: Path, set_: SetOption = None, tiers: TiersOption = None) -> None:
    """Systems (default: base, RAG, fine-tuned, fine-tuned + RAG) answer held-out questions through
    a running app; scores with 95% intervals, paired differences, grounding."""
    from ragtune.eval.answers import run_answer_eval

    result = run_answer_eval(load_job_config(config, set_, "answer-eval"), progress=typer.echo)
    typer.echo(result.markdown())
    typer.echo(f"report: {result.report_dir}/answers.md, answers.json, answers.png")


@app.command("followups")
def eval_followups(config: Path, set_: SetOption = None, tiers: TiersOption = None) -> None:
    """recall@k of FAQ questions asked as pronoun follow-ups: raw vs each query rewrite."""
    from ragtune.eval.followups import run_followup_eval

    result = run_followup_eval(load_job_config(config, set_, "followup-eval"))
    typer.echo(result.table())
    typer.echo(f"\nexample: {result.example}")
