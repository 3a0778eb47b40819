"""The whole analysis of one functional: exact hard rods (no transition to invent) and a rough
untrained neural functional through the CLI (every part ends in a result or a stated reason).

Budget: about 60 s on one core.
"""

import json

import numpy as np
import pytest
import pandas as pd
import torch

from liquidscale.analysis.figures import FIGURES
from liquidscale.analysis.run import AnalysisSettings, run_analysis
from liquidscale.fluids.hard_rods import PercusHardRods
from liquidscale.cdft.solver import SolverSettings, solve
from liquidscale.cli import main
from liquidscale.config import stage_settings, validate_config
from liquidscale.dataset import make_profile_dataset
from liquidscale.external import random_potential

torch.set_num_threads(1)

HARD_ROD_UNITS = {"system": "hard_rods", "k_B": 1.0, "length_unit": "sigma", "energy_unit": "kT", "temperature_unit": "", "dimension": 1}


def exact_hard_rod_profiles(functional, length: float = 8.0, runs: int = 3):
    """A profile dataset of exact Percus solutions in seeded random potentials, all in the test split."""
    n = round(length / functional.dz)
    z = (np.arange(n) + 0.5) * functional.dz
    rho, V = [], []
    for run in range(runs):
        beta_V = random_potential((7, run), length).beta_v(z)
        rho.append(solve(functional, beta_V, 1.0, mu=0.5 * run - 0.5, settings=SolverSettings(tol=1e-12)).rho)
        V.append(beta_V)
    return make_profile_dataset(
        z, np.array(rho), np.array(V), np.ones(runs), np.full(runs, np.nan), np.array(rho).sum(1) * functional.dz, np.full(runs, 2),
        system="hard_rods", site="rod", dimension=1, length_unit="sigma", energy_unit="kT", temperature_unit="", k_B=1.0, provenance={},
    )


def one_band_coverage(T: float, density_max: float, density_peak: float) -> dict:
    """model.json's coverage of a one-temperature functional, as training writes it."""
    return {"temperature_range": [T, T], "density_unit": "sigma^-1",
            "temperature_bands": [{"T_low": T, "T_high": T, "runs": 3, "density_max": density_max, "density_peak": density_peak}]}


def test_hard_rods_analysis_reports_no_transition_and_writes_every_table(tmp_path):
    metadata = {**HARD_ROD_UNITS, "architecture": {"temperature_range": [1.0, 1.0]}, "coverage": one_band_coverage(1.0, 0.9, 0.95)}
    settings = AnalysisSettings.from_config(validate_config({"systems": ["hard_rods"]})["analysis"])
    functional = PercusHardRods(dz=0.02)
    summary = run_analysis(functional, metadata, settings, tmp_path, {"test": True}, exact_hard_rod_profiles(functional))
    assert summary["bulk"]["critical_point"] is None
    assert summary["bulk"]["reason"].startswith("no liquid-vapour transition")
    critical = pd.read_csv(tmp_path / "critical_point.csv")
    assert critical["status"].iloc[0] == "not found" and "no liquid-vapour transition" in critical["reason"].iloc[0]
    assert pd.read_csv(tmp_path / "binodal.csv").empty
    assert pd.read_csv(tmp_path / "pores.csv")["status"].iloc[0] == "not found"
    for name in FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 0 and (tmp_path / f"{name}.svg").is_file()
    import xarray as xr

    with xr.open_dataset(tmp_path / "eos.nc") as eos:
        rho = eos["rho"].values
        np.testing.assert_allclose(eos["beta_p"].values[0], rho / (1 - rho), rtol=1e-9)  # Tonks
        assert eos["p"].attrs["units"] and eos["p"].attrs["long_name"]
    # the exact functional re-solved canonically in each run's potential reproduces the run's profile
    assert summary["profiles"]["solved"] == 3
    with xr.open_dataset(tmp_path / "profiles.nc") as profiles:
        assert np.max(np.abs(profiles["rho_functional"] - profiles["rho_simulated"])) < 1e-6


def test_cli_on_an_untrained_neural_functional_finishes_with_reasons(tmp_path):
    from liquidscale.cdft.model import NeuralC1, save_model

    torch.manual_seed(0)
    model = NeuralC1(0.05, 1.0, [8, 8], 1.0, [0.8, 1.2])  # dz, window, layer widths, density scale, T range
    save_model(model, {**HARD_ROD_UNITS, "training_data_hash": "none"}, tmp_path / "cdft")
    config = validate_config({"systems": ["hard_rods"], "analysis": {"isotherms": 4, "binodal_points": 4, "pores": {"widths": [6.0]},
                                                                     "density_max": {"hard_rods": 0.9}}})
    settings = json.dumps(stage_settings(config, "hard_rods", "analysis"))
    out = tmp_path / "analysis"
    assert main(["analysis", "run", "--settings", settings, "--model", str(tmp_path / "cdft"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["config_hash"]
    # a model.json without coverage (older models): the config's density_max is used, and every table says so
    assert summary["coverage"]["status"] == "coverage unknown" and summary["density_max"] == 0.9
    assert pd.read_csv(out / "critical_point.csv")["coverage"].iloc[0] == "coverage unknown"
    # whatever the random network implies, each part either has a result or says why not
    if summary["bulk"]["critical_point"] is None:
        assert summary["bulk"]["reason"]
    for part in ("interface", "pores"):
        assert summary[part].get("reason") or summary[part].get("T") is not None
    assert main(["analysis", "run", "--settings", settings, "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_cli_rejects_a_functional_of_another_system(tmp_path):
    from liquidscale.cdft.model import NeuralC1, save_model

    save_model(NeuralC1(0.05, 1.0, [4], 1.0, [1.0, 1.0]), {**HARD_ROD_UNITS, "system": "lj"}, tmp_path / "cdft")
    settings = json.dumps(stage_settings(validate_config({"systems": ["hard_rods"]}), "hard_rods", "analysis"))
    assert main(["analysis", "run", "--settings", settings, "--model", str(tmp_path / "cdft"), "--out", str(tmp_path / "a")]) == 2


def test_example_solutions_denser_than_the_training_data_are_flagged(tmp_path):
    """A solution whose peak exceeds the functional's training_density_max is marked, in the summary and profiles.nc."""
    import xarray as xr

    from liquidscale.analysis.pipeline import example_profiles

    functional = PercusHardRods(dz=0.02)
    ds = exact_hard_rod_profiles(functional)
    peaks = np.sort(ds["rho"].values.max(axis=1))
    threshold = 0.5 * (peaks[0] + peaks[1])  # between the lowest peak and the others
    settings = AnalysisSettings.from_config(validate_config({"systems": ["hard_rods"]})["analysis"])
    result = example_profiles(functional, ds, settings, tmp_path, 1.0, 1.0, threshold)
    with xr.open_dataset(tmp_path / "profiles.nc") as profiles:
        flagged = profiles["run"].values[profiles["beyond_training_density"].values]
        expected = profiles["run"].values[profiles["rho_functional"].values.max(axis=1) > threshold]
    assert len(expected) == 2 and list(flagged) == list(expected) == result["beyond_training_density"]
    assert example_profiles(functional, ds, settings, tmp_path, 1.0, 1.0, np.inf)["beyond_training_density"] == []


SQUARE_WELL_BANDS = [{"T_low": 0.25, "T_high": 0.4, "runs": 40, "density_max": 0.93, "density_peak": 1.0},
                     {"T_low": 0.4, "T_high": 0.6, "runs": 40, "density_max": 0.9, "density_peak": 1.0}]


def square_well_analysis(tmp_path, bands, analysis=None, functional=None):
    """run_analysis of the exact square-well fluid (Tc = 4/9; or ``functional``) whose model.json claims a wider architecture
    range than its coverage."""
    from liquidscale.fluids.square_well import SquareWellMeanField

    coverage = {"temperature_range": [bands[0]["T_low"], bands[-1]["T_high"]], "temperature_bands": bands, "density_unit": "sigma^-1"}
    metadata = {**HARD_ROD_UNITS, "architecture": {"temperature_range": [0.25, 0.6]}, "coverage": coverage}
    section = {"isotherms": 8, "binodal_points": 12, "eos_densities": 40, "widom": {"isotherms": 3, "isobar_temperatures": 8},
               "poles": {"densities": 6}, "fisher_widom": {"temperatures": 2}, "pores": {"widths": [6.0], "chemical_potentials": 3},
               **(analysis or {})}
    settings = AnalysisSettings.from_config(validate_config({"systems": ["hard_rods"], "analysis": section})["analysis"])
    return run_analysis(functional or SquareWellMeanField(dz=0.1, attraction_range=1.5), metadata, settings, tmp_path, {"test": True})


INTERFACE_ROUTE_TOLERANCE = 1e-2


def test_square_well_analysis_inside_a_narrower_coverage_keeps_the_exact_critical_point(tmp_path):
    """The config asks for density_max 0.95 and T up to 0.7: both are clipped to the coverage (0.93/0.9, T <= 0.6),
    said in summary.json and in the tables; the exact Tc = 8 eps range / 27 sigma and rho_c = 1/3 remain."""
    import xarray as xr

    summary = square_well_analysis(tmp_path, SQUARE_WELL_BANDS, {"density_max": {"hard_rods": 0.95}, "temperature_range": {"hard_rods": [0.2, 0.7]}})
    clipped = " ".join(summary["coverage"]["clipped"])
    assert summary["coverage"]["status"] == "from model.json" and "analysis.density_max.hard_rods" in clipped and "temperature_range" in clipped
    assert summary["temperature_range"] == [0.25, 0.6]
    critical = pd.read_csv(tmp_path / "critical_point.csv")
    assert critical["status"].iloc[0] == "found" and critical["coverage"].iloc[0] == "inside"
    assert critical["T"].iloc[0] == pytest.approx(8 * 1.5 / 27, rel=1e-6) and critical["rho"].iloc[0] == pytest.approx(1 / 3, rel=1e-4)
    binodal = pd.read_csv(tmp_path / "binodal.csv")
    assert len(binodal) == 12 and (binodal["coverage"] == "inside").all()
    band_max = np.where(binodal["T"] < 0.4, 0.93, 0.9)
    assert (binodal["density_max"] <= band_max + 1e-12).all() and (binodal["rho_liquid"] < binodal["density_max"]).all()
    with xr.open_dataset(tmp_path / "eos.nc") as eos:
        rho, limit = eos["rho"].values, eos["density_max"].values
        assert limit.max() == pytest.approx(0.93) and limit[-1] == pytest.approx(0.9)
        beyond = rho[None, :] > limit[:, None] * (1 + 1e-12)
        assert beyond.any() and np.isnan(eos["beta_p"].values[beyond]).all() and not eos["covered"].values[beyond].any()
        assert np.isfinite(eos["beta_p"].values[~beyond]).all()
    widom = pd.read_csv(tmp_path / "widom.csv")
    assert (widom["T"] <= 0.6).all() and (widom["coverage"] == "inside").all()
    refused = summary["supercritical"]["refused_beyond_analysed_temperatures"]
    assert refused["widom_isotherms"] and min(refused["widom_isotherms"]) > 0.6  # 1.4 Tc = 0.62 is past the coverage
    for table in ("interface.csv", "pores.csv", "fisher_widom.csv"):
        assert "coverage" in pd.read_csv(tmp_path / table)
    # the second coexistence route: free interfaces solved at every binodal T up to 0.95 Tc, their plateaus equal the
    # exact bulk coexistence up to the finite box (36 sigma, half liquid; measured: vapour <= 1.5e-3 up to 0.9 Tc and 4.9e-3
    # at 0.92 Tc, where the mean-field interface is wide; liquid <= 3.7e-3, at 0.63 Tc), none above 0.95 Tc
    Tc = 8 * 1.5 / 27
    solved = binodal["T"] <= 0.95 * Tc
    assert solved.any() and binodal.loc[solved, "rho_vapour_interface"].notna().all() and binodal.loc[~solved, "rho_vapour_interface"].isna().all()
    for route, bulk in (("rho_vapour_interface", "rho_vapour"), ("rho_liquid_interface", "rho_liquid")):
        gap = (binodal.loc[solved, route] / binodal.loc[solved, bulk] - 1).abs()
        assert gap.max() < INTERFACE_ROUTE_TOLERANCE


class _Module(torch.nn.Module):
    """An exact functional as a torch module, as an ensemble holds its networks."""

    def __init__(self, functional):
        super().__init__()
        self.functional, self.dz, self.interaction_range = functional, functional.dz, functional.interaction_range

    def c1(self, rho, T):
        return self.functional.c1(rho, T)


def test_ensemble_of_square_wells_has_the_mean_attractions_critical_point_and_each_networks(tmp_path):
    """Mean-field square wells: Tc = 8 epsilon lambda / 27 depends on the attraction only through its integral, so the mean
    c1 of wells of range 1.5, 1.4 and 0.3 has Tc = 8 x mean(lambda) / 27 exactly; the analysis also locates each network's
    critical point (0.444, 0.415; the third's, 0.089, lies below the analysed temperatures and is reported as missing)."""
    from liquidscale.cdft.model import EnsembleC1
    from liquidscale.fluids.square_well import SquareWellMeanField

    ranges = (1.5, 1.4, 0.3)
    ensemble = EnsembleC1([_Module(SquareWellMeanField(dz=0.1, attraction_range=a)) for a in ranges])
    summary = square_well_analysis(tmp_path, SQUARE_WELL_BANDS, functional=ensemble)
    critical = pd.read_csv(tmp_path / "critical_point.csv").iloc[0]
    assert critical["status"] == "found" and critical["T"] == pytest.approx(8 * np.mean(ranges) / 27, rel=1e-6)
    networks = summary["bulk"]["critical_point_of_each_network"]
    assert [n["T"] for n in networks[:2]] == pytest.approx([8 * 1.5 / 27, 8 * 1.4 / 27], rel=1e-6)
    assert "T" not in networks[2] and "no liquid-vapour transition" in networks[2]["reason"]
    assert critical["networks"] == 3 and critical["networks_with_critical_point"] == 2
    assert critical["T_network_std"] == pytest.approx(8 * 0.1 / 27 / np.sqrt(2), rel=1e-5)


def test_square_well_analysis_with_coverage_below_tc_reports_no_critical_point(tmp_path):
    """Covered only up to T = 0.4 < Tc = 0.444 (the architecture says 0.6): the loop persists at the top covered T,
    so critical_point.csv says 'not found' and why, and nothing supercritical is computed."""
    summary = square_well_analysis(tmp_path, SQUARE_WELL_BANDS[:1])
    critical = pd.read_csv(tmp_path / "critical_point.csv")
    assert critical["status"].iloc[0] == "not found" and np.isnan(critical["T"].iloc[0])
    assert "critical point above the analysed (covered) temperatures" in critical["reason"].iloc[0]
    assert summary["temperature_range"] == [0.25, 0.4] and summary["bulk"]["status"] == "not found"
    assert pd.read_csv(tmp_path / "widom.csv").empty and not pd.read_csv(tmp_path / "binodal.csv").empty
