"""What the verb groups share: option types, the config kinds, and loading a config by kind."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from ragtune.core.config import apply_overrides, load_config, read_yaml, relative_paths
from ragtune.core.errors import ConfigError

# Config kinds `ragtune validate` knows: kind -> (module, model class). A file names its kind
# with a top-level `kind:` field, or by its file name or folder (tiers.yaml, configs/index/x.yaml).
CONFIG_KINDS: dict[str, tuple[str, str]] = {
    "tiers": ("ragtune.cluster.tiers", "TiersFile"),
    "index": ("ragtune.retrieval.config", "IndexJobConfig"),
    "embedder": ("ragtune.retrieval.config", "EmbedderTuneConfig"),
    "reranker": ("ragtune.retrieval.config", "RerankerTuneConfig"),
    "retrieval-eval": ("ragtune.eval.retrieval", "RetrievalEvalConfig"),
    "train": ("ragtune.train.config", "TrainJobConfig"),
    "sweep": ("ragtune.train.sweep_config", "SweepConfig"),
    "serve": ("ragtune.serve.config", "ServeJobConfig"),
    "cluster": ("ragtune.cluster.cluster_config", "ClusterConfig"),
    "answer-eval": ("ragtune.eval.answers", "AnswerEvalConfig"),
    "followup-eval": ("ragtune.eval.followups", "FollowupEvalConfig"),
    "demo": ("ragtune.demo.config", "DemoConfig"),
}
# Verbs `ragtune submit` runs on a cluster, and the config kind each takes.
JOB_VERBS: dict[str, str] = {
    "index": "index",
    "tune-embedder": "embedder",
    "tune-reranker": "reranker",
    "train": "train",
    "sweep": "sweep",
    "serve": "serve",
    "eval retrieval": "retrieval-eval",
}


def verb_group(help: str | None = None) -> typer.Typer:
    """A group of verbs (`ragtune jobs ...`) that prints its help when given no verb."""

    def help_without_verb(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            typer.echo(ctx.get_help())

    return typer.Typer(
        callback=help_without_verb,
        invoke_without_command=True,
        help=help,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def _use_tiers(path: Path | None) -> Path | None:
    """Option callback: make `--tiers` the tiers file before any config is read."""
    if path is not None:
        from ragtune.cluster.tiers import use_tiers_file

        use_tiers_file(path)
    return path


TiersOption = Annotated[
    Path | None,
    typer.Option(
        "--tiers",
        help="Tiers file for this command and its jobs (default: $RAGTUNE_TIERS, else the shipped one).",
        callback=_use_tiers,
        is_eager=True,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to use; default: the `ragtune up` one or embedded."),
]
JobsAddress = Annotated[str | None, typer.Option("--address", help="Dashboard URL, e.g. http://HEAD:8265.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config field: key.path=value.")
]


def config_kind(path: Path, data: dict) -> str:
    """The kind of a config file, from its `kind` field, file name or parent folder."""
    for candidate in (data.get("kind"), path.stem, path.parent.name):
        if isinstance(candidate, str) and candidate in CONFIG_KINDS:
            return candidate
    raise ConfigError(
        str(path), "kind", f"cannot tell the config kind; set kind: one of {', '.join(CONFIG_KINDS)}"
    )


def load_job_config(path: Path, overrides: list[str] | None, expect: str | None = None):
    """Load any config file as its kind's model; with `expect`, it must be of that kind."""
    data = read_yaml(path)
    kind = expect or config_kind(path, data)
    if expect and data.get("kind", expect) != expect:
        raise ConfigError(
            str(path), "kind", f"a {data['kind']} config, but this verb takes a {expect} config"
        )
    module, name = CONFIG_KINDS[kind]
    return load_config(getattr(importlib.import_module(module), name), path, overrides or [])


def load_cluster_job_config(path: Path, overrides: list[str] | None, kind: str):
    """Load a config a cluster will run; its relative paths are an error, since the job runs
    in a folder of its own there (the README: absolute paths on shared storage, or URIs)."""
    loaded = load_job_config(path, overrides, expect=kind)
    module, name = CONFIG_KINDS[kind]
    data = apply_overrides(read_yaml(path), overrides or [], str(path))
    relative = relative_paths(getattr(importlib.import_module(module), name), data)
    if relative:
        raise ConfigError(
            str(path),
            relative[0].split(":")[0],
            f"'{relative[0].split(': ', 1)[1]}' is relative to this machine's current folder, but "
            "the job runs on the cluster in a folder of its own: give an absolute path on storage "
            "every node mounts (or a URI)",
        )
    return loaded
