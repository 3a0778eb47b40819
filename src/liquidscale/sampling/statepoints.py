"""The state-point table: which runs exist, how they are batched into jobs, and their seeds.

All replicas of a batch share the molecule count and the box (so the potential evaluates them in one
call); they differ in temperature, external potential and thermostat seed. Batches spread the
density from vapour to liquid; a fraction of them start as liquid-vapour slabs. Every random choice
derives from (config seed, system, run or batch id), so the table is the same on every machine.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from ..external import ExternalPotential, RandomPotentialSettings, random_potential

# systems with a ``sampling.<system>`` block
SAMPLED_SYSTEMS = ("water", "co2", "lj")
COLUMNS = ("run", "batch", "replica", "T", "n_molecules", "box_x", "box_y", "box_z", "layout", "slab_width", "potential_seed", "thermostat_seed")


def system_tag(system: str) -> int:
    """A stable integer for a system name (seeds must not depend on Python's salted hash)."""
    return zlib.crc32(system.encode())


def derived_seed(seed: int, system: str, purpose: str, index: int) -> int:
    """An independent 63-bit seed per (config seed, system, purpose, index)."""
    sequence = np.random.SeedSequence([seed, system_tag(system), zlib.crc32(purpose.encode()), index])
    return int(sequence.generate_state(2, np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64))


@dataclass(frozen=True)
class SystemSampling:
    """The sampling settings of one system (a validated ``sampling.<system>`` block plus the common keys)."""

    system: str
    seed: int
    runs: int
    replicas_per_job: int
    temperature_range: tuple[float, float]
    box: tuple[float, float, float]
    density_range: tuple[float, float]
    slab_density: float
    slab_fraction: float
    slab_width_range: tuple[float, float]
    potentials: RandomPotentialSettings

    @property
    def n_batches(self) -> int:
        return math.ceil(self.runs / self.replicas_per_job)

    @property
    def volume(self) -> float:
        return float(np.prod(self.box))

    @property
    def area(self) -> float:
        return float(self.box[0] * self.box[1])

    def potential(self, potential_seed: int) -> ExternalPotential:
        return random_potential(potential_seed, self.box[2], self.potentials)


def system_sampling(settings: Mapping[str, Any]) -> SystemSampling:
    """Build from the ``--settings`` JSON of ``stage_settings(config, system, 'sampling')``."""
    system = settings["system"]
    common = settings["sampling"]
    block = common[system]
    t_range = block.get("temperature_range") or settings["system_settings"].get("temperature_range")
    if not t_range:
        raise UserError(f"config key '{system}.temperature_range': needed to draw the sampling temperatures")
    potentials = RandomPotentialSettings.from_mapping({**common["potentials"], **block["potential_lengths"]})
    lo, hi = block["density_range"]
    if lo > hi:
        raise UserError(f"config key 'sampling.{system}.density_range': lower bound {lo} exceeds upper bound {hi}")
    return SystemSampling(
        system=system,
        seed=int(settings["seed"]),
        runs=_runs(settings),
        replicas_per_job=int(common["replicas_per_job"]),
        temperature_range=(float(t_range[0]), float(t_range[1])),
        box=tuple(float(b) for b in block["box"]),
        density_range=(float(lo), float(hi)),
        slab_density=float(block["slab_density"]),
        slab_fraction=float(common["slab_fraction"]),
        slab_width_range=tuple(float(w) for w in common["slab_width_range"]),
        potentials=potentials,
    )


def _runs(settings: Mapping[str, Any]) -> int:
    """The campaign's run count; for one batch's settings (``batch_settings``), the runs up to and including that batch."""
    if "batch" in settings:
        return settings["batch"]["index"] * int(settings["sampling"]["replicas_per_job"]) + settings["batch"]["replicas"]
    return int(settings["sampling"]["runs"])


def batch_settings(settings: Mapping[str, Any], batch: int) -> dict[str, Any]:
    """The settings of one sampling job: the stage's without ``sampling.runs``, plus the batch's index and size.

    A batch's state points depend on the seed, its index and its size only (not on the runs after it), so
    these settings, the job's params, stay the same when ``sampling.runs`` grows: finished batches do not
    rerun, and only a partial last batch that gains replicas does. Other systems' blocks are left out too.
    """
    s = system_sampling(settings)
    if not 0 <= batch < s.n_batches:
        raise UserError(f"batch {batch} does not exist: config key 'sampling.runs' gives {s.n_batches} batches")
    other_systems = set(SAMPLED_SYSTEMS) - {settings["system"]}
    sampling = {key: value for key, value in settings["sampling"].items() if key != "runs" and key not in other_systems}
    replicas = min(s.replicas_per_job, s.runs - batch * s.replicas_per_job)
    return {**settings, "sampling": sampling, "batch": {"index": batch, "replicas": replicas}}


def batch_table(settings: Mapping[str, Any]):
    """The state points of the job ``batch_settings`` describes (its rows of the campaign's table)."""
    table = statepoint_table(system_sampling(settings))
    return table[table["batch"] == settings["batch"]["index"]]


def statepoint_table(s: SystemSampling):
    """The run table (pandas.DataFrame, one row per run, columns ``COLUMNS``)."""
    import pandas as pd

    rows = []
    for batch in range(s.n_batches):
        rng = np.random.default_rng(derived_seed(s.seed, s.system, "batch", batch))
        if rng.random() < s.slab_fraction:
            layout = "slab"
            width = float(rng.uniform(*s.slab_width_range))
            n_molecules = round(s.slab_density * s.area * width * s.box[2])
        else:
            layout, width = "uniform", 1.0
            n_molecules = round(rng.uniform(*s.density_range) * s.volume)
        n_molecules = max(int(n_molecules), 1)
        for replica in range(min(s.replicas_per_job, s.runs - batch * s.replicas_per_job)):
            run = batch * s.replicas_per_job + replica
            run_rng = np.random.default_rng(derived_seed(s.seed, s.system, "temperature", run))
            rows.append(
                {
                    "run": run,
                    "batch": batch,
                    "replica": replica,
                    "T": float(run_rng.uniform(*s.temperature_range)),
                    "n_molecules": n_molecules,
                    "box_x": s.box[0],
                    "box_y": s.box[1],
                    "box_z": s.box[2],
                    "layout": layout,
                    "slab_width": width,
                    "potential_seed": derived_seed(s.seed, s.system, "potential", run),
                    "thermostat_seed": derived_seed(s.seed, s.system, "thermostat", run),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
