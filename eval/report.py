"""What evaluations share: reading their input files."""

from __future__ import annotations

from pathlib import Path

from ragtune.core.errors import InputError


def read_lines(path: Path) -> list[str]:
    """The lines of an evaluation input file; an InputError naming it when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read ({reason})", "check the config's file paths") from None
