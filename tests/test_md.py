"""MD engine: NVE energy conservation, Langevin temperature, batching independence, per-replica failure."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from liquidscale.external import ExternalPotential  # noqa: E402
from liquidscale.md.engine import FailureChecks, LangevinEngine  # noqa: E402
from liquidscale.md.potential import METAL, REDUCED, IdealGas, LennardJones  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _cubic_lattice(n_side: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    spacing = density ** (-1 / 3)
    grid = np.arange(n_side) * spacing
    positions = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    return positions, np.full(3, n_side * spacing)


def _lj_engine(n_rep, temperatures, seeds, friction, timestep=0.005, n_side=5, density=0.7, externals=None, cutoff=2.5):
    positions, box = _cubic_lattice(n_side, density)
    n = len(positions)
    return LangevinEngine(
        LennardJones(cutoff),
        ["X"] * n,
        np.ones(n),
        np.ones(n, dtype=bool),
        np.repeat(positions[None], n_rep, 0),
        np.repeat(box[None], n_rep, 0),
        temperatures,
        seeds,
        REDUCED,
        timestep,
        friction,
        externals=externals,
    )


def test_lj_forces_are_minus_energy_gradient():
    rng = np.random.default_rng(0)
    positions, box = _cubic_lattice(4, 0.6)
    x = torch.tensor(positions + rng.normal(0, 0.05, positions.shape), requires_grad=True)[None]
    cell = torch.tensor(box)[None]
    lj = LennardJones(2.2)
    energy, forces = lj(x, cell)
    (grad,) = torch.autograd.grad(energy.sum(), x)
    torch.testing.assert_close(forces, -grad)


def test_nve_conserves_energy():
    engine = _lj_engine(2, [1.5, 1.0], [1, 2], friction=0.0, timestep=0.002)
    engine.run(300)  # melt the lattice
    start = (engine.kinetic_energy() + engine.potential_energy()).clone()
    drift = []
    for _ in range(10):
        engine.run(50)
        drift.append(((engine.kinetic_energy() + engine.potential_energy()) - start).abs().max().item())
    n = engine.x.shape[1]
    # velocity Verlet at dt = 0.002 tau: energy wanders by far less than 1e-3 epsilon per particle
    assert max(drift) / n < 1e-3
    assert not engine.failures


def test_langevin_temperature_matches_target():
    targets = [0.8, 2.0]
    engine = _lj_engine(2, targets, [3, 4], friction=2.0)
    engine.run(400)
    samples = []
    engine.run(2000, callback=lambda e: samples.append(e.kinetic_temperature().numpy().copy()), every=10)
    samples = np.array(samples)
    n_dof = 3 * engine.x.shape[1]
    for col, target in enumerate(targets):
        # block averages: 200 samples, correlated over ~1/gamma; the relative std of T_kin is sqrt(2/n_dof)
        blocks = samples[:, col].reshape(10, -1).mean(1)
        error = blocks.std(ddof=1) / np.sqrt(len(blocks))
        assert abs(blocks.mean() - target) < 4 * error + 1e-3 * target
        assert samples[:, col].std() == pytest.approx(target * np.sqrt(2 / n_dof), rel=0.3)


def test_replicas_do_not_depend_on_their_batch():
    both = _lj_engine(2, [1.0, 1.5], [7, 8], friction=1.0, n_side=4, cutoff=2.0)
    alone = _lj_engine(1, [1.5], [8], friction=1.0, n_side=4, cutoff=2.0)
    both.run(50)
    alone.run(50)
    torch.testing.assert_close(both.x[1], alone.x[0])


def test_blown_up_replica_fails_alone():
    engine = _lj_engine(3, [1.0, 1.0, 1.0], [1, 2, 3], friction=1.0, n_side=4, cutoff=2.0)
    engine.x[1, 0] = engine.x[1, 1] + 0.3  # two particles almost on top of each other
    engine.compute_forces()
    engine.checks = FailureChecks(every=5)
    engine.run(20)
    assert set(engine.failures) == {1}
    assert engine.ids.tolist() == [0, 2] and engine.x.shape[0] == 2
    assert torch.isfinite(engine.x).all()


def test_external_force_acts_on_site_only():
    pot = ExternalPotential(5 * 0.7 ** (-1 / 3), ({"kind": "fourier", "n": 1, "amplitude": 1.0, "phase": 0.3},))
    with_ext = _lj_engine(1, [1.3], [1], friction=1.0, externals=[pot])
    without = _lj_engine(1, [1.3], [1], friction=1.0)
    diff = with_ext.forces - without.forces
    z = with_ext.site_z()[0]
    expected = -1.3 * pot.beta_v_and_derivative(z)[1]
    torch.testing.assert_close(diff[0, :, 2], expected)
    assert diff[..., :2].abs().max() == 0


def test_dissociated_molecule_fails_its_replica():
    from liquidscale.molecules import WATER

    geometry = WATER.geometry()
    molecules = np.stack([geometry + [2.0, 2.0, 2.0], geometry + [6.0, 6.0, 6.0]]).reshape(-1, 3)
    broken = molecules.copy()
    broken[1] = broken[0] + [2.0, 0.0, 0.0]  # an H 2 Å from its O
    symbols = list(WATER.symbols) * 2
    engine = LangevinEngine(
        IdealGas(), symbols, np.tile(WATER.masses, 2), [s == "O" for s in symbols], np.stack([molecules, broken]),
        np.full((2, 3), 10.0), [300.0, 300.0], [1, 2], METAL, 0.0005, 5.0, checks=FailureChecks(molecule=WATER, min_distance=0.5),
    )  # fmt: skip
    found = engine.check_failures()
    assert list(found) == [1] and "dissociated" in found[1]


def test_lj_neighbour_list_matches_all_pairs_as_atoms_move():
    rng = np.random.default_rng(3)
    positions, box = _cubic_lattice(6, 0.8)
    x = torch.tensor(positions + rng.normal(0, 0.1, positions.shape))[None].repeat(2, 1, 1)
    cell = torch.tensor(box)[None].repeat(2, 1)
    lj = LennardJones(2.5)
    for _ in range(6):  # small moves reuse the list, larger ones rebuild it
        x = x + torch.tensor(rng.normal(0, 0.08, x.shape))
        energy, forces = lj(x, cell)
        delta = x[:, :, None, :] - x[:, None, :, :]
        delta = delta - cell[:, None, None, :] * (delta / cell[:, None, None, :]).round()
        r = (delta * delta).sum(-1).sqrt() + torch.eye(x.shape[1])[None] * 10
        u = torch.where(r < 2.5, 4 * (r**-12 - r**-6) - lj.shift, torch.zeros_like(r))
        torch.testing.assert_close(energy, 0.5 * u.sum((1, 2)))
        w = torch.where(r < 2.5, 24 * (2 * r**-12 - r**-6), torch.zeros_like(r))
        torch.testing.assert_close(lj.virial(x, cell), 0.5 * w.sum((1, 2)))
        assert forces.sum(1).abs().max() < 1e-12 * forces.abs().sum()  # Newton's third law
