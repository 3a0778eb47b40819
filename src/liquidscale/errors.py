"""User-facing errors: the CLI prints these as one line (no traceback) and exits with status 2."""

from __future__ import annotations

import os


class UserError(Exception):
    """A problem the user can fix: bad config key, missing or corrupt input file, impossible request."""


def damaged_input(path: str | os.PathLike, what: str, rule: str, cause: BaseException | str, output: str | os.PathLike | None = None) -> UserError:
    """The error for an intermediate file that exists but cannot be read (truncated, overwritten, half-copied):
    it names the file, the reader's first line of complaint, and the rule that remakes it. ``output`` is the
    rule's output to delete when ``path`` lies inside a folder output (Snakemake sees only the folder)."""
    if isinstance(cause, FileNotFoundError):  # absent, not damaged: nothing to delete
        return UserError(f"{path}: {what} not found; rerun snakemake (rule '{rule}' makes it)")
    text = str(cause).strip()
    reason = text.splitlines()[0].split(". ")[0][:200] if text else type(cause).__name__
    remove = "it" if output is None else str(output)
    return UserError(f"{path}: damaged {what} ({reason}); delete {remove} and rerun snakemake (rule '{rule}' remakes it)")
