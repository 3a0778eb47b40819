"""The LAMMPS LJ engine against truth: the ideal gas under a tabulated V_ext is Boltzmann-distributed,
LAMMPS and the torch engine sample the same LJ profile, and batches resume replica by replica to the
identical result."""

import math

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("lammps")
torch = pytest.importorskip("torch")

from liquidscale.config import stage_settings, validate_config  # noqa: E402
from liquidscale.external import ExternalPotential  # noqa: E402
from liquidscale.md import lammps_engine  # noqa: E402
from liquidscale.md.lammps_engine import ReplicaSpec, run_replica  # noqa: E402
from liquidscale.sampling.batch import run_batch  # noqa: E402
from liquidscale.sampling.initial import place_molecules  # noqa: E402
from liquidscale.sampling.profiles import ProfileAccumulator  # noqa: E402
from liquidscale.sampling.statepoints import statepoint_table, system_sampling  # noqa: E402

BOX = np.array([5.2, 5.2, 10.0])
EXTERNAL = ExternalPotential(10.0, ({"kind": "fourier", "n": 1, "amplitude": 1.2, "phase": 0.4}, {"kind": "soft_wall", "center": 7.0, "half_width": 1.0, "amplitude": 2.5, "softness": 0.2}))


def _spec(n, T, seed, steps, epsilon=1.0, external=EXTERNAL):
    return ReplicaSpec(run=0, n_atoms=n, box=tuple(BOX), temperature=T, thermostat_seed=seed, external=external, cutoff=2.5, timestep=0.005, friction=1.0, minimisation_steps=50, max_displacement=0.05, equilibration_steps=2000, production_steps=steps, sample_every=10, widom_insertions=0, widom_every=10, epsilon=epsilon)


def _lammps_profile(n, T, seed, steps, bin_width, epsilon=1.0):
    spec = _spec(n, T, seed, steps, epsilon)
    profiles = ProfileAccumulator(1, BOX[2], bin_width, steps // spec.sample_every)
    positions = place_molecules(np.zeros((1, 3)), n, BOX, np.random.default_rng(seed), 0.9 if epsilon else 0.0, EXTERNAL)
    _, failure = run_replica(spec, positions, profiles, None)
    assert not failure
    area = np.array([BOX[0] * BOX[1]])
    return profiles.histogram_density(area)[0], profiles.histogram_stderr(area)[0], profiles.force_density(area, np.array([T]), np.array([n]))[0]


def _coarse(profile, factor):
    return profile.reshape(-1, factor).mean(-1)


@pytest.mark.xfail(strict=True, reason="open (issue 12; strict: fixing it must remove this mark): the 8-replica mean deviates up to 6.0 % (chi^2 51 over 20 bins) where beta V ~ 1-2.7 with GJF Langevin, 7.4 % (chi^2 80) with plain Langevin; not yet known whether bias or slow-mode noise")
def test_ideal_gas_under_tabulated_external_potential_is_boltzmann():
    """eps = 0: rho(z) = N exp(-beta V) / (A integral exp(-beta V)). Errors from the spread of independent replicas:
    the block stderr of one replica comes out ~1.5x small for this ideal gas (slow density modes across the soft wall)."""
    n, T, replicas = 200, 1.3, 8
    runs = np.stack([_lammps_profile(n, T, seed, steps=30_000, bin_width=0.5, epsilon=0.0) for seed in range(replicas)])
    rho, rho_force = runs[:, 0], runs[:, 2]
    z = (np.arange(20) + 0.5) * 0.5
    fine = np.linspace(0, 10, 100001)
    weight = np.exp(-EXTERNAL.beta_v(fine))
    # exact bin averages of the Boltzmann profile
    exact = np.array([np.exp(-EXTERNAL.beta_v(np.linspace(a - 0.25, a + 0.25, 501))).mean() for a in z]) * n / (BOX[0] * BOX[1] * np.trapezoid(weight, fine))
    for name, profiles in (("histogram", rho), ("force sampling", rho_force)):
        error = profiles.std(0, ddof=1) / math.sqrt(replicas)
        chi2 = float((((profiles.mean(0) - exact) / error) ** 2).sum())
        print(f"ideal gas, {name}: chi^2 {chi2:.1f} over 20 bins, max relative deviation {np.abs(profiles.mean(0) / exact - 1).max():.3f}")
        # t^2 with 7 degrees of freedom has mean 1.4 and a heavy tail: 20 bins -> mean 28, sd ~25
        assert chi2 < 100, f"{name}: chi^2 {chi2:.1f} over 20 bins"
        assert np.abs(profiles.mean(0) / exact - 1).max() < 0.05


@pytest.mark.slow
def test_lammps_and_torch_engines_sample_the_same_lj_profile():
    """LJ at T 1.5, rho 0.5 under V_ext: the engines' coarse density profiles agree within their errors."""
    from liquidscale.md.engine import LangevinEngine
    from liquidscale.md.potential import REDUCED, LennardJones

    n, T, steps, replicas = 135, 1.5, 6000, 4
    lammps = np.stack([_lammps_profile(n, T, seed, steps, 0.5)[0] for seed in range(replicas)])
    torch.set_num_threads(1)
    positions = np.stack([place_molecules(np.zeros((1, 3)), n, BOX, np.random.default_rng(10 + k), 0.9, EXTERNAL) for k in range(replicas)])
    engine = LangevinEngine(LennardJones(2.5), ["X"] * n, np.ones(n), np.ones(n, bool), positions, np.repeat(BOX[None], replicas, 0), [T] * replicas, list(range(replicas)), REDUCED, 0.005, 1.0, externals=[EXTERNAL] * replicas)
    engine.minimise(50, 0.05)
    engine.run(2000)
    acc = ProfileAccumulator(replicas, BOX[2], 0.5, steps // 10)
    engine.run(steps, acc.sample, every=10)
    assert not engine.failures
    torch_profiles = acc.histogram_density(np.full(replicas, BOX[0] * BOX[1]))
    difference = lammps.mean(0) - torch_profiles.mean(0)
    error = np.sqrt(lammps.var(0, ddof=1) / replicas + torch_profiles.var(0, ddof=1) / replicas)
    chi2 = float(((difference / error) ** 2).sum())
    print(f"LAMMPS vs torch: chi^2 {chi2:.1f} over 20 bins, max abs diff {np.abs(difference).max():.4f} (max error {error.max():.4f})")
    assert chi2 < 20 + 4 * math.sqrt(40), f"chi^2 {chi2:.1f} over 20 bins; max |diff| {np.abs(difference).max():.4f}"


def _settings(tmp_path=None, **widom):
    sampling = {"runs": 3, "replicas_per_job": 3, "minimisation_steps": 20, "equilibration_steps": 200, "production_steps": 400, "sample_every": 10, "threads": 1, "device": "cpu"}
    sampling["lj"] = {"box": [5.2, 5.2, 10.0], "density_range": [0.3, 0.5], "engine": "lammps", "widom": {"fraction": 1.0, "insertions": 50, "every": 20, **widom}}
    config = validate_config({"systems": ["lj"], "seed": 11, "sampling": sampling})
    return stage_settings(config, "lj", "sampling")


def test_batch_resumes_replica_by_replica_to_the_identical_file(tmp_path, monkeypatch):
    settings = _settings()
    table = statepoint_table(system_sampling(settings))
    run_batch(settings, table, 0, tmp_path / "fresh.nc")
    assert not (tmp_path / "fresh.nc.replicas").exists(), "checkpoints are removed once the batch file is written"
    fresh = xr.load_dataset(tmp_path / "fresh.nc")
    assert (fresh["status"].values == 0).all()
    assert np.isfinite(fresh["beta_mu_widom"].values).all() and (fresh["beta_mu_widom_stderr"].values > 0).all()
    from liquidscale.config import stage_settings as stage
    from liquidscale.sampling.aggregate import aggregate

    profiles_settings = stage(validate_config({"systems": ["lj"], "seed": 11, "sampling": {"lj": {"box": [5.2, 5.2, 10.0]}}}), "lj", "profiles")
    aggregate([tmp_path / "fresh.nc"], tmp_path / "profiles.nc", profiles_settings)
    dataset = xr.load_dataset(tmp_path / "profiles.nc")
    np.testing.assert_array_equal(dataset["beta_mu_widom"].values, fresh["beta_mu_widom"].values)

    # an interrupted job: the batch file was never written, two replicas finished
    calls = []
    original = lammps_engine.run_replica

    def counting(spec, *args):
        calls.append(spec.run)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the job is killed during its third replica
        return original(spec, *args)

    monkeypatch.setattr(lammps_engine, "run_replica", counting)
    with pytest.raises(KeyboardInterrupt):
        run_batch(settings, table, 0, tmp_path / "resumed.nc")
    assert not (tmp_path / "resumed.nc").exists() and len(list((tmp_path / "resumed.nc.replicas").glob("*.npz"))) == 2
    calls.clear()
    run_batch(settings, table, 0, tmp_path / "resumed.nc")
    assert calls == [int(table[table["batch"] == 0].sort_values("replica")["run"].iloc[2])], "only the unfinished replica runs again"
    resumed = xr.load_dataset(tmp_path / "resumed.nc")
    for name in fresh.data_vars:
        np.testing.assert_array_equal(resumed[name].values, fresh[name].values, err_msg=name)


def test_checkpoint_of_other_settings_is_not_reused(tmp_path, monkeypatch):
    settings = _settings()
    table = statepoint_table(system_sampling(settings))
    calls = []
    original = lammps_engine.run_replica

    def stop_after_first(spec, *args):
        calls.append(spec.run)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(spec, *args)

    monkeypatch.setattr(lammps_engine, "run_replica", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_batch(settings, table, 0, tmp_path / "b.nc")
    calls.clear()
    monkeypatch.setattr(lammps_engine, "run_replica", lambda spec, *a: calls.append(spec.run) or original(spec, *a))
    run_batch(_settings(insertions=60), table, 0, tmp_path / "b.nc")
    assert len(calls) == 3, "a checkpoint written under other Widom settings must be redone"


def test_widom_every_must_fall_on_profile_samples(tmp_path):
    from liquidscale.errors import UserError

    settings = _settings(every=15)
    with pytest.raises(UserError, match="sampling.lj.widom.every"):
        run_batch(settings, statepoint_table(system_sampling(settings)), 0, tmp_path / "x.nc")
