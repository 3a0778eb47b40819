"""The sum rules a learned functional does not satisfy by construction, proven on exact functionals first:
the wall sum rule against Tonks' and the square-well closed-form pressure, path independence of the
free energy to round-off, and a deliberately non-integrable c1 that the path check catches (~2 s)."""

import numpy as np
import pytest
import torch

from liquidscale.cdft.solver import solve
from liquidscale.cdft.sum_rules import path_independence, wall_sum_rule
from liquidscale.external import RandomPotentialSettings, random_potential
from liquidscale.fluids.hard_rods import PercusHardRods, tonks_beta_p
from liquidscale.fluids.square_well import SquareWellMeanField

torch.set_num_threads(1)

DZ = 0.1


def square_well_beta_p(rho: float, T: float, epsilon: float = 1.0, attraction_range: float = 1.5) -> float:
    """Closed-form bulk pressure of the mean-field square-well rods: Tonks minus (epsilon range / T) rho^2."""
    return rho / (1.0 - rho) - epsilon * attraction_range / T * rho**2


class SkewedHardRods:
    """Percus c1 plus 0.05 rho(z)^2 rho(z + sigma/2): translation invariant, but its Jacobian is not symmetric,
    so it is the derivative of no free energy."""

    def __init__(self, dz: float, strength: float = 0.05):
        self.percus = PercusHardRods(dz)
        self.dz, self.strength, self.shift = dz, strength, round(0.5 / dz)
        self.interaction_range = self.percus.interaction_range

    def c1(self, rho: torch.Tensor, T=1.0) -> torch.Tensor:
        return self.percus.c1(rho, T) + self.strength * rho**2 * rho.roll(-self.shift, -1)


def two_profiles() -> tuple[np.ndarray, np.ndarray]:
    """Exact hard-rod profiles in two random potentials at different chemical potentials (rho 0.13-0.80)."""
    z = (np.arange(100) + 0.5) * DZ
    settings = RandomPotentialSettings(cap=1.0, p_fourier=1.0, p_hard_wall=0.0, p_slit=0.0)
    return tuple(solve(PercusHardRods(DZ), random_potential((424242, k), 10.0, settings).beta_v(z), 1.0, mu=beta_mu).rho for k, beta_mu in ((0, 0.0), (1, 3.0)))


@pytest.mark.parametrize("beta_mu", [-1.0, 2.0, 4.0])
@pytest.mark.parametrize("wall_height", [30.0, 1.0])
def test_wall_sum_rule_gives_the_tonks_pressure(beta_mu, wall_height):
    """Measured |mismatch| <= 1.2e-8 (rho_b 0.22-0.75); the bulk pressure is Tonks' to 1e-10."""
    rule = wall_sum_rule(PercusHardRods(DZ), 1.0, beta_mu, wall_height=wall_height)
    assert rule.beta_p_bulk == pytest.approx(tonks_beta_p(rule.rho_bulk), rel=1e-10)
    assert rule.beta_p_wall == pytest.approx(tonks_beta_p(rule.rho_bulk) - tonks_beta_p(rule.rho_inside), rel=1e-7)
    assert abs(rule.mismatch) < 1e-7
    if wall_height == 30.0:  # the hard-wall limit: the whole bulk pressure acts on the wall
        assert rule.beta_p_inside < 1e-10


@pytest.mark.parametrize(("T", "beta_mu"), [(0.6, -1.0), (0.6, -2.5), (1.5, 1.0)])
def test_wall_sum_rule_gives_the_square_well_pressure_at_two_temperatures(T, beta_mu):
    """Above Tc = 4/9 (no wetting or drying layers): measured |mismatch| <= 2.1e-8 for a liquid and a gas at T = 0.6 and at T = 1.5."""
    functional = SquareWellMeanField(DZ)
    for wall_height in (30.0, 1.0):
        rule = wall_sum_rule(functional, T, beta_mu, wall_height=wall_height)
        expected = square_well_beta_p(rule.rho_bulk, T) - square_well_beta_p(rule.rho_inside, T)
        assert rule.beta_p_wall == pytest.approx(expected, rel=1e-7)
        assert rule.beta_p_bulk == pytest.approx(square_well_beta_p(rule.rho_bulk, T), rel=1e-10)


@pytest.mark.parametrize(("functional", "T"), [(PercusHardRods(DZ), 1.0), (SquareWellMeanField(DZ), 0.6), (SquareWellMeanField(DZ), 1.5)])
def test_exact_free_energies_do_not_depend_on_the_path(functional, T):
    """Measured: the two paths agree to 1.2e-14 (|delta F| 2-6)."""
    along_straight_path, via_scaling_paths = path_independence(functional, *two_profiles(), T)
    assert abs(via_scaling_paths) > 1.0
    assert along_straight_path == pytest.approx(via_scaling_paths, abs=1e-10)


def test_a_c1_that_is_no_functional_derivative_fails_the_path_check():
    """Measured 5.3e-4 difference between the paths (exact functionals: 1e-14), linear in the strength of the
    skew; the check tells an inconsistent c1 from a consistent one by ten orders of magnitude."""
    rho_a, rho_b = two_profiles()
    differences = []
    for strength in (0.05, 0.1):
        along_straight_path, via_scaling_paths = path_independence(SkewedHardRods(DZ, strength), rho_a, rho_b, 1.0)
        differences.append(along_straight_path - via_scaling_paths)
    assert abs(differences[0]) > 1e-4
    assert differences[1] == pytest.approx(2 * differences[0], rel=1e-6)
    # and the skewed functional's mechanical and thermodynamic pressures part too (exact: 1e-8)
    assert abs(wall_sum_rule(SkewedHardRods(DZ), 1.0, 1.5).mismatch) > 1e-4
