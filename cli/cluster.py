"""Cluster verbs: the tiers, the local cluster (up, down, status), jobs on a cluster (submit,
jobs ...), and rendering the autoscaling cluster (cluster render)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ragtune.cli.common import (
    JOB_VERBS,
    AddressOption,
    JobsAddress,
    SetOption,
    TiersOption,
    load_job_config,
    verb_group,
)
from ragtune.core.errors import ClusterError, ConfigError

app = typer.Typer()
jobs_app = verb_group("Ray jobs on a cluster.")
render_app = verb_group("Render the autoscaling cluster.")


@app.command()
def tiers(tiers: TiersOption = None) -> None:
    """List the hardware tiers."""
    from ragtune.cluster.tiers import load_tiers

    header = f"{'tier':<14}{'cpus':>6}{'mem GiB':>9}{'gpus':>6}  {'accel':<7}{'$/h':>8}{'nodes':>8}"
    typer.echo(header)
    for tier in load_tiers().tiers.values():
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
    network: Annotated[
        bool,
        typer.Option(
            help="Let other nodes join: Ray's processes listen on this machine's address (the "
            "dashboard stays on 127.0.0.1). Without it every listener is on loopback."
        ),
    ] = False,
    tiers: TiersOption = None,
) -> None:
    """Start a local Ray head advertising a tier's resources."""
    from ragtune.cluster.local import start_cluster
    from ragtune.cluster.tiers import get_tier

    cluster = start_cluster(get_tier(tier), port, dashboard_port, agent_port, network)
    typer.echo(f"ragtune cluster up: address {cluster.address}, dashboard {cluster.dashboard_url}")


@app.command()
def down() -> None:
    """Stop the local Ray head that `ragtune up` started (and nothing else)."""
    from ragtune.cluster.local import stop_cluster

    cluster = stop_cluster()
    typer.echo(f"stopped {cluster.address}" if cluster else "no ragtune cluster is running")


@app.command()
def status(address: AddressOption = None, tiers: TiersOption = None) -> None:
    """Show nodes, resources per tier, jobs and Serve applications."""
    from ragtune.cluster.local import ray_session, running_cluster
    from ragtune.cluster.status import format_status, gather_status

    cluster = running_cluster()
    if address is None and cluster is None:
        raise ClusterError("no cluster to show", "run `ragtune up` or pass --address")
    with ray_session(address):
        typer.echo(format_status(gather_status(_dashboard_url(cluster, address))))


def _dashboard_url(cluster, address: str | None) -> str:
    """The dashboard (Jobs API) URL of the cluster at `address` or of `ragtune up`'s cluster."""
    if address is None:
        return cluster.dashboard_url
    host = address.removeprefix("ray://").split(":")[0]
    return f"http://{host}:8265"


@app.command()
def submit(
    verb: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_VERBS)}.")],
    config: Path,
    set_: SetOption = None,
    address: JobsAddress = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream logs until it ends.")] = False,
    tiers: TiersOption = None,
) -> None:
    """Run `ragtune VERB CONFIG` on a cluster as a Ray job (config and tiers file uploaded with it)."""
    from ragtune.cluster.jobs import follow_logs, job_status, submit_job

    if verb not in JOB_VERBS:
        raise ConfigError("submit", "verb", f"cannot submit '{verb}'; job verbs: {', '.join(JOB_VERBS)}")
    load_job_config(config, set_, expect=JOB_VERBS[verb])  # fail here, not on the cluster
    job_id = submit_job(verb, config, address, set_ or [])
    typer.echo(f"submitted {job_id}")
    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
        typer.echo(f"{job_id}: {job_status(job_id, address)}")


@jobs_app.command("list")
def jobs_list(address: JobsAddress = None) -> None:
    """Jobs submitted to the cluster."""
    from ragtune.cluster.jobs import list_jobs

    for job in list_jobs(address):
        typer.echo(f"{job['id']}  {job['status']:<10} {job['entrypoint']}")


@jobs_app.command("status")
def jobs_status(job_id: str, address: JobsAddress = None) -> None:
    """One job's status."""
    from ragtune.cluster.jobs import job_status

    typer.echo(job_status(job_id, address))


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    address: JobsAddress = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream until the job ends.")] = False,
) -> None:
    """A job's logs."""
    from ragtune.cluster.jobs import follow_logs, job_logs

    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
    else:
        typer.echo(job_logs(job_id, address), nl=False)


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: JobsAddress = None) -> None:
    """Stop a running job."""
    from ragtune.cluster.jobs import stop_job

    typer.echo(f"{job_id}: {'stopping' if stop_job(job_id, address) else 'not running'}")


@render_app.command("render")
def cluster_render(
    config: Path,
    target: Annotated[Literal["launcher", "kuberay"], typer.Option(help="launcher or kuberay.")] = "launcher",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    tiers: TiersOption = None,
) -> None:
    """Ray cluster-launcher YAML (for `ray up`) or KubeRay manifests (for kubectl apply)."""
    import yaml

    from ragtune.cluster.launcher import render_kuberay, render_launcher

    cluster = load_job_config(config, None, expect="cluster")
    if target == "launcher":
        text = yaml.safe_dump(render_launcher(cluster), sort_keys=False)
    else:
        text = yaml.safe_dump_all(render_kuberay(cluster), sort_keys=False)
    if out:
        from ragtune.core.atomic import write_text_atomic

        write_text_atomic(out, text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)
