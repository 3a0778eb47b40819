"""The whole analysis of one functional: exact hard rods (no transition to invent) and a rough
untrained neural functional through the CLI (every part ends in a result or a stated reason).

Budget: about 60 s on one core.
"""

import json

import numpy as np
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


def test_hard_rods_analysis_reports_no_transition_and_writes_every_table(tmp_path):
    metadata = {**HARD_ROD_UNITS, "architecture": {"temperature_range": [1.0, 1.0]}}
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
    config = validate_config({"systems": ["hard_rods"], "analysis": {"isotherms": 4, "binodal_points": 4, "pores": {"widths": [6.0]}}})
    settings = json.dumps(stage_settings(config, "hard_rods", "analysis"))
    out = tmp_path / "analysis"
    assert main(["analysis", "run", "--settings", settings, "--model", str(tmp_path / "cdft"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["config_hash"]
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
