"""The `ragtune` command. Each verb is a thin call into a package, imported lazily per verb."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ragtune.cli import artifacts, cluster, evaluate, make, run
from ragtune.cli.common import SetOption, TiersOption, load_job_config, verb_group
from ragtune.cluster.local import use_cluster_token
from ragtune.cluster.tiers import TIERS_ENV, use_tiers_file
from ragtune.core.errors import RagtuneError

app = verb_group(__doc__)
for group in (run.app, artifacts.app, cluster.app):
    app.add_typer(group)
app.add_typer(evaluate.app, name="eval")
app.add_typer(cluster.jobs_app, name="jobs")
app.add_typer(cluster.render_app, name="cluster")
app.add_typer(make.data_app, name="data")
app.add_typer(make.model_app, name="model")


@app.command()
def validate(config: Path, set_: SetOption = None, tiers: TiersOption = None) -> None:
    """Check a config file (any kind) without running anything."""
    loaded = load_job_config(config, set_)
    typer.echo(f"{config}: valid {loaded.kind} config")


@app.command()
def version() -> None:
    """Print ragtune's version and where it is installed (what a node runs)."""
    import ragtune

    typer.echo(f"ragtune {ragtune.__version__} ({Path(ragtune.__file__).parent})")


def main() -> None:
    """Entry point: an expected failure or a usage mistake prints one line and exits non-zero
    (RAGTUNE_DEBUG=1 shows the traceback)."""
    try:
        if configured := os.environ.get(TIERS_ENV):  # absolute before any work: Ray may move the cwd
            use_tiers_file(configured)
        use_cluster_token()  # before any verb imports ray: Ray reads its auth mode once, on import
        sys.exit(app(standalone_mode=False, prog_name="ragtune") or 0)
    except (RagtuneError, typer.TyperException, OSError) as exc:
        if os.environ.get("RAGTUNE_DEBUG") == "1":
            raise
        usage = isinstance(exc, typer.TyperException)
        message = exc.format_message() if usage else str(exc)
        if isinstance(exc, OSError):  # a path that cannot be read or written
            message += "; check the path and its permissions"
        hint = f" (see `{exc.ctx.command_path} --help`)" if usage and getattr(exc, "ctx", None) else ""
        typer.echo(f"error: {' '.join(message.split())}{hint}", err=True)
        sys.exit(exc.exit_code if usage else 2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
