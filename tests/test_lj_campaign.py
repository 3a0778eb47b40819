"""Verification rung 3 in `make test` (issue: LJ from simulation to phase diagram): the reduced LJTS campaign that
`make demo` runs (config/lj.yaml + config/lj_demo.yaml) — LAMMPS runs in random potentials with exchange moves and
Widom anchors, the neural functional trained with mu fitted, the analysis — must find a liquid-vapour transition
whose critical temperature is within 10 % of the published LJTS 2.5 sigma value (Vrabec et al. 2006). Only the
analysis is thinned here (fewer isotherms and pores; it does not change the functional). The full-size numbers
come from `snakemake --configfile config/lj.yaml` (README, rung 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import run_campaign

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.workflow]

# The bound for this test. Measured on this campaign (its seed 20261202; with seed 7 in brackets): Tc +5.0 %
# (+4.3 %), rho_c -11.7 % (+3.0 %), liquid density within 3.5 % (4.3 %) for T <= 0.95 Tc (interface route), vapour
# -25 % (-12 %), surface tension at 0.85 Tc +37 % (+28 %; the one-pressure estimator it replaced: +315 %, -134 %).
TC_BOUND = 0.10
# About twice the measured ones; the vapour and rho_c are reported (README), not bounded here.
RHO_LIQUID_BOUND = 0.08
GAMMA_BOUND = 0.75
# Line-integrated F_exc along two paths differs by <= 0.25 % of dF for the profiles below (measured); the
# functional is not built to satisfy it (c1 is a network output, not a derivative).
PATH_BOUND = 1e-2

THINNER_ANALYSIS = {
    "analysis": {"isotherms": 12, "binodal_points": 8, "widom": {"isotherms": 2, "isobar_temperatures": 10},
                 "poles": {"densities": 8}, "fisher_widom": {"temperatures": 2}, "pores": {"widths": [8.0], "chemical_potentials": 3}},
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lj_campaign")
    run_campaign(workdir, [ROOT / "config" / "lj.yaml", ROOT / "config" / "lj_demo.yaml"], THINNER_ANALYSIS, cores=2, timeout=2400,
                 targets=("results/lj/analysis/reference.csv",))
    return workdir


def _compared(table: pd.DataFrame, quantity: str, share: float = 1.0) -> pd.DataFrame:
    """The rows of ``quantity`` compared with the literature; at least ``share`` of them must be (the others say why
    not, e.g. a free slab the functional did not converge at the lowest binodal temperature)."""
    rows = table[table["quantity"] == quantity]
    compared = rows[rows["status"] == "compared"]
    assert len(rows) and len(compared) >= share * len(rows), f"{quantity}: {rows['reason'].tolist()}"
    return compared


def test_reduced_lj_functional_has_published_critical_temperature_and_surface_tension(campaign):
    table = pd.read_csv(campaign / "results" / "lj" / "analysis" / "reference.csv")
    assert abs(_compared(table, "Tc")["relative_difference"].iloc[0]) < TC_BOUND
    # interface route, T <= 0.95 Tc; measured: the slab at the lowest of 8 binodal temperatures (0.77) did not converge
    assert _compared(table, "rho_liquid", share=0.5)["relative_difference"].abs().max() < RHO_LIQUID_BOUND
    assert abs(_compared(table, "surface_tension")["relative_difference"].iloc[0]) < GAMMA_BOUND


def test_reduced_lj_functional_free_energy_is_path_independent(campaign):
    """F_exc from c1 by line integration along a straight path and along scaling paths from zero agree: c1 is
    (close to) a functional derivative, so grand potentials and surface tensions are defined."""
    from liquidscale.cdft.model import load_model
    from liquidscale.cdft.sum_rules import path_independence

    model, _ = load_model(campaign / "results" / "lj" / "cdft")
    z = (np.arange(280) + 0.5) * 0.1
    rho_a, rho_b = 0.3 + 0.1 * np.cos(2 * np.pi * z / 28.0), 0.6 + 0.2 * np.cos(4 * np.pi * z / 28.0)
    for T in (0.8, 1.0, 1.3):
        straight, scaling = path_independence(model, rho_a, rho_b, T)
        assert abs(straight - scaling) < PATH_BOUND * abs(straight), (T, straight, scaling)
