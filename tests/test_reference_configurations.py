"""Initial clusters and extxyz input of the reference stage (numpy + ase, about a second)."""

import ase
import ase.io
import numpy as np
import pytest

from liquidscale.errors import UserError
from liquidscale.molecules import CO2, WATER, group_molecules
from liquidscale.reference import action_settings
from liquidscale.reference.configurations import (
    assign_shards,
    cluster_radius,
    iteration0_configurations,
    initial_clusters,
    random_rotation,
    read_extxyz,
)

INITIAL = {"cluster_sizes": [1, 3, 5], "frames_per_size": 3, "min_distance": 1.6, "density": 0.02, "bond_jitter": 0.03, "angle_jitter": 4.0}
ENVIRONMENT = {"core_radius": 1.2, "shell": 1.5, "bulk_frames": 2, "bulk_test_frames": 1, "bulk_molecules": 16}


def _intermolecular_min(positions, n_molecules):
    xyz = positions.reshape(n_molecules, 3, 3)
    return min(
        np.linalg.norm(xyz[i][:, None] - xyz[j][None], axis=-1).min() for i in range(n_molecules) for j in range(i + 1, n_molecules)
    )


@pytest.mark.parametrize("molecule", [WATER, CO2])
def test_clusters_have_composition_no_overlaps_and_stay_in_sphere(molecule):
    frames = initial_clusters(molecule, INITIAL, seed=7)
    assert [f.info["n_molecules"] for f in frames] == [1, 1, 1, 3, 3, 3, 5, 5, 5]
    for frame in frames:
        n = frame.info["n_molecules"]
        assert frame.symbols == list(molecule.symbols) * n
        assert frame.positions.shape == (3 * n, 3)
        grouping = group_molecules(frame.symbols, frame.positions, molecule)
        assert grouping.intact, grouping.reason
        if n > 1:
            assert _intermolecular_min(frame.positions, n) >= INITIAL["min_distance"]
        com = (frame.positions.reshape(n, 3, 3) * molecule.masses[None, :, None]).sum(1) / molecule.mass
        assert np.linalg.norm(com, axis=1).max() <= cluster_radius(n, INITIAL["density"]) + 1e-9


def test_clusters_reproducible_from_seed_and_differ_across_seeds_and_systems():
    a = initial_clusters(WATER, INITIAL, seed=11)
    b = initial_clusters(WATER, INITIAL, seed=11)
    c = initial_clusters(WATER, INITIAL, seed=12)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert not any(np.allclose(x.positions, y.positions) for x, y in zip(a, c))
    assert len({f.positions.tobytes() for f in a}) == len(a)  # frames differ from each other


def test_thermal_distortions_have_the_configured_spread():
    initial = dict(INITIAL, cluster_sizes=[1], frames_per_size=400, bond_jitter=0.03, angle_jitter=4.0)
    frames = initial_clusters(WATER, initial, seed=3)
    xyz = np.stack([f.positions for f in frames])
    r1, r2 = xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0]
    bonds = np.concatenate([np.linalg.norm(r1, axis=1), np.linalg.norm(r2, axis=1)])
    angles = np.degrees(np.arccos(np.einsum("ij,ij->i", r1, r2) / np.linalg.norm(r1, axis=1) / np.linalg.norm(r2, axis=1)))
    # 800 bonds / 400 angles: the sample mean and std are within a few standard errors of the truth
    assert bonds.mean() == pytest.approx(WATER.bond_length, abs=4 * 0.03 / np.sqrt(800))
    assert bonds.std() == pytest.approx(0.03, rel=0.1)
    assert angles.mean() == pytest.approx(WATER.angle, abs=4 * 4.0 / np.sqrt(400))
    assert angles.std() == pytest.approx(4.0, rel=0.15)


def test_random_rotations_are_proper_and_isotropic():
    rng = np.random.default_rng(0)
    rotations = np.stack([random_rotation(rng) for _ in range(3000)])
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    # a uniformly rotated unit vector has mean 0 and second moment I/3
    z = rotations[:, :, 2]
    assert np.abs(z.mean(0)).max() < 0.05
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(3) / 3, atol=0.03)


def test_impossible_packing_is_a_user_error_naming_the_keys():
    with pytest.raises(UserError, match="reference.initial.density"):
        initial_clusters(WATER, dict(INITIAL, cluster_sizes=[8], density=2.0), seed=1)


def test_packed_boxes_keep_periodic_images_apart_at_the_requested_density():
    from liquidscale.molecules import group_molecules, minimum_image
    from liquidscale.reference.configurations import bulk_environments, packed_box

    positions, cell = packed_box(WATER, 16, 0.033, np.random.default_rng(1), INITIAL)
    assert 16 / np.linalg.det(cell) == pytest.approx(0.033)
    assert group_molecules(list(WATER.symbols) * 16, positions, WATER, cell).intact
    d = np.linalg.norm(minimum_image(positions[:, None] - positions[None], cell), axis=-1)
    other = np.repeat(np.arange(16), 3)[:, None] != np.repeat(np.arange(16), 3)[None, :]
    assert d[other].min() >= INITIAL["min_distance"]
    frames = bulk_environments(WATER, ENVIRONMENT, INITIAL, 0.033, seed=4)
    again = bulk_environments(WATER, ENVIRONMENT, INITIAL, 0.033, seed=4)
    assert [f.info["held_out"] for f in frames] == [0, 0, 1]
    assert all(np.array_equal(a.positions, b.positions) and np.array_equal(a.core, b.core) for a, b in zip(frames, again))
    with pytest.raises(UserError, match="reference.initial.min_distance"):
        packed_box(WATER, 16, 0.1, np.random.default_rng(1), INITIAL)


def test_extxyz_input_is_accepted_appended_and_numbered(tmp_path):
    extra = tmp_path / "extra.extxyz"
    dimer = np.concatenate([WATER.geometry(), WATER.geometry() + [0.0, 0.0, 2.9]])
    ase.io.write(extra, [ase.Atoms("OH2OH2", positions=dimer), ase.Atoms("OH2", positions=WATER.geometry(), info={"source": "md:42"})])
    environment = {"core_radius": 1.2, "shell": 1.5, "bulk_frames": 1, "bulk_test_frames": 1, "bulk_molecules": 16}
    reference = {"initial": dict(INITIAL, cluster_sizes=[1], frames_per_size=2), "environment": environment, "extra_configurations": str(extra)}
    frames = iteration0_configurations(WATER, reference, seed=5, extra=extra, density=0.033)
    assert [f.info["frame"] for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [f.info["source"] for f in frames] == ["cluster", "cluster", "bulk", "bulk", "extra.extxyz:0", "md:42"]
    assert [f.info.get("held_out") for f in frames[2:4]] == [0, 1] and all(f.core.any() for f in frames[2:4])
    np.testing.assert_allclose(frames[4].positions, dimer)


def test_extxyz_rejects_periodic_frames_and_foreign_elements(tmp_path):
    periodic = tmp_path / "periodic.extxyz"
    ase.io.write(periodic, ase.Atoms("OH2", positions=WATER.geometry(), cell=[10, 10, 10], pbc=True))
    with pytest.raises(UserError, match="periodic"):
        read_extxyz(periodic, WATER, "p")
    foreign = tmp_path / "co2.extxyz"
    ase.io.write(foreign, ase.Atoms("CO2", positions=CO2.geometry()))
    with pytest.raises(UserError, match=r"\['C'\]"):
        read_extxyz(foreign, WATER, "c")
    with pytest.raises(UserError, match="not found"):
        read_extxyz(tmp_path / "missing.extxyz", WATER, "m")


def test_action_settings_hold_only_what_each_action_reads():
    config = {
        "seed": 1,
        "sampling": {"water": {"density_range": [0.003, 0.033], "slab_density": 0.03}},
        "reference": {
            "method": {"basis": "def2-SVP"},
            "initial": INITIAL,
            "environment": dict(ENVIRONMENT, shell_force_weight=0.5),
            "extra_configurations": {"co2": "co2.extxyz"},
            "shards": 2,
            "use_gpu": False,
            "threads": 4,
            "mem_mb": 2000,
            "runtime": 30,
        },
    }
    conf = action_settings(config, "water", "configurations")
    # the shell atoms' force weight is applied at collection: changing it relabels nothing
    assert conf["reference"] == {"initial": INITIAL, "environment": ENVIRONMENT, "extra_configurations": None}
    assert conf["bulk_density"] == 0.033  # the sampling stage's densest water state: the bulk boxes are packed at it
    label = action_settings(config, "co2", "label")
    assert set(label["reference"]) == {"method", "shards", "use_gpu"}  # resources do not rerun labelling
    collect = action_settings(config, "co2", "collect")["reference"]
    assert collect["extra_configurations"] == "co2.extxyz" and collect["environment"]["shell_force_weight"] == 0.5


def test_shards_partition_the_frames_and_balance_their_cost():
    frames = initial_clusters(CO2, dict(INITIAL, cluster_sizes=[1, 2, 3], frames_per_size=3), seed=2)
    for i, frame in enumerate(frames):
        frame.info["frame"] = i
    shards = assign_shards(frames, 2)
    numbers = [[f.info["frame"] for f in shard] for shard in shards]
    assert sorted(sum(numbers, [])) == list(range(9)) and all(n == sorted(n) for n in numbers)
    costs = [sum(len(f.symbols) ** 3 for f in shard) for shard in shards]
    assert max(costs) / min(costs) < 1.1  # round robin would give 2 trimers to one shard: ratio 1.4
    assert [len(s) for s in assign_shards(frames[:1], 3)] == [1, 0, 0]  # more shards than frames: empty shards
