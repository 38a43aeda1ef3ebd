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
    load_cluster_job_config,
    load_job_config,
    verb_group,
)
from ragtune.core.errors import ClusterError, ConfigError

app = typer.Typer()
jobs_app = verb_group("Ray jobs on a cluster.")
render_app = verb_group("Render the autoscaling cluster.")
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Allow plain http to a cluster off this machine (the token goes in clear)."
    ),
]


def _jobs_url(address: str | None, insecure: bool) -> str:
    """The Jobs API URL to use, refused when it would send the token in clear."""
    from ragtune.cluster.jobs import jobs_address, require_secure_transport

    url = jobs_address(address)
    require_secure_transport(url, insecure)
    return url


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
    insecure: InsecureOption = False,
    tiers: TiersOption = None,
) -> None:
    """Run `ragtune VERB CONFIG` on a cluster as a Ray job (config and tiers file uploaded with
    it; its paths must be absolute on storage the nodes share, or URIs)."""
    from ragtune.cluster.jobs import follow_logs, job_status, submit_job

    if verb not in JOB_VERBS:
        raise ConfigError("submit", "verb", f"cannot submit '{verb}'; job verbs: {', '.join(JOB_VERBS)}")
    load_cluster_job_config(config, set_, JOB_VERBS[verb])  # fail here, not on the cluster
    address = _jobs_url(address, insecure)
    job_id = submit_job(verb, config, address, set_ or [])
    typer.echo(f"submitted {job_id}")
    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
        typer.echo(f"{job_id}: {job_status(job_id, address)}")


@jobs_app.command("list")
def jobs_list(address: JobsAddress = None, insecure: InsecureOption = False) -> None:
    """Jobs submitted to the cluster."""
    from ragtune.cluster.jobs import list_jobs

    for job in list_jobs(_jobs_url(address, insecure)):
        typer.echo(f"{job['id']}  {job['status']:<10} {job['entrypoint']}")


@jobs_app.command("status")
def jobs_status(job_id: str, address: JobsAddress = None, insecure: InsecureOption = False) -> None:
    """One job's status."""
    from ragtune.cluster.jobs import job_status

    typer.echo(job_status(job_id, _jobs_url(address, insecure)))


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    address: JobsAddress = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream until the job ends.")] = False,
    insecure: InsecureOption = False,
) -> None:
    """A job's logs."""
    from ragtune.cluster.jobs import follow_logs, job_logs

    address = _jobs_url(address, insecure)
    if follow:
        for lines in follow_logs(job_id, address):
            typer.echo(lines, nl=False)
    else:
        typer.echo(job_logs(job_id, address), nl=False)


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: JobsAddress = None, insecure: InsecureOption = False) -> None:
    """Stop a running job."""
    from ragtune.cluster.jobs import stop_job

    stopping = stop_job(job_id, _jobs_url(address, insecure))
    typer.echo(f"{job_id}: {'stopping' if stopping else 'not running'}")


@render_app.command("render")
def cluster_render(
    config: Annotated[Path, typer.Argument(help="The cluster config (configs/cluster.yaml).")],
    job: Annotated[
        list[str] | None,
        typer.Argument(
            help="rayjob: VERB CONFIG (e.g. train configs/train/x.yaml); rayservice: SERVE_CONFIG."
        ),
    ] = None,
    target: Annotated[
        Literal["launcher", "kuberay", "rayjob", "rayservice"],
        typer.Option(help="launcher (ray up), kuberay (a RayCluster), rayjob or rayservice."),
    ] = "launcher",
    name: Annotated[
        str | None, typer.Option(help="RayJob/RayService name; default from the config file.")
    ] = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    tiers: TiersOption = None,
) -> None:
    """Ray cluster-launcher YAML (for `ray up`) or KubeRay manifests (for `kubectl apply -f`)."""
    import yaml

    from ragtune.cluster import kuberay
    from ragtune.cluster.launcher import render_launcher

    cluster = load_job_config(config, set_, expect="cluster")
    job = job or []
    wants = {"rayjob": "VERB CONFIG", "rayservice": "SERVE_CONFIG"}.get(target)
    if (
        (wants is None and job)
        or (target == "rayjob" and len(job) < 2)
        or (target == "rayservice" and len(job) != 1)
    ):
        raise typer.BadParameter(
            f"--target {target} takes {wants or 'no more arguments'} after the cluster config"
        )
    if target == "launcher":
        text = yaml.safe_dump(render_launcher(cluster), sort_keys=False)
    elif target == "kuberay":
        text = yaml.safe_dump_all(kuberay.render_kuberay(cluster), sort_keys=False)
    else:
        job_config = Path(job[-1])
        resource = name or _resource_name(job_config)
        if target == "rayjob":
            verb = " ".join(job[:-1])
            if verb not in JOB_VERBS:
                raise ConfigError("render", "verb", f"cannot run '{verb}'; job verbs: {', '.join(JOB_VERBS)}")
            load_cluster_job_config(job_config, None, JOB_VERBS[verb])
            manifests = kuberay.render_rayjob(cluster, verb, job_config, resource)
        else:
            from ragtune.serve.app import require_auth_choice

            require_auth_choice(load_cluster_job_config(job_config, None, "serve"), str(job_config))
            manifests = kuberay.render_rayservice(cluster, job_config, resource)
        text = yaml.safe_dump_all(manifests, sort_keys=False)
    if out:
        from ragtune.core.atomic import write_text_atomic

        write_text_atomic(out, text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


def _resource_name(path: Path) -> str:
    """A Kubernetes name from a config file name (`python-docs_lora.yaml` → `python-docs-lora`)."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:50] or "ragtune-job"
