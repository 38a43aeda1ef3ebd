"""Every `ragtune` command in the README's code blocks parses as the CLI would parse it (verb,
options, arguments), and every config it names is shipped and valid, or is one `ragtune demo`
writes. The demo and the other tests run the commands themselves."""

from __future__ import annotations

import re
import shlex

import click
import pytest
import typer

from ragtune.cli.common import CONFIG_KINDS, config_kind
from ragtune.cli.main import app
from ragtune.core.config import load_config, read_yaml
from ragtune.demo.pipeline import STAGE_CONFIGS
from tests.helpers import ROOT


def readme_commands() -> list[str]:
    """The `ragtune …` commands of the README's bash blocks: continuations joined, comments,
    env assignments, pipes and optional `[...]` parts dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line.split("  #")[0]):
                words = shlex.split(re.sub(r"\[[^\]]*\]", "", part))
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words.pop(0)
                if words and words[0].endswith("bin/ragtune"):
                    commands.append(" ".join(words[1:]))
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_a_newcomer_runs():
    verbs = {command.split()[0] for command in COMMANDS}
    assert {"demo", "index", "search", "train", "sweep", "serve", "query", "eval", "up"} <= verbs


@pytest.mark.parametrize("command", COMMANDS)
def test_a_readme_command_parses_and_its_configs_exist(command):
    group = typer.main.get_command(app)
    words = shlex.split(command)
    cli = group
    while isinstance(cli, click.Group):
        name = words.pop(0)
        cli = cli.get_command(click.Context(cli), name)
        assert cli is not None, f"unknown verb '{name}' in: ragtune {command}"
    cli.make_context("ragtune", list(words), resilient_parsing=False)  # parses, runs nothing
    for word in words:
        if word.startswith("runs/demo/") and word.endswith(".yaml"):
            assert word.removeprefix("runs/demo/").removesuffix(".yaml") in STAGE_CONFIGS, word
        elif word.startswith("configs/") and word.endswith(".yaml"):
            path = ROOT / word
            module, name = CONFIG_KINDS[config_kind(path, read_yaml(path))]
            load_config(getattr(__import__(module, fromlist=[name]), name), path)
