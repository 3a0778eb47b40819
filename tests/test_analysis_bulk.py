"""Bulk analysis against exact results: Tonks hard rods, a mean-field van der Waals fluid, analytic poles.

Budget: about 10 s on one core.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import fsolve
from scipy.special import lambertw

from liquidscale.analysis.bulk import DensityLimit, Isotherm, functional_excess, phase_diagram
from liquidscale.fluids.square_well import SquareWellMeanField
from liquidscale.analysis.poles import find_poles, planar_denominator
from liquidscale.fluids.hard_rods import PercusHardRods, tonks_beta_mu, tonks_beta_p
from liquidscale.cdft.thermo import bulk_planar_c2

torch.set_num_threads(1)


def test_hard_rods_eos_is_tonks_and_has_no_transition():
    excess = functional_excess(PercusHardRods(dz=0.02))
    rho = np.linspace(0.01, 0.9, 50)
    iso = Isotherm.from_functional(excess, 1.0, rho_max=0.92)
    np.testing.assert_allclose(iso.beta_p(rho), tonks_beta_p(rho), rtol=1e-10)
    np.testing.assert_allclose(iso.beta_mu(rho), tonks_beta_mu(rho), rtol=1e-10, atol=1e-12)
    diagram = phase_diagram(excess, [0.5, 1.0, 2.0], rho_max=0.92)
    assert diagram.critical is None and diagram.binodal == []
    assert diagram.reason.startswith("no liquid-vapour transition")


def exact_mean_field_binodal(temperatures, a: float) -> np.ndarray:
    """Equal mu and p from the closed-form EOS beta p = rho/(1-rho) - a rho^2 / T (sigma = 1), by
    Newton (fsolve) continued upwards in T from a low-T guess."""
    guess = np.array([1e-3, 0.95])
    out = []
    for T in temperatures:
        beta_p = lambda r: r / (1 - r) - a * r**2 / T  # noqa: E731
        beta_mu = lambda r: np.log(r / (1 - r)) + r / (1 - r) - 2 * a * r / T  # noqa: E731
        equations = lambda x: [beta_mu(x[0]) - beta_mu(x[1]), beta_p(x[0]) - beta_p(x[1])]  # noqa: E731
        guess = fsolve(equations, guess, xtol=1e-12)
        assert np.max(np.abs(equations(guess))) < 1e-9 and guess[1] - guess[0] > 1e-3
        out.append(guess.copy())
    return np.array(out)


def test_mean_field_fluid_binodal_and_critical_point_match_closed_form():
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    a = fluid.epsilon * fluid.attraction_range
    diagram = phase_diagram(functional_excess(fluid), np.linspace(0.25, 0.7, 10), rho_max=0.95, n_binodal=30)
    assert diagram.reason == "" and diagram.status == "found"
    assert diagram.critical.T == pytest.approx(8 * a / 27, rel=1e-6)
    assert diagram.critical.rho == pytest.approx(1 / 3, rel=1e-4)
    assert diagram.critical.beta_p == pytest.approx(1 / 8, rel=1e-6)
    assert len(diagram.binodal) == 30
    T = np.array([point.T for point in diagram.binodal])
    exact = exact_mean_field_binodal(T[T < 0.999 * diagram.critical.T], a)
    np.testing.assert_allclose([p.rho_vapour for p in diagram.binodal[: len(exact)]], exact[:, 0], rtol=1e-3)
    np.testing.assert_allclose([p.rho_liquid for p in diagram.binodal[: len(exact)]], exact[:, 1], rtol=1e-3)
    assert len(exact) >= 25

def test_pole_solver_finds_the_poles_of_an_analytic_structure_factor():
    # D(k) = 1 - rho c_hat(k), a polynomial in k^2 with zeros at k = 0.7i and k = +-1.3 + 0.5i
    pair = 1.3 + 0.5j
    norm = 0.49 * abs(pair**2) ** 2

    def D(k):
        q = np.asarray(k) ** 2
        return (q + 0.49) * (q - pair**2) * (q - np.conj(pair) ** 2) / norm

    def dD(k):
        k = np.asarray(k)
        q = k**2
        return 2 * k * ((q - pair**2) * (q - np.conj(pair) ** 2) + (q + 0.49) * (2 * q - pair**2 - np.conj(pair) ** 2)) / norm

    poles = find_poles(D, dD, a1_max=5.0, a0_max=3.0)
    np.testing.assert_allclose(poles.imaginary, [0.7], rtol=1e-10)
    np.testing.assert_allclose(poles.complex, [[1.3, 0.5]], rtol=1e-10)
    assert poles.oscillatory and poles.correlation_length == pytest.approx(2.0)


@pytest.mark.parametrize("rho", [0.3, 0.6])
def test_hard_rod_poles_from_autograd_c2_match_tonks(rho):
    """Tonks: h(x) ~ exp(s x) with (s + beta p) exp(s sigma) = beta p, s = -beta p + W_n(beta p e^{beta p}); k = -i s."""
    dz = 0.01
    z, c_bar = bulk_planar_c2(PercusHardRods(dz), rho, 1.0)
    poles = find_poles(*planar_denominator(z, c_bar, rho, dz), a1_max=14.0, a0_max=5.0)
    beta_p = rho / (1 - rho)
    exact = [-1j * (-beta_p + lambertw(beta_p * np.exp(beta_p), n)) for n in (1, 2)]
    assert poles.imaginary.size == 0  # hard rods: only damped oscillations
    np.testing.assert_allclose(poles.complex[:2, 0], [k.real for k in exact], rtol=5e-4)
    np.testing.assert_allclose(poles.complex[:2, 1], [k.imag for k in exact], rtol=5e-4)


def test_a_single_temperature_functional_gets_one_coexistence_and_no_invented_critical_point():
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    T = 0.8 * fluid.critical_temperature
    diagram = phase_diagram(functional_excess(fluid), [T], rho_max=0.95)
    assert diagram.critical is None and "critical point above" in diagram.reason
    assert len(diagram.binodal) == 1 and diagram.binodal[0].T == T


def test_mu_turning_down_only_at_the_edge_of_the_density_range_is_no_transition():
    """Cut at rho_max = 0.2, below the liquid spinodal, the fluid's mu turns down at the range's edge for T < 0.384:
    one turning point, not a loop, so no transition (counting the edge once gave a 'critical point' at rho_c = rho_max)."""
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    diagram = phase_diagram(functional_excess(fluid), np.linspace(0.3, 0.5, 6), rho_max=0.2)
    assert diagram.status == "not found" and diagram.critical is None and diagram.critical_estimate is None
    assert diagram.reason.startswith("no liquid-vapour transition") and "only at the edge" in diagram.reason
    assert diagram.binodal == []


def test_a_critical_point_without_the_binodal_below_it_is_incomplete():
    """rho_max = 0.65 holds the loop at every T < Tc but not the coexisting liquid at T = 0.3 (rho_l = 0.729):
    the loop still closes at the exact Tc, yet the binodal from the lowest T is missing, so not 'found'."""
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    diagram = phase_diagram(functional_excess(fluid), np.linspace(0.3, 0.5, 9), rho_max=0.65, n_binodal=8)
    assert diagram.status == "incomplete" and diagram.critical is None
    assert diagram.critical_estimate.T == pytest.approx(fluid.critical_temperature, rel=1e-6)
    assert "binodal trace stopped" in diagram.reason and "above the analysed density range" in diagram.reason


def test_a_binodal_that_cannot_start_at_the_lowest_temperature_is_incomplete():
    """Below T = 0.38 the density limit (0.45) lies under the liquid spinodal: the loops inside the range exist only
    above it, so the binodal cannot start at the lowest analysed T and the diagram is not 'found'."""
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    limit = DensityLimit((0.3, 0.38, 0.5), (0.45, 0.8, 0.8))
    diagram = phase_diagram(functional_excess(fluid), np.linspace(0.3, 0.5, 6), rho_max=limit, n_binodal=8)
    assert [iso.rho_max for iso in diagram.isotherms] == pytest.approx([limit(T) for T in np.linspace(0.3, 0.5, 6)])
    assert diagram.status == "incomplete" and "below T = " in diagram.reason
    assert diagram.critical_estimate.T == pytest.approx(fluid.critical_temperature, rel=1e-6)
