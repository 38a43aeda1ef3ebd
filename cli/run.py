"""Job verbs: index, tune-embedder, tune-reranker, train, sweep, serve and demo, each on the cluster
from --address, else the `ragtune up` one, else an embedded Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ragtune.cli.common import AddressOption, SetOption, TiersOption, load_job_config

app = typer.Typer()


@app.command()
def index(
    config: Path,
    set_: SetOption = None,
    update: Annotated[
        bool, typer.Option("--update", help="Embed only new/changed files; drop removed ones.")
    ] = False,
    address: AddressOption = None,
    tiers: TiersOption = None,
) -> None:
    """Chunk, embed (Ray Data on the config's tier) and index documents into FAISS."""
    from ragtune.cluster.local import ray_session
    from ragtune.retrieval.job import check_inputs, run_index_job

    job = load_job_config(config, set_, expect="index")
    check_inputs(job, update)  # before a Ray starts
    with ray_session(address):
        typer.echo(run_index_job(job, update=update).summary())


@app.command("tune-embedder")
def tune_embedder(
    config: Path, set_: SetOption = None, address: AddressOption = None, tiers: TiersOption = None
) -> None:
    """Adapt an embedding model to a corpus (headings → their sections) on the config's tier."""
    from ragtune.cluster.local import ray_session
    from ragtune.retrieval.adapt import check_inputs, run_tune_job

    job = load_job_config(config, set_, expect="embedder")
    check_inputs(job)
    with ray_session(address):
        typer.echo(run_tune_job(job).summary())


@app.command("tune-reranker")
def tune_reranker(
    config: Path, set_: SetOption = None, address: AddressOption = None, tiers: TiersOption = None
) -> None:
    """Train a cross-encoder reranker on a corpus (headings → their sections, against the index's
    hard negatives) on the config's tier."""
    from ragtune.cluster.local import ray_session
    from ragtune.retrieval.rerank_tune import check_inputs, run_reranker_tune_job

    job = load_job_config(config, set_, expect="reranker")
    check_inputs(job)
    with ray_session(address):
        typer.echo(run_reranker_tune_job(job).summary())


@app.command()
def train(
    config: Path,
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir.")] = False,
    address: AddressOption = None,
    tiers: TiersOption = None,
) -> None:
    """Fine-tune with Ray Train × DeepSpeed (× LoRA) on the config's tier, tracked in MLflow."""
    from ragtune.cluster.local import ray_session
    from ragtune.train.trainer import check_inputs, run_train_job

    job = load_job_config(config, set_, expect="train")
    check_inputs(job)
    with ray_session(address):
        typer.echo(run_train_job(job, resume=resume).summary())


@app.command()
def sweep(
    config: Path, set_: SetOption = None, address: AddressOption = None, tiers: TiersOption = None
) -> None:
    """Ray Tune search over a train config's fields (each trial a Ray Train run on its tier, ASHA
    on validation loss, MLflow runs under one parent); writes the best config."""
    from ragtune.cluster.local import ray_session
    from ragtune.train.sweep import run_sweep
    from ragtune.train.trainer import check_inputs

    job = load_job_config(config, set_, expect="sweep")
    check_inputs(job.base_job())
    with ray_session(address):
        result = run_sweep(job, progress=typer.echo)
    typer.echo(result.table())
    typer.echo(result.summary())


@app.command("serve")
def serve_(
    config: Annotated[Path | None, typer.Argument(help="Serve config (not needed with --down).")] = None,
    set_: SetOption = None,
    down: Annotated[bool, typer.Option("--down", help="Delete the app instead.")] = False,
    app_name: Annotated[str, typer.Option(help="App to delete with --down.")] = "ragtune",
    address: AddressOption = None,
    tiers: TiersOption = None,
) -> None:
    """Deploy the Ingress → Retriever → Generator app and print its URL (redeploys in place).

    On a running cluster (`ragtune up` or --address) it returns once deployed; on an embedded
    Ray it keeps serving until interrupted.
    """
    from ragtune.cluster.local import ray_session, running_cluster

    if config is None and not down:
        raise typer.BadParameter("give a serve config, or --down")
    job = None if down else load_job_config(config, set_, expect="serve")
    if job is not None and address is None and "RAY_ADDRESS" not in os.environ:
        from ragtune.serve.app import check_inputs

        check_inputs(job)  # this machine's cluster reads this machine's disk
    with ray_session(address) as where:
        from ray import serve
        from ray.serve.exceptions import RayServeException

        if down:
            try:
                serve.delete(app_name)
            except RayServeException:  # no Serve on this cluster: nothing to delete
                typer.echo(f"no serve app {app_name} on this cluster: Serve is not running")
                return
            except TimeoutError:  # Serve's 60 s wait: replicas drain up to request_timeout_s + 5 s
                typer.echo(f"deleting serve app {app_name}: its replicas finish the requests they hold first")
                return
            typer.echo(f"deleted serve app {app_name}")
            return
        from ragtune.serve.app import deploy

        url = deploy(job)
        typer.echo(f"serving {job.app_name} at {url}/v1 (ray: {where})")
        if where == "embedded" and running_cluster() is None:
            typer.echo("embedded Ray: serving until Ctrl-C (use `ragtune up` to keep it running)")
            _wait_forever()


def _wait_forever() -> None:
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


@app.command()
def demo(
    config: Annotated[Path, typer.Argument(help="Demo config.")] = Path("configs/demo.yaml"),
    set_: SetOption = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="The config's smaller, faster variant, in WORK_DIR-quick.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Ray, Serve and worker logs on the console, not in files.")
    ] = False,
    address: AddressOption = None,
    tiers: TiersOption = None,
) -> None:
    """Index documents, fine-tune on RAG and RAFT rows, serve, and compare the systems on held-out
    questions, with intervals."""
    from contextlib import nullcontext

    from ragtune.cluster.local import ray_session
    from ragtune.core.logs import stderr_to
    from ragtune.demo.pipeline import check_inputs, run_demo

    job = load_job_config(config, set_, expect="demo")
    job = job.quick_variant() if quick else job
    check_inputs(job)
    log = job.path("logs") / "demo.log"
    if not verbose:
        typer.echo(
            f"[demo] logs: {log} (this process: Ray, Serve, warnings) and Ray's session logs "
            "(/tmp/ray/session_latest/logs: workers and replicas); --verbose prints them here"
        )
    with nullcontext() if verbose else stderr_to(log), ray_session(address, worker_logs=verbose):
        result = run_demo(job)
    typer.echo("\n" + result.answers.markdown())
    typer.echo(f"demo finished in {result.seconds / 60:.1f} min; report in {result.answers.report_dir}")
    typer.echo(f"serve what it built: ragtune serve {job.path('serve.yaml')}")
