"""Concurrent-learning logic that needs no trained model: split, sel, settings, exploration state
points, DP-GEN classification, cluster cutting and spread-out selection. Budget: a few seconds."""

from __future__ import annotations

import numpy as np
import pytest

from liquidscale.config import validate_config
from liquidscale.errors import UserError
from liquidscale.mlip import data, exploration, selection, training
from liquidscale.mlip.deepmd_potential import atomic_force_deviation, max_force_deviation
from liquidscale.mlip.settings import rule_settings
from liquidscale.molecules import WATER, group_molecules, minimum_image


@pytest.fixture(scope="module")
def config():
    return validate_config({"systems": ["water", "co2"]})


def water_box(n_side: int = 3, spacing: float = 3.1, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Water molecules with random orientations on a cubic grid, wrapped into a periodic box."""
    rng = np.random.default_rng(seed)
    box = np.full(3, n_side * spacing)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    atoms = []
    for site in grid:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        atoms.append(site + WATER.geometry() @ q.T)
    return list(WATER.symbols) * len(grid), np.concatenate(atoms) % box, np.diag(box)


# ---- data -------------------------------------------------------------------------------------
def test_held_out_split_is_seeded_per_source_and_keeps_training_frames():
    first = data.held_out_mask(20, 0.25, seed=5, source_iteration=0)
    assert first.sum() == 5
    assert np.array_equal(first, data.held_out_mask(20, 0.25, seed=5, source_iteration=0))
    assert not np.array_equal(first, data.held_out_mask(20, 0.25, seed=5, source_iteration=1))
    assert data.held_out_mask(1, 0.5, 5, 0).sum() == 0  # a lone frame is never held out
    assert data.held_out_mask(0, 0.5, 5, 0).size == 0  # an iteration that selected nothing


def test_neighbour_counts_match_a_direct_count_under_periodic_boundaries():
    symbols, positions, cell = water_box()
    types = np.array([WATER.type_map.index(s) for s in symbols])
    frames = data.Frames(types, positions[None], cell[None], np.zeros(1), np.zeros((1, len(types), 3)), np.ones((1, len(types))))
    counts = data.neighbour_counts(frames, 3.5, 2)
    d = np.linalg.norm(minimum_image(positions[:, None] - positions[None], cell), axis=-1)
    np.fill_diagonal(d, np.inf)
    assert counts.tolist() == [int(((d < 3.5)[:, types == t]).sum(1).max()) for t in (0, 1)]


def test_auto_sel_covers_the_liquid_even_when_the_data_are_small_clusters():
    bulk = data.bulk_neighbour_estimate(6.0, 0.0334, [1, 2])
    assert bulk[0] == pytest.approx(4 / 3 * np.pi * 216 * 0.0334)
    sel = data.auto_sel(np.array([2, 4]), bulk)
    assert sel[0] >= 1.5 * bulk[0] and sel[1] >= 1.5 * bulk[1]
    assert all(s % 2 == 0 for s in sel)
    assert data.auto_sel(np.array([100, 4]), bulk)[0] >= 150


# ---- training input and settings ---------------------------------------------------------------
def test_ensemble_members_differ_only_in_their_seeds(config):
    mlip = config["mlip"]
    inputs = [training.training_input(mlip, ["O", "H"], [40, 80], ["/data/a"], training.member_seed(1, "water", 0, m)) for m in range(3)]
    seeds = {i["training"]["seed"] for i in inputs}
    assert len(seeds) == 3

    def without_seeds(block):
        if isinstance(block, dict):
            return {k: without_seeds(v) for k, v in block.items() if k != "seed"}
        return block

    assert without_seeds(inputs[0]) == without_seeds(inputs[1]) == without_seeds(inputs[2])
    assert inputs[0]["model"]["descriptor"]["seed"] == inputs[0]["training"]["seed"]


def test_se_atten_takes_one_total_sel_and_bad_settings_name_their_key(config):
    assert training.resolve_sel("se_atten", "auto", [30, 60], 2) == 90
    with pytest.raises(UserError, match="mlip.descriptor.sel"):
        training.resolve_sel("se_e2_a", [30], [30, 60], 2)
    mlip = {**config["mlip"], "training": {**config["mlip"]["training"], "decay_steps": 10, "steps": 5}}
    with pytest.raises(UserError, match="mlip.training.decay_steps"):
        training.training_input(mlip, ["O", "H"], [4, 8], [], 1)


def test_rule_settings_isolate_what_each_action_reads(config):
    changed = {**config, "mlip": {**config["mlip"], "select": {**config["mlip"]["select"], "trust_lo": 0.2}, "iterations": 9}}
    for action in ("data", "train", "test", "explore"):
        assert rule_settings(config, "water", action) == rule_settings(changed, "water", action)
    assert rule_settings(config, "water", "select") != rule_settings(changed, "water", "select")
    assert "sampling" in rule_settings(config, "water", "explore")


# ---- exploration state points -----------------------------------------------------------------
def test_state_points_span_temperatures_densities_slabs_and_external_potentials(config):
    sampling = {"potentials": config["sampling"]["potentials"], "water": config["sampling"]["water"]}
    explore = {**config["mlip"]["explore"], "molecules": 64, "temperatures": 2, "densities": 3, "external_potentials": 2}
    replicas = exploration.state_points("water", explore, sampling, (300.0, 600.0), 7, 0, rcut=4.0)
    assert len(replicas) == 2 * (3 + 1 + 2)
    assert {r.temperature for r in replicas} == {300.0, 600.0}
    low, high = config["sampling"]["water"]["density_range"]
    bulk = sorted({r.density for r in replicas if r.kind == "bulk"})
    assert bulk[0] == pytest.approx(low) and bulk[-1] == pytest.approx(high)
    for r in replicas:
        volume = np.prod(r.cell_lengths) * r.slab_width
        assert 64 / volume == pytest.approx(r.density)
    assert all(r.external is not None and r.external.length == pytest.approx(r.cell_lengths[2]) for r in replicas if r.kind == "external")
    assert len({r.seed for r in replicas}) == len(replicas)
    with pytest.raises(UserError, match="mlip.explore.molecules"):
        exploration.state_points("water", {**explore, "molecules": 8}, sampling, (300.0, 600.0), 7, 0, rcut=6.0)


# ---- model deviation and selection -------------------------------------------------------------
def test_force_deviation_is_dpgen_definition():
    forces = np.zeros((2, 1, 3, 3))
    forces[0, 0, 1] = [1.0, 0, 0]
    forces[1, 0, 1] = [-1.0, 0, 0]
    per_atom = atomic_force_deviation(forces)
    assert per_atom[0].tolist() == [0.0, 1.0, 0.0]
    deviation, atom = max_force_deviation(forces)
    assert deviation.tolist() == [1.0] and atom.tolist() == [1]


def test_classification_and_fractions_count_failed_replicas():
    labels = selection.classify(np.array([0.01, 0.2, 0.5, np.nan]), 0.1, 0.3)
    assert labels.tolist() == ["accurate", "candidate", "failed", "failed"]
    frac = selection.fractions(labels, failed_replica_frames=4)
    assert frac == {"accurate": 1 / 8, "candidate": 1 / 8, "failed": 6 / 8}


ENVIRONMENT = {"core_radius": 1.2, "shell": 2.0}


def test_candidate_is_the_complete_environment_of_the_uncertain_atom_across_the_boundary():
    symbols, positions, cell = water_box()
    atom = 0  # an O at the box corner: its neighbours sit across periodic boundaries
    cluster = selection.cut_candidate(symbols, positions, cell, WATER, atom, ENVIRONMENT, frame=0, deviation=0.2)
    assert group_molecules(cluster.symbols, cluster.positions, WATER).intact
    assert cluster.core.tolist()[:3] == [True, True, True] and cluster.core.sum() == 3  # the O's own molecule, nothing else within 1.2 Å
    # every atom of the box within core_radius + shell of the atom (nearest image) is in the cluster
    reach = ENVIRONMENT["core_radius"] + ENVIRONMENT["shell"]
    in_box = np.linalg.norm(minimum_image(positions - positions[atom], cell), axis=1) <= reach
    assert (np.linalg.norm(cluster.positions, axis=1) <= reach).sum() == in_box.sum()
    broken = positions.copy()
    broken[1] += 3.0  # an H torn from its O: nothing whole to cut
    assert selection.cut_candidate(symbols, broken, cell, WATER, atom, ENVIRONMENT, frame=0, deviation=0.2) is None


def test_fingerprint_is_invariant_and_separates_different_clusters():
    symbols, positions, cell = water_box()
    a = selection.cut_candidate(symbols, positions, cell, WATER, 0, ENVIRONMENT, 0, 0.2)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    order = rng.permutation(len(a.symbols))
    fa = selection.fingerprint(a.symbols, a.positions, WATER.type_map, 12.0)
    fb = selection.fingerprint([a.symbols[i] for i in order], (a.positions @ q.T + 5.0)[order], WATER.type_map, 12.0)
    assert np.linalg.norm(fa - fb) < 1e-10
    other = selection.cut_candidate(*water_box(seed=3), WATER, 0, ENVIRONMENT, 0, 0.2)
    fo = selection.fingerprint(other.symbols, other.positions, WATER.type_map, 12.0)
    assert np.linalg.norm(fa - fo) > 0.1  # the default mlip.select.min_separation


def test_farthest_point_selection_skips_near_duplicates_and_respects_the_cap():
    features = np.array([[0.0, 0.0], [0.0, 0.01], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    priority = np.array([0.1, 0.9, 0.2, 0.2, 0.2])
    chosen = selection.farthest_point_selection(features, priority, cap=10, min_separation=0.1)
    assert chosen[0] == 1 and 0 not in chosen and sorted(chosen) == [1, 2, 3, 4]
    assert len(selection.farthest_point_selection(features, priority, cap=2, min_separation=0.1)) == 2


def test_converged_iteration_selects_nothing_and_writes_an_empty_file(tmp_path, config):
    symbols, positions, cell = water_box()
    select = {**config["mlip"]["select"], "converged_accurate_fraction": 0.5}
    deviation = np.array([0.01, 0.01, 0.01, 0.2])
    frames = [positions] * 4
    cells = [np.diag(cell)] * 4
    clusters, report = selection.select_clusters(symbols, frames, cells, deviation, np.zeros(4, dtype=int), WATER, select, ENVIRONMENT)
    assert report["converged"] and clusters == [] and report["accurate"] == 0.75
    # with a bulk bound, the accurate fraction alone no longer converges: the bulk error must be below it too
    bounded = {**select, "converged_bulk_force_rmse": 0.1}
    for bulk, converged in ((0.2, False), (0.05, True), (float("nan"), False)):
        chosen, report = selection.select_clusters(symbols, frames, cells, deviation, np.zeros(4, dtype=int), WATER, bounded, ENVIRONMENT, bulk_force_rmse=bulk)
        assert report["converged"] is converged and (chosen == []) is converged
    path = tmp_path / "selected.extxyz"
    selection.write_clusters(path, clusters, "water", 0)
    assert path.read_text() == ""


def test_selected_clusters_are_read_by_the_reference_stage(tmp_path, config):
    from liquidscale.reference.configurations import read_extxyz

    symbols, positions, cell = water_box()
    frames = [positions, positions + 0.01, water_box(seed=3)[1]]
    deviation = np.array([0.2, 0.2, 0.25])
    atoms = np.array([0, 0, 3])
    clusters, report = selection.select_clusters(symbols, frames, [np.diag(cell)] * 3, deviation, atoms, WATER, config["mlip"]["select"], ENVIRONMENT)
    assert report["candidate"] == 1.0 and not report["converged"]
    assert len(clusters) == 2  # frames 0 and 1 differ by a translation: one of them is a near-duplicate
    path = tmp_path / "selected.extxyz"
    selection.write_clusters(path, clusters, "water", 0)
    read = read_extxyz(path, WATER, source="mlip")
    assert len(read) == 2
    assert np.allclose(read[0].positions, clusters[0].positions)
    assert np.array_equal(read[0].core, clusters[0].core) and read[0].info["kind"] == "environment"
    assert read[1].info["max_devi_f"] == pytest.approx(0.25)


@pytest.mark.parametrize("descriptor", ["se_e2_a", "se_atten"])
def test_training_input_passes_deepmds_own_argument_check(config, descriptor):
    from deepmd.utils.argcheck import normalize

    mlip = {**config["mlip"], "descriptor": {**config["mlip"]["descriptor"], "type": descriptor}}
    sel = training.resolve_sel(descriptor, "auto", [46, 92], 2)
    normalize(training.training_input(mlip, ["O", "H"], sel, ["/data/a"], 3))
