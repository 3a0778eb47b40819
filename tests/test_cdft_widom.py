"""Widom anchors of the fitted chemical potential: noisy multi-T square-well profiles with mu hidden, synthetic
Widom values (the exact beta mu plus noise of a stated stderr) on about a third of the runs."""

import numpy as np
import pytest
import torch

from liquidscale import dataset as pds
from liquidscale.cdft import train as train_module
from liquidscale.cdft.model import load_model
from liquidscale.cdft.train import TrainingSettings, fitted_beta_mu, prepare_runs, train_functional
from liquidscale.fluids.hard_rods import hard_rod_dataset
from liquidscale.fluids.square_well import square_well_dataset

torch.set_num_threads(1)

SQUARE_WELL = {"box_length": 10.0, "dz": 0.1, "runs": 40, "potential_cap": 0.6, "hard_walls": False, "epsilon": 1.0,
               "attraction_range": 1.5, "temperature_range": [0.35, 0.65], "density_range": [0.02, 0.7]}
SETTINGS = TrainingSettings(window=1.5, channels=(8, 8), max_epochs=15, patience=10, use_known_mu=False)
WIDOM_SHARE, WIDOM_STDERR = 0.35, 0.02
SHIFT = 0.2


def with_noise_and_widom(ds, seed: int, share: float = WIDOM_SHARE, stderr: float = WIDOM_STDERR):
    """Histogram-like noise on rho (stderr recorded) and Widom values = exact beta mu + N(0, stderr^2) on ``share`` of the runs."""
    rng = np.random.default_rng(seed)
    rho = ds[pds.RHO].values
    rho_stderr = np.sqrt(2e-3 * rho) + 1e-3
    measured = rng.random(ds.sizes[pds.RUN]) < share
    exact = ds[pds.MU].values / ds[pds.TEMPERATURE].values
    return ds.assign({
        pds.RHO: ds[pds.RHO].copy(data=rho + rho_stderr * rng.standard_normal(rho.shape)),
        pds.RHO_STDERR: ds[pds.RHO].copy(data=rho_stderr),
        pds.BETA_MU_WIDOM: ((pds.RUN,), np.where(measured, exact + stderr * rng.standard_normal(len(exact)), np.nan)),
        pds.BETA_MU_WIDOM_STDERR: ((pds.RUN,), np.where(measured, stderr, np.nan)),
    })


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    """Anchored, unanchored, and anchored with the test runs' Widom values shifted by SHIFT; the held-out
    canonical solves (most of a training's time here, and not what is tested) are skipped."""
    ds = with_noise_and_widom(square_well_dataset(SQUARE_WELL, [0.6, 0.2, 0.2], seed=21, provenance={}), seed=1)
    test_runs = ds[pds.SPLIT].values == pds.SPLIT_TEST
    shifted = ds.assign({pds.BETA_MU_WIDOM: ds[pds.BETA_MU_WIDOM] + np.where(test_runs, SHIFT, 0.0)})
    unanchored = TrainingSettings(**{**SETTINGS.__dict__, "widom_anchor": False})
    cases = {"anchored": (ds, SETTINGS), "unanchored": (ds, unanchored), "shifted": (shifted, SETTINGS)}
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "_solve_like", lambda model, runs, k, *args: {"run": int(runs.run[k]), "failure": "not solved in this test"})
        for name, (data, settings) in cases.items():
            folder = tmp_path_factory.mktemp(name)
            metrics = train_functional(data, settings, seed=21, out_dir=folder, provenance={})
            out[name] = {"metrics": metrics, "model": load_model(folder)[0]}
    out["ds"] = ds
    return out


def errors_without_widom(ds, model) -> torch.Tensor:
    """Profile-fitted minus exact beta mu on the runs of all splits without a Widom value."""
    errors = []
    for split in ("train", "val", "test"):
        runs = prepare_runs(ds, split, SETTINGS)
        free = ~torch.isfinite(runs.beta_mu_widom)
        errors.append((fitted_beta_mu(model, runs, anchored=False) - runs.beta_mu_known)[free])
    return torch.cat(errors)


def test_widom_anchors_pin_the_mu_of_the_runs_without_widom(trainings):
    """Unanchored, the gauge c1[0] = 0 alone leaves a common offset on every fitted mu; 14 anchors remove it. Measured
    on the 26 runs without a Widom value, median |error| (median error) anchored vs unanchored: 0.093 (-0.087) vs 0.173
    (-0.182) here (noise seed 1); seeds 2-5: 0.092 vs 0.421, 0.052 vs 0.290, 0.128 vs 0.231 (8 anchors), 0.075 vs 0.409."""
    ds = trainings["ds"]
    anchored, unanchored = (errors_without_widom(ds, trainings[name]["model"]) for name in ("anchored", "unanchored"))
    print(f"runs without Widom: median |fitted - exact beta mu| anchored {anchored.abs().median():.3g}, "
          f"unanchored {unanchored.abs().median():.3g}; median error {anchored.median():+.3g}, {unanchored.median():+.3g}")
    assert abs(unanchored.median()) > 0.15  # the weakness is there to be fixed
    assert anchored.abs().median() < 0.15 and anchored.abs().median() < unanchored.abs().median() / 1.5


def test_the_widom_check_is_independent_on_test_runs_and_reports_a_shift(trainings):
    """Shifting the test runs' Widom values by SHIFT leaves the training unchanged and moves the test check by -SHIFT."""
    base, shifted = trainings["anchored"], trainings["shifted"]
    for name, tensor in base["model"].state_dict().items():
        assert torch.equal(tensor, shifted["model"].state_dict()[name]), name
    check, check_shifted = base["metrics"]["beta_mu_fit_minus_widom"], shifted["metrics"]["beta_mu_fit_minus_widom"]
    print("anchored check:", check)
    assert check["train"] == check_shifted["train"] and check["val"] == check_shifted["val"]
    assert not check["train"]["independent"] and check["test"]["independent"] and check["test"]["runs"] > 0
    assert check_shifted["test"]["median"] == pytest.approx(check["test"]["median"] - SHIFT, abs=1e-9)
    for record in (check, check_shifted):  # every synthetic Widom value has the same stderr
        assert record["test"]["median_abs_in_stderr"] == pytest.approx(record["test"]["median_abs"] / WIDOM_STDERR, rel=1e-9)
    unanchored = trainings["unanchored"]["metrics"]["beta_mu_fit_minus_widom"]
    assert all(unanchored[split]["independent"] for split in ("train", "val", "test"))


def test_an_infinite_widom_stderr_is_no_anchor_implementation_check(tmp_path):
    """Widom values with stderr = inf, or with the anchor off, train exactly as a dataset without Widom variables."""
    ds = hard_rod_dataset({"box_length": 6.0, "dz": 0.1, "runs": 12, "beta_mu_range": [-3.0, 2.0], "potential_cap": 2.0, "hard_walls": False},
                          [0.5, 0.25, 0.25], seed=4, provenance={})
    plain = with_noise_and_widom(ds, seed=2, share=0.5).drop_vars([pds.BETA_MU_WIDOM, pds.BETA_MU_WIDOM_STDERR])
    measured = with_noise_and_widom(ds, seed=2, share=0.5)
    infinite = measured.assign({pds.BETA_MU_WIDOM_STDERR: measured[pds.BETA_MU_WIDOM_STDERR] * np.inf})
    settings = TrainingSettings(window=1.0, channels=(4, 4), max_epochs=3, warmup_passes=2, use_known_mu=False)
    off = TrainingSettings(**{**settings.__dict__, "widom_anchor": False})
    assert (prepare_runs(infinite, "train", settings).widom_precision == 0).all()
    assert (prepare_runs(measured, "train", settings).widom_precision > 0).any()
    models = {}
    for name, data, s in (("plain", plain, settings), ("infinite", infinite, settings), ("off", measured, off)):
        metrics = train_functional(data, s, seed=3, out_dir=tmp_path / name, provenance={})
        models[name] = (load_model(tmp_path / name)[0].state_dict(), metrics["best_val_mse"], metrics["test_c1_rmse"])
    for name in ("infinite", "off"):
        assert models[name][1:] == models["plain"][1:], name
        assert all(torch.equal(tensor, models[name][0][key]) for key, tensor in models["plain"][0].items()), name
