"""The published LJTS (2.5 sigma) coexistence: the transcribed correlations, and FeOs's PeTS, which was fitted to LJTS data, beside them."""

import numpy as np
import pytest

from liquidscale.fluids import ljts

# temperatures where both correlations and FeOs's PeTS are subcritical: 0.65-0.93 of Vrabec et al.'s Tc
TEMPERATURES = np.arange(0.70, 1.0001, 0.025)


def test_critical_points_are_those_printed_in_the_sources():
    assert ljts.critical_point() == (1.0779, 0.3190)  # Vrabec et al. 2006
    assert ljts.critical_point("thol2015") == (1.086, 0.319)


def test_the_binodal_closes_at_the_critical_point():
    Tc, rho_c = ljts.critical_point()
    T = Tc * (1 - 1e-9)
    assert ljts.rho_liquid(T) == pytest.approx(rho_c, abs=1e-3) and ljts.rho_vapour(T) == pytest.approx(rho_c, abs=1e-3)
    assert ljts.surface_tension(T) == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(ljts.rho_liquid(TEMPERATURES)) < 0) and np.all(np.diff(ljts.rho_vapour(TEMPERATURES)) > 0)
    assert np.all(np.diff(ljts.vapour_pressure(TEMPERATURES)) > 0) and np.all(np.diff(ljts.surface_tension(TEMPERATURES)) < 0)
    with pytest.raises(ValueError, match="0 < T < Tc"):
        ljts.coexistence(1.08)


def test_vrabec_2006_and_thol_2015_agree():
    """Two independent published fits of LJTS simulations: a transcription error would show as a gross miss.
    Measured: rho' 0.38 %, rho'' 2.6 %, p_sat 2.2 % at most over 0.70-1.00."""
    for T in TEMPERATURES:
        v, t = ljts.coexistence(T), ljts.thol2015_coexistence(T)
        assert t.rho_liquid == pytest.approx(v.rho_liquid, rel=0.005)
        assert t.rho_vapour == pytest.approx(v.rho_vapour, rel=0.03)
        assert t.p == pytest.approx(v.p, rel=0.03)


def test_feos_pets_reproduces_the_ljts_literature():
    """PeTS (Heier et al. 2018) was fitted to LJTS data. Measured over 0.70-1.00: rho' 0.22 %, rho'' 1.7 %,
    p_sat 0.53 %, gamma 2.7 % (1.3 % up to 0.95); Tc +1.03 %, rho_c -3.08 % (a fit's critical point each)."""
    pytest.importorskip("feos")
    from liquidscale.fluids.pets import PetsFluid

    fluid = PetsFluid()
    Tc, rho_c = ljts.critical_point()
    pets_Tc, pets_rho_c, _ = fluid.critical_point()
    assert pets_Tc == pytest.approx(Tc, rel=0.015) and pets_rho_c == pytest.approx(rho_c, rel=0.035)
    for T in TEMPERATURES:
        v, p = ljts.coexistence(T), fluid.coexistence(T)
        assert p.rho_liquid == pytest.approx(v.rho_liquid, rel=0.005)
        assert p.rho_vapour == pytest.approx(v.rho_vapour, rel=0.025)
        assert p.p == pytest.approx(v.p, rel=0.01)
        assert fluid.surface_tension(T).gamma == pytest.approx(ljts.surface_tension(T), rel=0.03)
