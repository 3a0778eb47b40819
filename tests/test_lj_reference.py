"""Implementation check of the lj comparison with the LJTS literature on hand-made analysis folders (no
trained LJ functional needed): known relative differences, targets, the FeOs PeTS column, missing rows."""

import json

import numpy as np
import pandas as pd
import pytest

from liquidscale.analysis.lj_reference import COLUMNS, reference_comparison, write_reference_comparison
from liquidscale.fluids import ljts


def _analysis_folder(path):
    Tc, rho_c = ljts.critical_point()
    lit = ljts.coexistence(0.8)
    pd.DataFrame([{"status": "found", "reason": "", "T": 1.01 * Tc, "rho": 0.96 * rho_c, "beta_p": 0.1, "p": 0.1}]).to_csv(path / "critical_point.csv", index=False)
    pd.DataFrame([{"T": 0.8, "rho_vapour": 1.12 * lit.rho_vapour, "rho_liquid": 1.01 * lit.rho_liquid, "beta_mu": -3.0, "beta_p": 0.02, "p": 0.9 * lit.p,
                   "rho_vapour_interface": 1.08 * lit.rho_vapour, "rho_liquid_interface": 0.97 * lit.rho_liquid, "p_interface": 1.2 * lit.p},
                  {"T": 1.03, "rho_vapour": 0.2, "rho_liquid": 0.4, "beta_mu": -3.0, "beta_p": 0.1, "p": 0.1,
                   "rho_vapour_interface": np.nan, "rho_liquid_interface": np.nan, "p_interface": np.nan}]).to_csv(path / "binodal.csv", index=False)
    pd.DataFrame([{"status": "found", "reason": "", "T": 0.85, "gamma": 0.95 * ljts.surface_tension(0.85), "beta_gamma": 0.3}]).to_csv(path / "interface.csv", index=False)
    pd.DataFrame([{"definition": "S(0) isotherm", "T": 1.2, "rho": 0.25, "beta_p": 0.1, "p": 0.1, "value": 3.0},
                  {"definition": "chi_T isobar", "T": 1.15, "rho": 0.25, "beta_p": 0.1, "p": 0.12, "value": 3.0},
                  {"definition": "xi isotherm", "T": 1.2, "rho": 0.25, "beta_p": 0.1, "p": 0.1, "value": 3.0}]).to_csv(path / "widom.csv", index=False)
    pd.DataFrame([{"status": "found", "reason": "", "T": 1.0, "rho": 0.5, "beta_p": 0.1, "p": 0.1},
                  {"status": "not found", "reason": "no crossover", "T": 1.4, "rho": np.nan, "beta_p": np.nan, "p": np.nan}]).to_csv(path / "fisher_widom.csv", index=False)


def _by_quantity(rows):
    return {r["quantity"]: r for r in rows}


def test_lj_comparison_rows_against_the_literature(tmp_path):
    """Without FeOs: every literature row, its target and verdict; the feos_pets column empty."""
    _analysis_folder(tmp_path)
    rows = reference_comparison(tmp_path, pets=None)
    q = _by_quantity(rows)
    assert q["Tc"]["relative_difference"] == pytest.approx(0.01) and q["Tc"]["within_target"] is True
    assert q["rho_c"]["relative_difference"] == pytest.approx(-0.04) and q["rho_c"]["within_target"] is False
    assert q["rho_vapour"]["relative_difference"] == pytest.approx(0.08) and q["rho_vapour"]["within_target"] is True  # 10 % bound
    assert q["rho_liquid"]["relative_difference"] == pytest.approx(-0.03) and q["rho_liquid"]["within_target"] is False  # 2 % bound
    assert q["vapour_pressure"]["relative_difference"] == pytest.approx(0.2) and q["vapour_pressure"]["within_target"] is None  # no target
    assert q["rho_vapour_bulk"]["within_target"] is False and q["rho_liquid_bulk"]["within_target"] is True
    assert q["vapour_pressure_bulk"]["relative_difference"] == pytest.approx(-0.1)
    assert all(r["T"] == 0.8 for r in rows if r["quantity"].startswith(("rho_vapour", "rho_liquid", "vapour_pressure")))  # 1.03 > 0.95 Tc
    assert q["surface_tension"]["relative_difference"] == pytest.approx(-0.05) and q["surface_tension"]["within_target"] is True
    assert q["widom_S0_isotherm_rho"]["status"] == "no reference" and "no published Widom line" in q["widom_S0_isotherm_rho"]["reason"]
    assert "widom_xi" not in " ".join(q)  # the xi line has no counterpart
    fw = [r for r in rows if r["quantity"] == "fisher_widom_rho"]
    assert len(fw) == 1 and fw[0]["functional"] == 0.5 and fw[0]["status"] == "no reference"
    assert all(np.isnan(r["feos_pets"]) for r in rows)
    assert {r["target"] for r in rows if r["quantity"] == "rho_liquid"} == {"|relative difference| <= 0.02"}


def test_lj_comparison_with_feos_pets_as_second_reference(tmp_path):
    pytest.importorskip("feos")
    from liquidscale.fluids.pets import PetsFluid

    fluid = PetsFluid()
    _analysis_folder(tmp_path)
    rows = write_reference_comparison(tmp_path, tmp_path / "out", fluid)
    q = _by_quantity(rows)
    co = fluid.coexistence(0.8)
    assert q["rho_liquid"]["feos_pets"] == pytest.approx(co.rho_liquid)
    assert q["rho_liquid"]["relative_difference_feos_pets"] == pytest.approx(0.97 * ljts.rho_liquid(0.8) / co.rho_liquid - 1)
    assert q["Tc"]["feos_pets"] == pytest.approx(fluid.critical_point()[0])
    assert q["surface_tension"]["feos_pets"] == pytest.approx(fluid.surface_tension(0.85).gamma)
    widom = q["widom_S0_isotherm_rho"]
    assert widom["status"] == "no literature value" and np.isnan(widom["literature"]) and np.isfinite(widom["feos_pets"])
    assert widom["within_target"] is None
    table = pd.read_csv(tmp_path / "out" / "reference.csv")
    assert list(table.columns) == COLUMNS and len(table) == len(rows)
    assert (tmp_path / "out" / "reference.png").is_file() and (tmp_path / "out" / "reference.svg").is_file()


def test_lj_comparison_of_an_empty_folder_is_all_missing(tmp_path):
    rows = reference_comparison(tmp_path, pets=None)
    assert rows and all(r["status"] == "missing" and "not found" in r["reason"] for r in rows)
    (tmp_path / "summary.json").write_text(json.dumps({"supercritical": {"reason": "no critical point: test"}}))
    assert _by_quantity(reference_comparison(tmp_path, pets=None))["widom_S0_isotherm_rho"]["reason"] == "no critical point: test"
