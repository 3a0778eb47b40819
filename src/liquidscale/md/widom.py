"""Widom test-particle insertion for the truncated-and-shifted Lennard-Jones fluid under V_ext(z).

Why: canonical MD leaves the chemical potential unknown, and the cDFT fits one beta mu per run. Widom's
potential distribution theorem pins it independently (Widom, J. Chem. Phys. 39, 2808 (1963)):

* local form, insertions binned by their z (an independent check of the Euler-Lagrange equation: it must
  come out flat): beta mu = ln(rho(z) Lambda^3) + beta V_ext(z) - ln < exp(-beta dU) >_z;
* global form, its integral over the box, N particles in volume V:
  beta mu = ln(N Lambda^3 / V) - ln < exp(-beta dU - beta V_ext(z_test)) >,
  dU the pair energy of a test particle at a uniformly random position with the N particles.

Which mu: the canonical profile of N particles obeys rho_N(r) = e^{beta mu(N-1 -> N)} e^{-beta V(r)}
< e^{-beta dU(r)} >_{N-1} exactly, so the mu a profile fit (the cDFT's) sees is that of adding the N-th
particle, ln N in the ideal part. Textbook Widom, ln(N + 1), is mu(N -> N + 1): higher by 1 / (N S(0)), which
is exactly 1/N for an ideal gas — 0.03-0.08 for the LJ campaign's dilute runs of 12-40 particles, whose
Widom values are the most precise of all (stderr 0.001-0.005) and so the strongest anchors of the gauge
(measured: their profile-fitted beta mu sat 0.03-0.09 below the ln(N + 1) values). The frames here hold N,
not N - 1, particles: the interaction part is then that of mu(N -> N + 1), a remaining O((1/S(0) - 1) / N)
difference that vanishes for dilute runs and is ~0.06 for a 300-atom liquid with S(0) = 0.05.

Lambda = 1 in reduced units (the project's convention: ln Lambda^3 absorbed into beta mu). Errors:
the insertions are accumulated per block of frames (the profile accumulator's blocks), and the
standard error of beta mu is the spread of the block values / sqrt(blocks).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..external import ExternalPotential


# slab thickness of the z-resolved Widom estimate (length unit)
LOCAL_WIDTH = 0.25


def lj_shifted(r: np.ndarray, cutoff: float, epsilon: float = 1.0) -> np.ndarray:
    """u(r) = 4 epsilon (r^-12 - r^-6) - u(r_c) inside the cutoff (callers pass r < r_c only)."""
    inv6 = r**-6.0
    return 4.0 * epsilon * (inv6 * inv6 - inv6 - (cutoff**-12 - cutoff**-6))


class WidomAccumulator:
    """Insertion sums of one replica per block: global Boltzmann factors and z-binned pair factors."""

    def __init__(self, box: np.ndarray, beta: float, cutoff: float, epsilon: float, external: ExternalPotential | None, n_bins: int, blocks: int, insertions: int, rng: np.random.Generator):
        self.box = np.asarray(box, dtype=float)
        self.beta = float(beta)
        self.cutoff = float(cutoff)
        self.epsilon = float(epsilon)
        self.external = external if external is not None and external.terms else None
        self.n_bins = n_bins
        self.insertions = int(insertions)
        self.rng = rng
        self.boltzmann = np.zeros(blocks)  # sum of exp(-beta dU - beta V_ext)
        self.tries = np.zeros(blocks)
        self.pair_by_bin = np.zeros((blocks, n_bins))  # sum of exp(-beta dU) per z bin
        self.tries_by_bin = np.zeros((blocks, n_bins))

    def sample(self, positions: np.ndarray, block: int) -> None:
        """Insert ``insertions`` test particles into the frame ``positions`` [N, 3] (wrapped into the box)."""
        points = self.rng.random((self.insertions, 3)) * self.box
        du = self.insertion_energies(positions, points)
        pair = np.exp(-self.beta * du)
        beta_v = self.external.beta_v(points[:, 2]) if self.external is not None else 0.0
        self.boltzmann[block] += float(np.sum(pair * np.exp(-beta_v)))
        self.tries[block] += self.insertions
        bins = np.minimum((points[:, 2] / self.box[2] * self.n_bins).astype(np.intp), self.n_bins - 1)
        self.pair_by_bin[block] += np.bincount(bins, weights=pair, minlength=self.n_bins)
        self.tries_by_bin[block] += np.bincount(bins, minlength=self.n_bins)

    def insertion_energies(self, positions: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Pair energy of each test particle at ``points`` [M, 3] with the particles at ``positions`` [N, 3]."""
        box = self.box
        tree = cKDTree(_wrap(positions, box), boxsize=box)
        tests = cKDTree(_wrap(points, box), boxsize=box)
        pairs = tests.sparse_distance_matrix(tree, self.cutoff, output_type="coo_matrix")
        r = np.maximum(pairs.data, 1e-6)  # a test particle on top of another: exp(-beta u) = 0 anyway
        return np.bincount(pairs.row, weights=lj_shifted(r, self.cutoff, self.epsilon), minlength=len(points))

    def state(self) -> dict[str, np.ndarray]:
        return {"widom_boltzmann": self.boltzmann, "widom_tries": self.tries, "widom_pair_by_bin": self.pair_by_bin, "widom_tries_by_bin": self.tries_by_bin}


def _wrap(x: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions in [0, box) (np.mod of a tiny negative number can round to box itself)."""
    wrapped = np.mod(x, box)
    return np.where(wrapped >= box, 0.0, wrapped)


def beta_mu(boltzmann: np.ndarray, tries: np.ndarray, n_particles: int, volume: float) -> tuple[float, float]:
    """Global-form beta mu (ideal part ln(N / V): the canonical profile's mu, see the module docstring) and its block
    standard error from per-block sums (NaN without insertions)."""
    if tries.sum() == 0:
        return float("nan"), float("nan")
    ideal = np.log(n_particles / volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ideal - np.log(boltzmann.sum() / tries.sum())
        blocks = ideal - np.log(boltzmann / tries)
    used = np.isfinite(blocks)
    stderr = blocks[used].std(ddof=1) / np.sqrt(used.sum()) if used.sum() > 1 else float("nan")
    return float(mean), float(stderr)


def local_beta_mu(pair_by_bin: np.ndarray, tries_by_bin: np.ndarray, rho: np.ndarray, beta_v: np.ndarray, dz: float, width: float = LOCAL_WIDTH) -> np.ndarray:
    """z-resolved beta mu(z) = ln rho(z) + beta V_ext(z) - ln <exp(-beta dU)>_z on slabs about ``width`` thick
    (the profile bins are far too thin for insertion statistics), each slab's value repeated over its
    bins; rho and exp(-beta V) are averaged over the slab. NaN where undefined."""
    factor = max(1, int(round(width / dz)))
    slab = np.arange(len(rho)) // factor

    def per_slab(values):
        return np.bincount(slab, weights=values)[slab]

    with np.errstate(divide="ignore", invalid="ignore"):
        mean_factor = per_slab(pair_by_bin.sum(0)) / per_slab(tries_by_bin.sum(0))
        boltzmann = per_slab(np.exp(-beta_v)) / factor
        value = np.log(per_slab(rho) / factor) - np.log(boltzmann) - np.log(mean_factor)
    return np.where(np.isfinite(value), value, np.nan)
