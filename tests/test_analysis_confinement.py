"""Free interface and slit pores on the mean-field square-well fluid (exact bulk, real interfaces).

Budget: about 60 s on one core (the Kelvin sequence is the slow part).
"""

import numpy as np
import pytest
import torch

from liquidscale.analysis.bulk import Isotherm, coexistence, functional_excess
from liquidscale.analysis.interfaces import (
    Branch,
    Wall,
    capillary_coexistence,
    free_interface,
    kelvin_shift_times_width,
    pore_branch,
    slit_potential,
    wall_tension_difference,
)
from liquidscale.fluids.square_well import SquareWellMeanField
from liquidscale.cdft.solver import SolverSettings

torch.set_num_threads(1)


def saturation(fluid, reduced_T):
    T = reduced_T * fluid.critical_temperature
    return coexistence(Isotherm.from_functional(functional_excess(fluid), T, rho_max=0.95))


def test_free_interface_plateaus_equal_bulk_coexistence_and_tension_is_positive():
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    co = saturation(fluid, 0.8)
    slab = free_interface(fluid, co, box_length=40.0, settings=SolverSettings(tol=1e-10))
    # the bulk of this functional is exact at any dz, so what remains is the finite slab (exponential tails)
    assert slab.rho_vapour == pytest.approx(co.rho_vapour, rel=1e-3)
    assert slab.rho_liquid == pytest.approx(co.rho_liquid, rel=1e-3)
    assert slab.beta_mu == pytest.approx(co.beta_mu, abs=1e-6)
    assert slab.beta_gamma > 0.0
    # a wider box moves the plateaus closer to the bulk values: the residual is finite-size, not a bias
    wider = free_interface(fluid, co, box_length=60.0, settings=SolverSettings(tol=1e-10))
    assert abs(wider.rho_liquid - co.rho_liquid) < abs(slab.rho_liquid - co.rho_liquid)
    assert wider.beta_gamma == pytest.approx(slab.beta_gamma, rel=1e-3)


@pytest.mark.slow
def test_capillary_coexistence_shift_times_width_approaches_kelvin():
    fluid = SquareWellMeanField(dz=0.1, attraction_range=1.5)
    T = 0.85 * fluid.critical_temperature
    co = saturation(fluid, 0.85)
    wall = Wall(strength=1.0, sigma=1.0)
    solver = SolverSettings(tol=1e-9, max_iter=20000)
    widths = [8.0, 12.0, 16.0]
    # Kelvin reference: wall-tension difference gamma_wv - gamma_wl from the widest pore at saturation
    kelvin = kelvin_shift_times_width(wall_tension_difference(fluid, slit_potential(fluid.dz, fluid.interaction_range, wall, 16.0)[1], 16.0, T, co, settings=solver), co)
    assert kelvin > 0  # attractive walls: condensation below saturation
    deviations = []
    for H in widths:
        mus = co.beta_mu - kelvin / H + 0.8 * kelvin / H * np.linspace(-1, 1, 9)
        beta_V = slit_potential(fluid.dz, fluid.interaction_range, wall, H)[1]
        ads = pore_branch(fluid, beta_V, H, T, mus, None, settings=solver)
        rev = pore_branch(fluid, beta_V, H, T, mus[::-1], np.where(np.isfinite(beta_V), co.rho_liquid, 0.0), settings=solver)
        des = Branch(rev.beta_mu[::-1], rev.mean_density[::-1], rev.beta_omega[::-1])
        cc = capillary_coexistence(ads, des, H)
        assert cc.mean_density_gas < co.rho_liquid / 2 < cc.mean_density_liquid
        deviations.append(abs((co.beta_mu - cc.beta_mu) * H / kelvin - 1))
    print("relative deviation from Kelvin at H =", widths, ":", deviations)
    assert deviations[0] > deviations[1] > deviations[2]
    assert deviations[-1] < 0.25
