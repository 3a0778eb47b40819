"""Particle-exchange Monte Carlo for canonical LJ runs in a V_ext: the share of particles between wells.

Why: particles cross a barrier of a few k_B T between two fluid-filled wells of a random potential too rarely
for a canonical MD run to set the share of particles per well: it keeps the share its start gave. Measured on
the LJ validation campaign (uniform starts, 300 tau of production): the z-resolved Widom beta mu of one run
differed by 1.3 between two wells (T = 1.05, a dilute run), and the functional fitted to such runs saw liquid
pockets of one run at beta mu 1-3 apart — profiles no single chemical potential describes.

Move: a random particle to a uniformly random point of the box, accepted with min(1, exp(-beta dU - beta dV_ext))
(Metropolis): the proposal is symmetric, so the canonical distribution in V_ext is kept exactly whatever the
barriers between the wells. Acceptance into a dense liquid is low (a cavity is needed), so the moves are many
and cheap: each is evaluated against all particles at once (minimum image), proposals in blocks.
"""

from __future__ import annotations

import numpy as np

from ..external import ExternalPotential
from .widom import lj_shifted

# proposals evaluated together against the same configuration; those after an accepted one are dropped unused
PROPOSAL_BLOCK = 64


def energies_with_others(positions: np.ndarray, points: np.ndarray, movers: np.ndarray, box: np.ndarray, cutoff: float, epsilon: float) -> np.ndarray:
    """Pair energy of particle ``movers[k]`` placed at ``points[k]`` with all other particles (its own pair excluded)."""
    delta = points[:, None, :] - positions[None, :, :]
    delta -= box * np.round(delta / box)
    r2 = np.einsum("kjd,kjd->kj", delta, delta)
    r2[np.arange(len(movers)), movers] = np.inf
    inside = r2 < cutoff * cutoff
    energy = np.zeros_like(r2)
    energy[inside] = lj_shifted(np.sqrt(np.maximum(r2[inside], 1e-12)), cutoff, epsilon)
    return energy.sum(1)


def exchange_moves(positions: np.ndarray, box: np.ndarray, beta: float, cutoff: float, epsilon: float, external: ExternalPotential | None,
                   attempts: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``attempts`` particle-exchange moves on ``positions`` [N, 3]; returns (new positions in [0, box), accepted moves)."""
    box = np.asarray(box, dtype=float)
    x = np.mod(np.asarray(positions, dtype=float), box)
    beta_v = external.beta_v if external is not None and external.terms else np.zeros_like
    accepted = done = 0
    while done < attempts:
        size = min(PROPOSAL_BLOCK, attempts - done)
        movers = rng.integers(len(x), size=size)
        targets = rng.random((size, 3)) * box
        log_uniform = np.log(rng.random(size))
        du = energies_with_others(x, targets, movers, box, cutoff, epsilon) - energies_with_others(x, x[movers], movers, box, cutoff, epsilon)
        log_ratio = -beta * du - (beta_v(targets[:, 2]) - beta_v(x[movers, 2]))
        accept = np.flatnonzero(log_uniform < log_ratio)
        if accept.size == 0:
            done += size
            continue
        first = accept[0]
        x[movers[first]] = targets[first]
        accepted += 1
        done += first + 1
    return x, accepted
