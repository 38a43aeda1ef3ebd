"""Keep a long job's console to its own lines: everything else written to stderr (Python logging,
warnings, Ray's and Serve's logs, native libraries' messages) goes to a file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def stderr_to(path: Path) -> Iterator[Path]:
    """Send this process's stderr (file descriptor 2, so native code's writes too) to `path`,
    appended, until the block ends; then stderr is the terminal again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
