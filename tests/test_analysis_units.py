"""Laboratory units and the experimental comparison table (water, CO2). Budget: < 1 s."""

import numpy as np
import pandas as pd
import pytest

from liquidscale.analysis import pipeline
from liquidscale.analysis.bulk import Coexistence, CriticalPoint, PhaseDiagram
from liquidscale.analysis.coverage import analysis_range
from liquidscale.analysis.figures import FIGURES, make_figures
from liquidscale.analysis.units import experimental_critical_point, experimental_saturation, kg_per_m3, megapascal

K_B_EV = 8.617333262e-5


def test_conversions_to_laboratory_units():
    assert kg_per_m3(0.033428, "water") == pytest.approx(1000.0, rel=1e-3)  # liquid water, 33.43 molecules/nm^3
    assert kg_per_m3(0.016127, "co2") == pytest.approx(1178.53, rel=1e-3)  # first row of the Span-Wagner table
    assert megapascal(1.0) == pytest.approx(160217.6634)


def test_reference_tables_keep_their_header_and_agree_with_themselves():
    for system, (Tc, pc) in {"water": (647.096, 22.064), "co2": (304.1282, 7.3773)}.items():
        table, header = experimental_saturation(system)
        crit = experimental_critical_point(header)
        assert crit["Tc"] == Tc and crit["pc"] == pc
        np.testing.assert_allclose(kg_per_m3(table["rho_liquid_nm3"] * 1e-3, system), table["rho_liquid_kg_m3"], rtol=2e-3)


def test_experiment_table_tabulates_model_minus_experiment(tmp_path):
    # a made-up water binodal: liquid 0.0330 Å^-3 from 300 K to 500 K, critical point at 600 K
    binodal = [Coexistence(T, 1e-6, 0.0330, -10.0, 1e-7, 0.001, 0.02) for T in (300.0, 400.0, 500.0)]
    diagram = PhaseDiagram([], binodal, CriticalPoint(600.0, 0.0100, 0.01 / (K_B_EV * 600.0) * 1e-3), "")
    domain = analysis_range({"system": "water", "architecture": {"temperature_range": [300.0, 600.0]}}, {"water": 0.05}, {})
    pipeline.write_binodal(tmp_path, "water", diagram, K_B_EV, domain)
    critical = pd.read_csv(tmp_path / "critical_point.csv")
    assert critical["status"].iloc[0] == "found" and critical["T"].iloc[0] == 600.0 and critical["coverage"].iloc[0] == "coverage unknown"
    pipeline.experiment(tmp_path, "water", diagram, K_B_EV)
    table = pd.read_csv(tmp_path / "experiment.csv").set_index("quantity")
    assert table.loc["Tc", "difference"] == pytest.approx(600.0 - 647.096)
    assert table.loc["rho_c", "model"] == pytest.approx(kg_per_m3(0.0100, "water"))
    liquid = table.loc["rho_liquid"]
    assert set(liquid["T_K"]) == {300.0, 325.0, 350.0, 373.124, 400.0, 425.0, 450.0, 475.0, 500.0}
    np.testing.assert_allclose(liquid["model"], kg_per_m3(0.0330, "water"))
    binodal_csv = pd.read_csv(tmp_path / "binodal.csv")
    assert {"rho_liquid_kg_m3", "p_MPa"} <= set(binodal_csv.columns)
    assert pd.read_csv(tmp_path / "critical_point.csv")["p_MPa"].iloc[0] == pytest.approx(megapascal(1e-5))
    make_figures(tmp_path, "water", {"length_unit": "Å", "energy_unit": "eV", "temperature_unit": "K", "dimension": 3})
    assert all((tmp_path / f"{name}.svg").is_file() for name in FIGURES)
