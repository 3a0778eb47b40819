"""Sampling pipeline on the lj system: state points -> batch jobs (CLI) -> profiles.nc.

Checks the dataset contract, N = A * integral rho dz for every run, failures that stay with their
replica, seeded reproducibility of the table, and streaming aggregation.
"""

import json

import numpy as np
import pandas as pd
import pytest

from liquidscale.cli import main
from liquidscale.config import stage_settings, validate_config
from liquidscale.dataset import STATUS_FAILED, STATUS_OK, open_profile_dataset, validate_profile_dataset
from liquidscale.errors import UserError
from liquidscale.sampling.batch import run_batch
from liquidscale.sampling.statepoints import batch_settings, batch_table, statepoint_table, system_sampling

pytest.importorskip("torch")


def _config(**sampling):
    base = {"runs": 5, "replicas_per_job": 3, "minimisation_steps": 50, "equilibration_steps": 100, "production_steps": 200, "sample_every": 5, "check_every": 20, "slab_fraction": 0.5, "threads": 1, "device": "cpu"}
    base.update(sampling)
    # the torch engine: its failure checks drop the blown-up replica this test plants
    base["lj"] = {"box": [5.2, 5.2, 10.0], "density_range": [0.05, 0.7], "slab_density": 0.7, "engine": "torch"}
    return validate_config({"systems": ["lj"], "sampling": base})


def test_statepoint_table_is_seeded_and_batched():
    config = _config(runs=10, replicas_per_job=4)
    table = statepoint_table(system_sampling(stage_settings(config, "lj", "sampling")))
    assert list(table["run"]) == list(range(10)) and list(table.groupby("batch").size()) == [4, 4, 2]
    assert table.groupby("batch")["n_molecules"].nunique().max() == 1  # one composition per batch
    assert table["T"].between(0.8, 2.0).all() and table["potential_seed"].is_unique
    again = statepoint_table(system_sampling(stage_settings(config, "lj", "sampling")))
    pd.testing.assert_frame_equal(table, again)
    reseeded = validate_config({**config, "seed": 1})
    assert not statepoint_table(system_sampling(stage_settings(reseeded, "lj", "sampling")))["T"].equals(table["T"])


def test_a_batch_depends_on_its_own_runs_only():
    """Growing sampling.runs leaves complete batches' settings (the jobs' params) and rows as they were."""
    small, grown = (stage_settings(_config(runs=runs, replicas_per_job=4), "lj", "sampling") for runs in (10, 17))
    full = statepoint_table(system_sampling(grown))
    for batch in range(5):
        job = batch_settings(grown, batch)
        assert "runs" not in job["sampling"] and "water" not in job["sampling"] and "lj" in job["sampling"]
        pd.testing.assert_frame_equal(batch_table(job), full[full["batch"] == batch])
        if batch < 2:
            assert batch_settings(small, batch) == job, f"complete batch {batch} changed its settings"
    assert batch_settings(small, 2)["batch"]["replicas"] == 2 and batch_settings(grown, 2)["batch"]["replicas"] == 4
    with pytest.raises(UserError, match="sampling.runs"):
        batch_settings(small, 3)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("lj")
    config = _config()
    settings = json.dumps(stage_settings(config, "lj", "sampling"))
    table_path = root / "statepoints.csv"
    assert main(["sampling", "statepoints", "--settings", settings, "--out", str(table_path)]) == 0
    table = pd.read_csv(table_path)
    # make run 4 (batch 1) blow up: a temperature far beyond what the timestep can integrate
    table.loc[table["run"] == 4, "T"] = 400.0
    table.to_csv(table_path, index=False)
    batches = []
    for batch in sorted(table["batch"].unique()):
        out = root / f"batch{batch}.nc"
        job = batch_settings(stage_settings(config, "lj", "sampling"), int(batch))
        if batch == 0:  # the command the workflow runs
            assert main(["sampling", "batch", "--settings", json.dumps(job), "--out", str(out)]) == 0
        else:  # with the edited table
            run_batch(job, table[table["batch"] == batch], int(batch), out)
        batches.append(str(out))
    profiles = root / "profiles.nc"
    profile_settings = json.dumps(stage_settings(config, "lj", "profiles"))
    assert main(["sampling", "aggregate", "--settings", profile_settings, "--out", str(profiles), *batches]) == 0
    return root, table, open_profile_dataset(profiles)


def test_profiles_follow_the_contract_and_conserve_particles(campaign):
    _, table, ds = campaign
    assert list(ds["run"].values) == list(range(5))
    assert ds.attrs["system"] == "lj" and ds.attrs["dimension"] == 3 and ds["rho"].attrs["units"] == "sigma^-3"
    dz = float(ds["z"][1] - ds["z"][0])
    assert dz <= 0.01
    ok = ds["status"].values == STATUS_OK
    # N = A * integral rho dz, both estimators, every finished run
    np.testing.assert_allclose((ds["rho"] * ds["area"]).sum("z").values[ok] * dz, ds["N"].values[ok], rtol=1e-10)
    np.testing.assert_allclose((ds["rho_force"] * ds["area"]).sum("z").values[ok] * dz, ds["N"].values[ok], rtol=1e-8)
    np.testing.assert_array_equal(ds["N"].values, table.sort_values("run")["n_molecules"].values)
    assert np.isnan(ds["mu"].values).all() and set(np.unique(ds["split"].values)) <= {0, 1, 2}
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["config_hash"] and provenance["batches"] == 2
    # V_ext stored per run is kT * beta V of the stored potential (as integrated)
    from liquidscale.external import ExternalPotential

    pot = ExternalPotential.from_dict(json.loads(str(ds["potential"].values[0])))
    expected = float(ds["T"][0]) * pot.finite(30.0, 0.02).beta_v(ds["z"].values)
    np.testing.assert_allclose(ds["V_ext"].values[0], expected)


def test_a_blown_up_replica_fails_alone(campaign):
    _, _, ds = campaign
    status = ds["status"].values
    assert status[4] == STATUS_FAILED and str(ds["failure_reason"].values[4])
    assert (status[:4] == STATUS_OK).all()
    # its batch mate finished and was sampled normally
    assert np.isfinite(ds["rho"].values[3]).all() and ds["rho"].values[3].sum() > 0


def test_aggregation_streams_and_rejects_mismatched_grids(campaign, tmp_path):
    root, _, _ = campaign
    import xarray as xr

    from liquidscale.errors import UserError
    from liquidscale.sampling.aggregate import aggregate

    other = xr.load_dataset(root / "batch1.nc")
    other = other.assign_coords(z=other["z"].values * 1.01)
    other.to_netcdf(tmp_path / "bad.nc")
    settings = stage_settings(_config(), "lj", "profiles")
    with pytest.raises(UserError, match="z grid differs"):
        aggregate([root / "batch0.nc", tmp_path / "bad.nc"], tmp_path / "profiles.nc", settings)
    assert not (tmp_path / "profiles.nc").exists()


def test_force_sampling_estimator_can_be_the_dataset_density(campaign, tmp_path):
    root, _, histogram = campaign
    from liquidscale.sampling.aggregate import aggregate

    config = validate_config({**_config(), "profiles": {"estimator": "force"}})
    aggregate([root / "batch0.nc", root / "batch1.nc"], tmp_path / "profiles.nc", stage_settings(config, "lj", "profiles"))
    ds = open_profile_dataset(tmp_path / "profiles.nc")
    ok = ds["status"].values == STATUS_OK
    np.testing.assert_array_equal(ds["rho_histogram"].values[ok], histogram["rho"].values[ok])
    np.testing.assert_array_equal(ds["rho_histogram_stderr"].values[ok], histogram["rho_stderr"].values[ok])
    np.testing.assert_array_equal(ds["rho"].values[ok], histogram["rho_force"].values[ok])
    np.testing.assert_array_equal(ds["rho_stderr"].values[ok], histogram["rho_force_stderr"].values[ok])
    assert ds.attrs["density_estimator"] == "force" and histogram.attrs["density_estimator"] == "histogram"
    assert (histogram["rho_stderr"].values[ok] > 0).any() and (histogram["rho_force_stderr"].values[ok] > 0).all()


def _with_force_density_at_bin_0(batch_path, out_path, stderrs_below_zero: float):
    import xarray as xr

    batch = xr.load_dataset(batch_path)
    batch["rho_force"].values[0, 0] = -stderrs_below_zero * batch["rho_force_stderr"].values[0, 0]
    batch.to_netcdf(out_path)


def test_negative_force_sampling_densities_are_kept_within_a_few_standard_errors(campaign, tmp_path):
    """Force sampling integrates noisy forces: a dilute bin may dip below zero and must stay so (clipping biased
    dilute bins upwards); far below zero is a broken estimator, and a histogram is never negative."""
    from liquidscale.errors import UserError
    from liquidscale.sampling.aggregate import aggregate

    root, _, _ = campaign
    force = stage_settings(validate_config({**_config(), "profiles": {"estimator": "force"}}), "lj", "profiles")
    _with_force_density_at_bin_0(root / "batch0.nc", tmp_path / "dips.nc", 2.0)
    aggregate([tmp_path / "dips.nc", root / "batch1.nc"], tmp_path / "profiles.nc", force)
    ds = open_profile_dataset(tmp_path / "profiles.nc")
    assert ds["rho"].values[0, 0] == -2.0 * ds["rho_stderr"].values[0, 0] < 0
    _with_force_density_at_bin_0(root / "batch0.nc", tmp_path / "broken.nc", 20.0)
    with pytest.raises(UserError, match="standard errors below zero"):
        aggregate([tmp_path / "broken.nc", root / "batch1.nc"], tmp_path / "broken_profiles.nc", force)
    negative_histogram = ds.assign_attrs(density_estimator="histogram")
    with pytest.raises(UserError, match="negative"):
        validate_profile_dataset(negative_histogram, source="histogram")
    with pytest.raises(UserError, match="negative"):
        validate_profile_dataset(ds.drop_vars("rho_stderr"), source="force sampling without errors")
