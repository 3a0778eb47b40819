"""Widom test-particle insertion against exact results: independent particles (exact for any N), the
ideal gas under V_ext, and LAMMPS-sampled dilute LJTS against the second virial coefficient."""

import math

import numpy as np
from scipy.integrate import quad

from liquidscale.external import ExternalPotential
from liquidscale.md.widom import WidomAccumulator, beta_mu, lj_shifted

CUTOFF = 2.5


def mayer_integral(beta: float, cutoff: float = CUTOFF) -> float:
    """integral of (exp(-beta u_ts(r)) - 1) d^3r of the truncated-shifted LJ pair potential (= -2 B2)."""
    value, _ = quad(lambda r: 4 * math.pi * r * r * (math.exp(-beta * lj_shifted(np.array(r), cutoff)) - 1.0), 1e-3, cutoff, limit=400, points=[1.0, 1.12])
    return value


def _insert(positions_of_frame, box, beta, frames, insertions, external=None, seed=0, epsilon=1.0, blocks=20):
    acc = WidomAccumulator(box, beta, CUTOFF, epsilon, external, 10, blocks, insertions, np.random.default_rng(seed))
    for k in range(frames):
        acc.sample(positions_of_frame(k), k * blocks // frames)
    return acc


def test_insertion_energy_sums_the_shifted_pair_potential_over_periodic_images():
    box = np.array([6.0, 6.0, 7.0])
    particles = np.array([[0.2, 3.0, 3.0], [5.9, 3.0, 3.0], [3.0, 3.0, 6.5]])
    points = np.array([[0.0, 3.0, 3.0 + 1.1], [3.0, 3.0, 0.4]])
    acc = WidomAccumulator(box, 1.0, CUTOFF, 1.0, None, 10, 2, 1, np.random.default_rng(0))
    expected = []
    for p in points:
        d = particles - p
        d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=1)
        expected.append(lj_shifted(r[r < CUTOFF], CUTOFF).sum())
    np.testing.assert_allclose(acc.insertion_energies(particles, points), expected, rtol=1e-12)


def test_independent_particles_give_the_exact_mayer_product():
    """N uniformly random (non-interacting among themselves) particles: <exp(-beta dU)> = (1 + integral f / V)^N exactly."""
    box = np.array([7.0, 7.0, 7.0])
    n, beta = 30, 1.0 / 1.5
    rng = np.random.default_rng(3)
    acc = _insert(lambda k: rng.random((n, 3)) * box, box, beta, frames=400, insertions=400)
    value, error = beta_mu(acc.boltzmann, acc.tries, n, float(np.prod(box)))
    exact_excess = -n * math.log1p(mayer_integral(beta) / np.prod(box))
    ideal = math.log(n / np.prod(box))
    assert error < 0.02
    assert abs(value - ideal - exact_excess) < 4 * error, (value - ideal, exact_excess, error)


def test_ideal_gas_under_external_potential():
    """eps = 0: beta mu = ln(N / (A integral exp(-beta V) dz)), whatever the particles' positions: the beta mu of
    the canonical profile rho(z) = N exp(-beta V) / (A integral exp(-beta V)), ln rho + beta V (not ln(N + 1))."""
    box = np.array([6.0, 6.0, 10.0])
    external = ExternalPotential(10.0, ({"kind": "fourier", "n": 1, "amplitude": 1.5, "phase": 0.3}, {"kind": "soft_wall", "center": 2.0, "half_width": 1.0, "amplitude": 3.0, "softness": 0.2}))
    rng = np.random.default_rng(4)
    acc = _insert(lambda k: rng.random((20, 3)) * box, box, 1.0, frames=100, insertions=200, external=external, epsilon=0.0)
    value, error = beta_mu(acc.boltzmann, acc.tries, 20, float(np.prod(box)))
    z = np.linspace(0, 10, 200001)
    exact = math.log(20 / (36.0 * np.trapezoid(np.exp(-external.beta_v(z)), z)))
    assert abs(value - exact) < 4 * error + 1e-9, (value, exact, error)


def test_dilute_ljts_from_lammps_matches_the_second_virial_coefficient():
    """beta mu_ex -> 2 B2 rho at low density, sampled by the LAMMPS engine. The next term,
    3/2 B3 rho^2, is ~5e-4 here (B3(T* = 2) ~ 1.5 sigma^6); at twice the density it showed up as +0.002."""
    from liquidscale.md.lammps_engine import ReplicaSpec, run_replica
    from liquidscale.sampling.initial import place_molecules
    from liquidscale.sampling.profiles import ProfileAccumulator

    box = np.array([9.0, 9.0, 9.0])
    n, T = 11, 2.0  # rho = 0.015
    spec = ReplicaSpec(run=0, n_atoms=n, box=tuple(box), temperature=T, thermostat_seed=5, external=None, cutoff=CUTOFF, timestep=0.005, friction=1.0, minimisation_steps=20, max_displacement=0.05, equilibration_steps=1000, production_steps=100_000, sample_every=20, widom_insertions=300, widom_every=20)
    profiles = ProfileAccumulator(1, box[2], 0.1, spec.production_steps // spec.sample_every)
    acc = WidomAccumulator(box, 1.0 / T, CUTOFF, 1.0, None, profiles.n_bins, profiles.blocks, spec.widom_insertions, np.random.default_rng(6))
    _, failure = run_replica(spec, place_molecules(np.zeros((1, 3)), n, box, np.random.default_rng(7), 1.0), profiles, acc)
    assert not failure
    value, error = beta_mu(acc.boltzmann, acc.tries, n, float(np.prod(box)))
    excess = value - math.log(n / np.prod(box))
    expected = -mayer_integral(1.0 / T) * n / np.prod(box)  # 2 B2 rho
    assert abs(expected) > 5 * error, "the test must resolve the virial term"
    print(f"beta mu_ex Widom {excess:.4f} +- {error:.4f}, 2 B2 rho {expected:.4f}")
    assert abs(excess - expected) < 4 * error + 1e-3, (excess, expected, error)
