"""Particle-exchange Monte Carlo against exact distributions: it must keep the canonical ensemble in V_ext."""

import math

import numpy as np
from scipy.integrate import quad

from liquidscale.external import ExternalPotential
from liquidscale.md.exchange import energies_with_others, exchange_moves
from liquidscale.md.widom import lj_shifted

BOX = np.array([4.0, 4.0, 8.0])
EXTERNAL = ExternalPotential(8.0, ({"kind": "fourier", "n": 1, "amplitude": 1.5, "phase": 0.3}, {"kind": "soft_wall", "center": 6.0, "half_width": 1.0, "amplitude": 3.0, "softness": 0.2}))


def _chain(n, beta, epsilon, external, samples, seed):
    """Positions after each of ``samples`` sweeps of n moves (every sweep's configuration kept)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3)) * BOX
    frames = []
    for _ in range(samples):
        x, _ = exchange_moves(x, BOX, beta, 2.5, epsilon, external, n, rng)
        frames.append(x.copy())
    return np.array(frames)


def test_energy_with_others_excludes_the_particle_itself():
    x = np.array([[0.5, 0.5, 0.5], [1.6, 0.5, 0.5], [3.9, 0.5, 0.5]])  # the third is 0.6 from the first across x = 0
    energy = energies_with_others(x, x[[0]], np.array([0]), BOX, 2.5, 1.0)
    np.testing.assert_allclose(energy, lj_shifted(np.array([1.1]), 2.5) + lj_shifted(np.array([0.6]), 2.5), rtol=1e-12)


def test_ideal_gas_in_external_potential_is_boltzmann():
    """epsilon = 0: the positions' z must follow exp(-beta V(z)) exactly (chi^2 over 16 bins)."""
    frames = _chain(20, 1.0, 0.0, EXTERNAL, 1500, 1)
    counts, edges = np.histogram(frames[..., 2], bins=16, range=(0, BOX[2]))
    fine = np.linspace(0, BOX[2], 16 * 200, endpoint=False) + BOX[2] / 6400
    weight = np.exp(-EXTERNAL.beta_v(fine)).reshape(16, -1).mean(1)
    expected = counts.sum() * weight / weight.sum()
    # a sweep moves each particle once on average: successive frames are correlated, ~1/acceptance sweeps apart
    effective = counts.sum() / 3.0
    chi2 = float((((counts - expected) / expected) ** 2 * expected).sum() * effective / counts.sum())
    assert chi2 < 40, chi2  # 15 degrees of freedom


def test_pair_distance_of_two_particles_is_boltzmann():
    """Two LJ particles in a cube: the pair distance r follows 4 pi r^2 exp(-beta u(r)) (r below half the box)."""
    box, beta, cutoff = np.full(3, 5.0), 1.0 / 1.2, 2.5
    rng = np.random.default_rng(2)
    x, r = rng.random((2, 3)) * box, []
    for _ in range(40000):
        x, _ = exchange_moves(x, box, beta, cutoff, 1.0, None, 2, rng)
        d = x[0] - x[1]
        d -= box * np.round(d / box)
        r.append(np.linalg.norm(d))
    r = np.array(r)
    edges = np.linspace(0.9, 2.5, 9)
    counts = np.histogram(r, bins=edges)[0]
    weight = [quad(lambda s: 4 * math.pi * s * s * math.exp(-beta * lj_shifted(np.array(s), cutoff)), a, b)[0] for a, b in zip(edges, edges[1:])]
    total_weight = quad(lambda s: 4 * math.pi * s * s * math.exp(-beta * lj_shifted(np.array(s), cutoff)), 0.8, cutoff)[0] + box.prod() - 4 / 3 * math.pi * cutoff**3
    expected = len(r) * np.array(weight) / total_weight
    np.testing.assert_allclose(counts, expected, rtol=0.12)  # ~600-4000 counts per bin; strong correlation not expected (independent draws)
