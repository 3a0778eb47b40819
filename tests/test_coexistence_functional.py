"""Verification rung 4's table (``liquidscale coexistence compare``): the functional's binodal beside direct slab
densities. Implementation checks: a "functional" that is Vrabec et al.'s LJTS binodal itself against slab rows at
Vrabec's densities (agreement by construction, so only the interpolation, the route choice and the bookkeeping are
tested), a slab 5 % off, a failed slab, a temperature above the binodal, a functional without a transition, and the
CLI's user error. The physics comparison is the campaign's own output (README, rung 4)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from liquidscale.cli import command_settings, main
from liquidscale.coexistence.functional import TABLE, compare
from liquidscale.config import validate_config
from liquidscale.fluids import ljts

TEMPERATURES = np.linspace(0.7, 1.05, 15)
NO_TRANSITION = "no liquid-vapour transition: no van der Waals loop inside the analysed density range"


def vrabec_binodal(interface_every: int = 2) -> pd.DataFrame:
    """A binodal table in analysis/binodal.csv's columns; the interface route solved at every other temperature and
    not above T = 1.0, as the analysis leaves gaps where a free slab did not converge."""
    table = pd.DataFrame({"T": TEMPERATURES, "rho_vapour": ljts.rho_vapour(TEMPERATURES), "rho_liquid": ljts.rho_liquid(TEMPERATURES),
                          "coverage": "inside"})
    solved = (np.arange(len(TEMPERATURES)) % interface_every == 0) & (TEMPERATURES <= 1.0)
    for phase in ("vapour", "liquid"):
        table[f"rho_{phase}_interface"] = np.where(solved, table[f"rho_{phase}"], np.nan)
    return table


def slab(T: float, scale: float = 1.0, status: str = "ok", reason: str = "") -> dict:
    ok = status == "ok"
    return {"T": T, "status": status, "reason": reason,
            "rho_vapour": scale * float(ljts.rho_vapour(T)) if ok else np.nan, "rho_vapour_stderr": 0.002 if ok else np.nan,
            "rho_liquid": scale * float(ljts.rho_liquid(T)) if ok else np.nan, "rho_liquid_stderr": 0.003 if ok else np.nan}


CRITICAL = pd.DataFrame({"status": ["found"], "reason": [np.nan]})


def test_agreeing_densities_are_compared_by_the_interface_route_between_its_temperatures():
    table = compare(vrabec_binodal(), CRITICAL, pd.DataFrame([slab(0.8), slab(0.9)]), tolerance=0.03)
    assert list(table["status"]) == ["compared"] * 4 and set(table["route"]) == {"interface"}
    # linear interpolation of Vrabec's curve between interface temperatures 0.05 apart: well inside 0.3 %
    assert np.abs(table["relative_difference"]).max() < 3e-3 and table["within_tolerance"].all()


def test_a_slab_five_percent_off_is_outside_three_percent_with_its_pull():
    table = compare(vrabec_binodal(), CRITICAL, pd.DataFrame([slab(0.8, scale=1.05)]), tolerance=0.03)
    assert not table["within_tolerance"].any()
    liquid = table[table["phase"] == "liquid"].iloc[0]
    assert liquid["relative_difference"] == pytest.approx(1 / 1.05 - 1, abs=3e-3)
    assert liquid["pull"] == pytest.approx((liquid["functional"] - liquid["direct"]) / 0.003)


def test_the_bulk_route_is_used_and_named_above_the_interface_routes_last_temperature():
    table = compare(vrabec_binodal(), CRITICAL, pd.DataFrame([slab(1.03)]), tolerance=0.03)
    assert set(table["route"]) == {"bulk"} and table["within_tolerance"].all()


def test_rows_without_both_sides_keep_their_reason():
    direct = pd.DataFrame([slab(0.8, status="failed", reason="dissociated molecule"), slab(1.06)])
    table = compare(vrabec_binodal(), CRITICAL, direct, tolerance=0.03)
    assert list(table["status"]) == ["missing"] * 4 and table["functional"].isna().all()
    assert table["reason"].iloc[0] == "direct MD: failed (dissociated molecule)"
    assert table["reason"].iloc[2].startswith("outside the functional's binodal (T 0.7 to 1.05)")
    empty = vrabec_binodal().iloc[:0]
    table = compare(empty, pd.DataFrame({"status": ["not found"], "reason": [NO_TRANSITION]}), pd.DataFrame([slab(0.8)]), tolerance=0.03)
    assert (table["reason"] == f"the functional has no binodal: {NO_TRANSITION}").all()
    assert table["direct"].notna().all()  # the direct densities stay in the table


def test_cli_writes_the_table_and_the_figure_and_names_a_missing_input(tmp_path, capsys):
    analysis, coexistence = tmp_path / "analysis", tmp_path / "coexistence"
    analysis.mkdir()
    coexistence.mkdir()
    vrabec_binodal().to_csv(analysis / "binodal.csv", index=False)
    CRITICAL.to_csv(analysis / "critical_point.csv", index=False)
    (analysis / "summary.json").write_text(json.dumps({"system": "lj", "units": {"length_unit": "sigma", "energy_unit": "epsilon", "dimension": 3}}))
    pd.DataFrame([slab(0.9)]).to_csv(coexistence / "coexistence.csv", index=False)
    settings = json.dumps(command_settings(validate_config({"systems": ["lj"]}), "lj", "coexistence", "compare"))
    args = ["coexistence", "compare", "--settings", settings, "--analysis", str(analysis), "--coexistence", str(coexistence), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert "2 of 2 densities within 3%" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "out" / TABLE)) == 2 and (tmp_path / "out" / "functional_vs_direct.png").stat().st_size > 0
    (coexistence / "coexistence.csv").unlink()
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "coexistence.csv: not found; run `snakemake coexistence`" in err and "Traceback" not in err


def test_a_new_tolerance_reruns_the_comparison_and_no_slab():
    """Implementation check of the rules' params: the tolerance is in compare's settings only."""
    default, looser = (validate_config({"systems": ["lj"], "coexistence": coexistence}) for coexistence in ({}, {"functional_tolerance": 0.05}))
    assert command_settings(default, "lj", "coexistence", "run") == command_settings(looser, "lj", "coexistence", "run")
    assert command_settings(looser, "lj", "coexistence", "compare")["coexistence"] == {"functional_tolerance": 0.05}
