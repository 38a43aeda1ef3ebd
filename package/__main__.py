"""`python -m ragtune`: the `ragtune` command."""

from ragtune.cli.main import main

main()
