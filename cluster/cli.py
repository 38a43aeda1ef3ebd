"""The `ragtune` command. Each verb is a thin call into a package, imported lazily per verb."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cluster.configfile import ConfigError, read_yaml

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__
)

TiersOption = Annotated[
    Path | None, typer.Option("--tiers", help="Tiers file (default configs/tiers.yaml).")
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster to use; default: the `ragtune up` one or embedded."
    ),
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config field: key.path=value.")
]

# Config kinds `ragtune validate` knows: kind -> (module, model class). A file names its kind
# with a top-level `kind:` field, or by its file name or folder (tiers.yaml, configs/index/x.yaml).
CONFIG_KINDS: dict[str, tuple[str, str]] = {
    "tiers": ("cluster.tiers", "TiersFile"),
}


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


@app.command()
def validate(config: Path, set_: SetOption = None) -> None:
    """Check a config file (any kind) without running anything."""
    import importlib

    from cluster.configfile import load_config

    kind = config_kind(config, read_yaml(config))
    module, name = CONFIG_KINDS[kind]
    load_config(getattr(importlib.import_module(module), name), config, set_ or [])
    typer.echo(f"{config}: valid {kind} config")


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
    tiers_file: TiersOption = None,
) -> None:
    """Start a local Ray head advertising a tier's resources."""
    from cluster.local import start_cluster
    from cluster.tiers import get_tier

    cluster = start_cluster(get_tier(tier, tiers_file), port, dashboard_port)
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
    except (ConfigError, ClusterError, TierUnavailable) as exc:
        if os.environ.get("RAGTUNE_DEBUG") == "1":
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
