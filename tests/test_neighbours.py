"""The cell-list pair search gives exactly the dense search's pairs and distances, and its users agree with
their former dense versions: the engine's failure check, the Lennard-Jones Verlet list, DeePMD's sel counts."""

import itertools
import math

import numpy as np
import pytest
import torch

from liquidscale.md.engine import FailureChecks, LangevinEngine
from liquidscale.md.neighbours import batched_pairs, pairs_within
from liquidscale.md.potential import REDUCED, LennardJones
from liquidscale.mlip import data
from liquidscale.molecules import WATER

IMAGES = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), dtype=float)


def dense_pairs(points, cell, cutoff):
    """Every pair i < j at the shortest of its 125 images (exact for cells not skewed past 2 images)."""
    delta = points[None, :, :] - points[:, None, :]  # r_j - r_i
    if cell is None:
        distance = np.linalg.norm(delta, axis=-1)
    else:
        matrix = np.diag(cell) if np.ndim(cell) == 1 else np.asarray(cell)
        shifts = IMAGES @ matrix
        distance = np.linalg.norm(delta[:, :, None, :] + shifts[None, None], axis=-1).min(-1)
    i, j = np.nonzero((distance < cutoff) & np.triu(np.ones_like(distance, dtype=bool), 1))
    return i, j, distance[i, j]


CELLS = {
    "cluster": None,
    "cube": np.array([9.0, 9.0, 9.0]),
    "orthorhombic": np.array([7.0, 9.5, 12.0]),
    "triclinic": np.array([[8.0, 0.0, 0.0], [1.5, 9.0, 0.0], [-1.0, 2.0, 10.0]]),
}


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("cutoff_fraction", [0.2, 0.45, 0.499, 0.6])
def test_pairs_equal_the_dense_minimum_image_search(name, cutoff_fraction):
    """Random points (some outside the cell), cutoffs from short to past half the shortest edge."""
    cell = CELLS[name]
    rng = np.random.default_rng([sorted(CELLS).index(name), int(cutoff_fraction * 1000)])
    edge = 9.0 if cell is None else (min(cell) if np.ndim(cell) == 1 else min(np.linalg.norm(cell, axis=1)))
    span = np.diag(cell) if np.ndim(cell) == 1 else (np.eye(3) * 9.0 if cell is None else cell)
    points = rng.uniform(-0.3, 1.3, (60, 3)) @ span
    cutoff = cutoff_fraction * edge
    i, j, d = pairs_within(points, cell, cutoff)
    ei, ej, ed = dense_pairs(points, cell, cutoff)
    assert len(ei) > 0
    assert i.tolist() == ei.tolist() and j.tolist() == ej.tolist()
    np.testing.assert_allclose(d, ed, rtol=1e-12, atol=1e-12)


def test_batched_pairs_keep_each_replica_apart_and_its_dtype():
    rng = np.random.default_rng(3)
    cells = np.array([[6.0, 6.0, 6.0], [5.0, 7.0, 9.0]])
    x = np.stack([rng.uniform(0, 1, (40, 3)) * c for c in cells])
    replica, i, j, d = batched_pairs(torch.tensor(x, dtype=torch.float32), torch.tensor(cells, dtype=torch.float32), 2.4)
    assert d.dtype == torch.float32 and i.dtype == torch.long
    for b in range(2):
        ei, ej, ed = dense_pairs(x[b], cells[b], 2.4)
        mine = replica == b
        assert i[mine].tolist() == ei.tolist() and j[mine].tolist() == ej.tolist()
        np.testing.assert_allclose(d[mine].numpy(), ed, rtol=1e-6)


def dense_lennard_jones(positions, cells, cutoff):
    """Energy and forces by the all-pairs minimum image (the reference the Verlet list must equal)."""
    delta = positions[:, :, None, :] - positions[:, None, :, :]
    box = cells[:, None, None, :]
    delta = delta - box * torch.round(delta / box)
    r2 = (delta * delta).sum(-1)
    n = positions.shape[1]
    inside = (r2 < cutoff**2) & ~torch.eye(n, dtype=torch.bool)
    inv_r6 = torch.where(inside, r2.clamp_min(1e-12) ** -3, torch.zeros_like(r2))
    shift = 4.0 * (cutoff**-12 - cutoff**-6)
    energy = 0.5 * ((4.0 * (inv_r6**2 - inv_r6) - shift) * inside).sum((1, 2))
    scale = torch.where(inside, 24.0 * (2.0 * inv_r6**2 - inv_r6) / r2.clamp_min(1e-12), torch.zeros_like(r2))
    forces = (scale[..., None] * delta).sum(2)
    return energy, forces


@pytest.mark.parametrize("edge", [5.0, 5.6, 8.0])
def test_lennard_jones_on_the_neighbour_list_equals_the_dense_sum(edge):
    """Boxes down to twice the cutoff, where cutoff + skin reaches past half the box."""
    rng = np.random.default_rng(int(edge * 10))
    cells = torch.tensor([[edge, edge, edge], [edge, edge + 0.7, edge + 1.3]], dtype=torch.float64)
    lattice = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) / 4.0
    x = torch.tensor(np.stack([(lattice + rng.normal(0, 0.02, lattice.shape)) * c.numpy() for c in cells]))
    lj = LennardJones(cutoff=2.5, skin=0.3)
    energy, forces = lj(x, cells)
    dense_energy, dense_forces = dense_lennard_jones(x, cells, 2.5)
    torch.testing.assert_close(energy, dense_energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(forces, dense_forces, rtol=1e-10, atol=1e-10)


def test_failure_check_finds_the_closest_foreign_pair_across_the_boundary():
    """Two water molecules whose O atoms are 0.5 Å apart through the periodic boundary; a third far away."""
    box = np.array([12.0, 12.0, 12.0])
    template = WATER.geometry() - WATER.geometry()[0]
    sites = np.array([[0.1, 6.0, 6.0], [11.8, 6.0, 6.0], [6.0, 1.0, 1.0]])
    far = np.array([[2.0, 2.0, 2.0], [6.0, 6.0, 6.0], [10.0, 10.0, 2.0]])
    positions = np.stack([np.concatenate([s + template for s in sites]), np.concatenate([s + template for s in far])])
    engine = LangevinEngine(
        LennardJones(2.5), list(WATER.symbols) * 3, np.tile(WATER.masses, 3), [s == "O" for s in WATER.symbols] * 3,
        positions, np.repeat(box[None], 2, 0), [300.0, 300.0], [1, 2], REDUCED, 1e-4, 0.0,
        checks=FailureChecks(min_distance=0.6, molecule=WATER, max_temperature_ratio=1e9),
    )  # fmt: skip
    closest = engine._closest_foreign_distance(torch.tensor([True, True])).tolist()
    assert closest[0] == pytest.approx(0.3) and math.isinf(closest[1])
    assert math.isinf(engine._closest_foreign_distance(torch.tensor([False, True]))[0])
    failed = engine.check_failures()
    assert list(failed) == [0] and "0.300 apart" in failed[0]


def test_sel_counts_equal_the_dense_count_for_triclinic_and_cluster_frames():
    rng = np.random.default_rng(11)
    types = rng.integers(0, 2, 50)
    for cell in (CELLS["triclinic"], None):
        coords = rng.uniform(0, 8.0, (3, 50, 3))
        cells = None if cell is None else np.repeat(cell[None], 3, 0)
        frames = data.Frames(types, coords, cells, np.zeros(3), np.zeros((3, 50, 3)), np.ones((3, 50)))
        expected = np.zeros(2, dtype=int)
        for f in range(3):
            i, j, _ = dense_pairs(coords[f], cell, 3.9)
            within = np.zeros((50, 50), dtype=bool)
            within[i, j] = within[j, i] = True
            expected = np.maximum(expected, [within[:, types == t].sum(1).max() for t in (0, 1)])
        assert data.neighbour_counts(frames, 3.9, 2).tolist() == expected.tolist()
