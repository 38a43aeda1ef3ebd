"""One error contract: every expected failure is a RagtuneError saying what went wrong and what
to do; the CLI catches this one base and prints a single line."""

from __future__ import annotations


class RagtuneError(Exception):
    """An expected failure: `problem` says what went wrong, `fix` what to do about it."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class ConfigError(RagtuneError, ValueError):
    """A config that cannot be used: which file, which field, why, and a close match if any.

    Also a ValueError, so pydantic reports one raised inside a validator as that field's error.
    """

    def __init__(self, source: str, field: str, reason: str, suggestion: str | None = None):
        self.source, self.field, self.reason, self.suggestion = source, field, reason, suggestion
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        where = f"field '{field}': " if field else ""
        super().__init__(f"{source}: {where}{reason}{hint}")


class InputError(RagtuneError):
    """A job's input is missing, unreadable or malformed (a file, a folder, a data row)."""


class ArtifactError(InputError):
    """A stage's output folder (index, model, embedder) is missing, corrupt, from another model or
    from a format this ragtune does not read."""


class ClusterError(RagtuneError):
    """A Ray cluster or Serve app could not be started, found, reached or stopped."""
