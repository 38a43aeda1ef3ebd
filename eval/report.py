"""What evaluations share: reading their input files, and the one way they show results (a
Markdown table the CLI prints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ragtune.core.errors import InputError


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A Markdown table; columns from `numeric_from` on are right-aligned figures."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def read_lines(path: Path) -> list[str]:
    """The lines of an evaluation input file; an InputError naming it when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read ({reason})", "check the config's file paths") from None
