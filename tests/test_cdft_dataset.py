"""The profile-dataset contract: round trip, validation errors that name the file, the seeded split (< 2 s)."""

import numpy as np
import pytest

from liquidscale import dataset as pds
from liquidscale.errors import UserError


def small_dataset(runs: int = 5, n: int = 8):
    z = (np.arange(n) + 0.5) * 0.25
    rho = np.full((runs, n), 0.03)
    V = np.zeros((runs, n))
    V[0, :2] = np.inf
    rho[0, :2] = 0.0
    return pds.make_profile_dataset(
        z,
        rho,
        V,
        T=np.full(runs, 300.0),
        mu=np.full(runs, np.nan),
        N=rho.sum(1) * 0.25 * 100.0,
        split=pds.split_runs(np.arange(runs), [0.6, 0.2, 0.2], seed=1),
        area=np.full(runs, 100.0),
        system="water",
        site="O",
        dimension=3,
        length_unit="Å",
        energy_unit="eV",
        temperature_unit="K",
        k_B=8.617333262e-5,
        provenance={"config_hash": "x"},
    )


def test_round_trip_keeps_names_units_and_values(tmp_path):
    path = tmp_path / "profiles.nc"
    pds.write_profile_dataset(small_dataset(), path)
    ds = pds.open_profile_dataset(path)
    assert ds[pds.RHO].dims == (pds.RUN, pds.Z)
    assert ds[pds.RHO].attrs["units"] == "Å^-3" and ds[pds.V_EXT].attrs["units"] == "eV"
    assert all("long_name" in ds[name].attrs for name in pds.VARIABLE_DIMS)
    assert np.isinf(ds[pds.V_EXT].values[0, 0]) and np.isnan(ds[pds.MU].values).all()
    assert pds.box_length(ds) == pytest.approx(2.0)
    assert ds.attrs["dimension"] == 3 and ds.attrs["system"] == "water"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ds: ds.drop_vars(pds.RHO), "variable 'rho' is missing"),
        (lambda ds: ds.assign({pds.TEMPERATURE: ((pds.Z,), np.ones(ds.sizes[pds.Z]))}), "variable 'T' has dims"),
        (lambda ds: ds.assign({pds.RHO: ds[pds.RHO].where(ds[pds.RUN] != 2)}), "run 2 has status ok but rho is NaN"),
    ],
)
def test_broken_datasets_are_user_errors_naming_the_file(tmp_path, damage, message):
    path = tmp_path / "broken.nc"
    damage(small_dataset()).to_netcdf(path)
    with pytest.raises(UserError, match=message) as info:
        pds.open_profile_dataset(path)
    assert str(path) in str(info.value)


def test_failed_runs_may_hold_nan_and_are_left_out():
    ds = small_dataset()
    ds[pds.RHO][3] = np.nan
    ds[pds.STATUS][3] = pds.STATUS_FAILED
    pds.validate_profile_dataset(ds, "in memory")
    assert 3 not in pds.ok_runs(ds)[pds.RUN].values


def test_split_is_seeded_by_run_and_holds_every_part():
    a = pds.split_runs(np.arange(20), [0.8, 0.1, 0.1], seed=7)
    np.testing.assert_array_equal(a, pds.split_runs(np.arange(20), [0.8, 0.1, 0.1], seed=7))
    assert not np.array_equal(a, pds.split_runs(np.arange(20), [0.8, 0.1, 0.1], seed=8))
    assert np.bincount(a, minlength=3).tolist() == [16, 2, 2]
    assert set(pds.split_runs(np.arange(3), [0.98, 0.01, 0.01], seed=1)) == {0, 1, 2}
    with pytest.raises(UserError, match="summing to 1"):
        pds.split_runs(np.arange(5), [0.5, 0.1, 0.1], seed=1)


def test_failed_runs_never_take_the_only_held_out_places():
    """A small campaign whose val or test run failed would have nothing to validate on: ok and failed runs
    are split apart, and with every run ok the split is the one without statuses."""
    for failed in ([2], [0, 2, 5, 7], list(range(1, 8))):
        ok = np.ones(8, dtype=bool)
        ok[failed] = False
        split = pds.split_runs(np.arange(8), [0.8, 0.1, 0.1], seed=20261121, ok=ok)
        if ok.sum() >= 3:
            assert sorted(split[ok]) == [0] * (ok.sum() - 2) + [1, 2], failed
        np.testing.assert_array_equal(split, pds.split_runs(np.arange(8), [0.8, 0.1, 0.1], seed=20261121, ok=ok))
    every = pds.split_runs(np.arange(20), [0.8, 0.1, 0.1], seed=7, ok=np.ones(20, dtype=bool))
    np.testing.assert_array_equal(every, pds.split_runs(np.arange(20), [0.8, 0.1, 0.1], seed=7))


def test_steep_wall_bins_of_binned_profiles_are_no_euler_lagrange_targets():
    """Ideal gas (c1 = 0) at a 30 kT MD wall 0.02 wide, histogrammed on 0.1 bins: ln rho + beta V - beta mu is the
    exact c1 = 0 wherever V is smooth over the bin, but not at the wall's edge, where the bin averages both sides
    (and bins inside the wall are judged on neighbours that see the gas). The steep-V mask removes exactly those."""
    import torch

    from liquidscale.cdft.train import TrainingSettings, log_density_target, steep_potential_bins, usable_bins

    length, dz, beta_mu = 10.0, 0.1, -2.0
    fine = np.linspace(0, length, 100_001)[:-1]
    beta_v_fine = 30.0 / (1 + np.exp(-(np.abs(fine - 5.0) - 1.0) / -0.02)) + 0.8 * np.cos(2 * np.pi * fine / length)
    rho_fine = np.exp(beta_mu - beta_v_fine)
    bins = int(round(length / dz))
    rho = torch.tensor(rho_fine.reshape(bins, -1).mean(1))[None]
    beta_v = torch.tensor(np.interp((np.arange(bins) + 0.5) * dz, fine, beta_v_fine))[None]
    stderr = 1e-3 * rho + 1e-6
    mask = usable_bins(rho, stderr, beta_v, TrainingSettings(window=1.0))
    error = (log_density_target(rho, stderr, mask) + beta_v - beta_mu).abs()
    steep = steep_potential_bins(beta_v)
    kept = mask & ~steep
    assert float(error[kept].max()) < 0.01, float(error[kept].max())
    assert float(error[mask & steep].max()) > 1.0, "without the mask, wall bins carry c1 targets off by more than 1"
    assert int(kept.sum()) > 0.7 * bins
