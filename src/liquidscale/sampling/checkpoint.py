"""Checkpoints of a running sampling job, so a killed or timed-out job continues where it stopped.

A checkpoint lives beside the job's output (``<output>.checkpoint``), is written atomically (temporary
file, then rename), and carries a fingerprint of everything that decides the job's result (its
settings, state points and model). A rerun resumes from it only when the fingerprint matches; a
checkpoint of other settings, or a damaged one, is reported in one log line and the job starts over.
The job removes its checkpoint once its output is complete.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..io import atomic_path

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the saved state's layout changes: older checkpoints are then not used


class Checkpoint:
    """Save and load one job's state at ``path``; ``due()`` says when ``minutes`` have passed since the last save."""

    def __init__(self, path: str | Path, fingerprint: str, minutes: float):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.seconds = 60.0 * float(minutes)
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.seconds

    def save(self, state: dict[str, Any]) -> None:
        import torch

        with atomic_path(self.path) as tmp:
            torch.save({"format": FORMAT, "fingerprint": self.fingerprint, "state": state}, tmp)
        self.last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None (nothing saved, other settings, damaged: said in the log)."""
        import torch

        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            fingerprint, state = saved["fingerprint"], saved["state"]
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means: start over
            log.warning("%s: damaged checkpoint (%s: %s), starting the job over", self.path, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return None
        if saved.get("format") != FORMAT or fingerprint != self.fingerprint:
            log.warning("%s: checkpoint of other settings, state points or model (fingerprint mismatch), starting the job over", self.path)
            return None
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
