"""Atomic file output and provenance records.

Every stage writes through these helpers so that a killed job never leaves a file or folder that
looks complete, and every dataset and model carries the same provenance fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Works for files and folders (write whatever you like at the yielded path). The temporary lives in
    the same folder so the final ``os.replace`` is atomic on POSIX file systems.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise RuntimeError(f"nothing was written for {target}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or corrupt file is a UserError that names it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); rerun the rule that produces it") from None


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def canonical_hash(obj: Any) -> str:
    """SHA-256 of a JSON-serialisable object, independent of key order (used for config hashes)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str:
    """The commit of the liquidscale checkout, or 'unknown' outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(
    settings: Mapping[str, Any],
    seeds: Mapping[str, int] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance block every dataset and model carries.

    ``settings`` is the config section that determined the output (its hash is the config hash);
    ``inputs`` maps a role to an upstream file or folder whose SHA-256 is recorded.
    """
    record: dict[str, Any] = {
        "liquidscale_version": __version__,
        "git_commit": git_commit(),
        "config_hash": canonical_hash(settings),
        "seeds": dict(seeds or {}),
        "upstream_hashes": {role: file_hash(p) for role, p in (inputs or {}).items()},
    }
    record.update(extra)
    return record
