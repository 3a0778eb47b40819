"""Reference-stage outputs through the CLI: shards, deepmd/npy round trip, extxyz, CSVs, provenance.

Budget: about 10 s on one core (HF/sto-3g on water monomers and dimers).
"""

import json

import ase
import ase.io
import dpdata
import numpy as np
import pandas as pd
import pytest

from liquidscale.cli import main
from liquidscale.config import validate_config
from liquidscale.errors import UserError
from liquidscale.molecules import WATER
from liquidscale.reference import action_settings
from liquidscale.mlip.data import register_atom_pref
from liquidscale.reference.output import check_complete, read_labels, sort_by_type
from builders import label_reference_iteration, write_radical

pytest.importorskip("pyscf")

CONFIG = {
    "systems": ["water"],
    "reference": {
        "method": {"xc": "HF", "basis": "sto-3g", "conv_tol": 1e-9},
        "initial": {"cluster_sizes": [1, 2], "frames_per_size": 2},
        "environment": {"core_radius": 1.2, "shell": 1.5, "shell_force_weight": 0.25, "bulk_frames": 1, "bulk_test_frames": 1, "bulk_molecules": 16},
        "shards": 2,
    },
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """Run configurations -> label (2 shards) -> collect for water: 4 clusters, a bulk environment to train on
    and one held out, and one unlabellable extra frame."""
    root = tmp_path_factory.mktemp("reference")
    extra = root / "extra.extxyz"
    write_radical(extra)
    config = validate_config(dict(CONFIG, reference=dict(CONFIG["reference"], extra_configurations={"water": str(extra)})))
    return label_reference_iteration(config, root / "results" / "water" / "reference" / "iter000")


def test_every_frame_is_labelled_or_failed(campaign):
    summary = pd.read_csv(campaign / "summary.csv")
    failures = pd.read_csv(campaign / "failures.csv")
    assert list(summary["frame"]) == [0, 1, 2, 3, 4, 5]
    assert set(summary["shard"]) == {0, 1}  # shards balance cost (atoms^3): the larger cuts spread out
    assert list(summary["source"][4:]) == ["bulk", "bulk"]
    assert list(failures["frame"]) == [6] and failures["source"][0] == "radical"
    assert "cannot build molecule" in failures["reason"][0]
    assert set(summary["scf_attempt"]) == {"diis"}


def test_deepmd_npy_round_trips_the_labels(campaign):
    labels = read_labels(campaign / "labels.extxyz")
    summary = pd.read_csv(campaign / "summary.csv")
    register_atom_pref()
    folders = sorted(p.parent for p in (campaign / "data").rglob("type.raw"))
    assert {p.parent.name for p in folders} == {"clusters", "environments", "bulk"}
    data = {f"{p.parent.name}/{p.name}": dpdata.LabeledSystem(str(p), fmt="deepmd/npy") for p in folders}
    assert sorted(summary["data_folder"]) == sorted(f"{k}" for k, system in data.items() for _ in range(len(system)))
    for atoms, row in zip(labels, summary.itertuples()):
        system = data[row.data_folder]
        assert system["atom_names"] == ["O", "H"] and system.nopbc
        order = sort_by_type(atoms, ["O", "H"])
        i = row.index_in_data
        np.testing.assert_allclose(system["coords"][i], atoms.get_positions()[order], atol=1e-12)
        np.testing.assert_allclose(system["forces"][i], atoms.get_forces()[order], atol=1e-12)
        assert system["energies"][i] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        assert row.energy_eV == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        assert [system["atom_names"][t] for t in system["atom_types"]] == sorted(atoms.get_chemical_symbols(), key=["O", "H"].index)
        # DeePMD's per-atom force weights: 1 on every atom of a cluster and on an environment's core, the shell
        # weight (0.25) on a training environment's shell, 0 on a held-out bulk environment's shell
        core = atoms.arrays["core"] if "core" in atoms.arrays else np.ones(len(atoms), dtype=bool)
        shell_weight = 0.0 if row.data_folder.startswith("bulk/") else 0.25
        expected = np.where(core, 1.0, shell_weight)[order]
        np.testing.assert_array_equal(system["atom_pref"][i], np.repeat(expected[:, None], 3, axis=1))
        assert (row.data_folder.split("/")[0] == "clusters") == ("core" not in atoms.arrays)


def test_labels_equal_a_direct_calculation(campaign):
    """The extxyz labels are what PySCF computes for those coordinates (to the 1e-8 extxyz precision)."""
    from liquidscale.reference.qm import label

    atoms = read_labels(campaign / "labels.extxyz")[2]
    method = validate_config(CONFIG)["reference"]["method"]
    direct = label(atoms.get_chemical_symbols(), atoms.get_positions(), method)
    assert direct.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(direct.forces, atoms.get_forces(), atol=1e-6)


def test_configurations_feed_back_and_provenance(campaign):
    configurations = ase.io.read(campaign / "configurations.extxyz", index=":")
    labels = read_labels(campaign / "labels.extxyz")
    assert len(configurations) == 7
    for conf, lab in zip(configurations, labels):
        np.testing.assert_array_equal(conf.get_positions(), lab.get_positions())
    record = json.loads((campaign / "provenance.json").read_text())
    assert record["method"]["basis"] == "sto-3g" and record["method"]["xc"] == "HF"
    assert record["n_labelled"] == 6 and record["n_failed"] == 1
    assert record["packages"]["pyscf"] and record["packages"]["dpdata"]
    assert record["seeds"]["seed"] == validate_config(CONFIG)["seed"]
    assert len(record["config_hash"]) == 64 and "configurations" in record["upstream_hashes"]


def test_lost_frames_are_an_error():
    labels = [ase.Atoms("OH2", positions=WATER.geometry(), info={"frame": 0})]
    check_complete(2, labels, [{"frame": 1}])
    with pytest.raises(UserError, match=r"missing frames: \[1\]"):
        check_complete(2, labels, [])
    with pytest.raises(UserError, match="exactly once"):
        check_complete(1, labels, [{"frame": 0}])


def test_bad_shard_index_is_a_user_error(campaign, capsys):
    config = validate_config(CONFIG)
    settings = json.dumps(action_settings(config, "water", "label"))
    args = ["reference", "label", "--settings", settings, "--configurations", str(campaign / "configurations.extxyz"), "--shard", "2", "--out", "x"]
    assert main(args) == 2
    assert "'reference.shards' is 2" in capsys.readouterr().err


def test_an_empty_selection_gives_an_empty_iteration(tmp_path):
    """The mlip stage may select nothing: the iteration then has empty, well-formed outputs."""
    config = validate_config(CONFIG)
    it = tmp_path / "iter001"
    confs = it / "configurations.extxyz"
    it.mkdir()
    confs.write_text("")
    shard = str(it / "shards" / "shard00")
    label = json.dumps(action_settings(config, "water", "label"))
    assert main(["reference", "label", "--settings", label, "--configurations", str(confs), "--shard", "0", "--out", shard]) == 0
    collect = json.dumps(action_settings(config, "water", "collect"))
    assert main(["reference", "collect", "--settings", collect, "--configurations", str(confs), "--out", str(it), shard]) == 0
    assert list((it / "data").iterdir()) == []
    assert read_labels(it / "labels.extxyz") == []
    assert pd.read_csv(it / "summary.csv").empty and "energy_eV" in pd.read_csv(it / "summary.csv").columns
    assert json.loads((it / "provenance.json").read_text())["n_frames"] == 0


def test_truncated_labels_are_a_user_error_naming_the_file(campaign, tmp_path):
    victim = tmp_path / "labels.extxyz"
    text = (campaign / "labels.extxyz").read_bytes()
    victim.write_bytes(text[: len(text) // 2])
    with pytest.raises(UserError, match=str(victim)):
        read_labels(victim)
