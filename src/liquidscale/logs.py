"""Progress lines that a job writes to its log while it runs.

Every rule sends the job's stdout and stderr to its ``log:`` file, so a line logged here reaches the
file at once (``logging.StreamHandler`` flushes each record) and ``tail -f`` on a running job shows
where it is. :func:`setup_logging` is called once by the CLI; library code only logs through
``logging.getLogger(__name__)``. Long loops report through :class:`Throttle`: the first and last
step always, in between at most one line per ``PROGRESS_INTERVAL_S`` seconds, so a week-long job
writes a few thousand lines, not millions.
"""

from __future__ import annotations

import logging
import math
import sys
import time

PROGRESS_INTERVAL_S = 30.0
LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced, e.g. by pytest)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Send ``liquidscale.*`` records to stderr (the job log), one flushed line each; idempotent."""
    logger = logging.getLogger("liquidscale")
    if any(isinstance(h, _StderrHandler) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class Throttle:
    """Decides when a loop reports: at its first and last step, and when ``interval`` seconds have passed."""

    def __init__(self, total: int, interval: float = PROGRESS_INTERVAL_S):
        self.total = total
        self.interval = interval
        self.start = time.perf_counter()
        self.last = -math.inf

    def due(self, done: int) -> bool:
        now = time.perf_counter()
        if done >= self.total or now - self.last >= self.interval:
            self.last = now
            return True
        return False

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, done: int) -> float:
        """Seconds left at the mean rate so far (NaN before the first step)."""
        return self.elapsed() * (self.total - done) / done if done else math.nan


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``12s``: short enough for a progress line."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class MDProgress:
    """Progress of one ``LangevinEngine.run``: step, mean kinetic T, replicas alive, atom-steps/s, ETA,
    and each replica failure as it happens (the engine is read, never changed)."""

    def __init__(self, engine, total: int, phase: str):
        self.engine, self.phase = engine, phase
        self.throttle = Throttle(total)
        self.replicas = len(engine.generators)
        self.atoms = int(engine.x.shape[1])
        self.done = 0
        self.atom_steps = 0
        self.failures_seen = len(engine.failures)
        self.log = logging.getLogger("liquidscale.md")
        self.log.info("%s: %d steps of %d replicas (%d alive) x %d atoms", phase, total, self.replicas, engine.n_active, self.atoms)

    def step(self) -> None:
        self.done += 1
        self.atom_steps += self.engine.n_active * self.atoms

    def report(self) -> None:
        """Log new failures, then a progress line if one is due (always when no replica is left)."""
        engine = self.engine
        for rid in list(engine.failures)[self.failures_seen :]:
            self.log.warning("%s: replica %d failed: %s", self.phase, rid, engine.failures[rid])
        self.failures_seen = len(engine.failures)
        if not (self.throttle.due(self.done) or engine.n_active == 0):
            return
        mean_t = float(engine.kinetic_temperature().mean()) if engine.n_active else math.nan
        rate = self.atom_steps / max(self.throttle.elapsed(), 1e-9)
        self.log.info(
            "%s step %d/%d: mean kinetic T %.1f %s, %d/%d replicas alive, %.3g atom-steps/s, ETA %s",
            self.phase, self.done, self.throttle.total, mean_t, engine.units.temperature, engine.n_active, self.replicas,
            rate, duration(self.throttle.eta(self.done)),
        )
