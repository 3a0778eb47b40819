"""Trained DeePMD ensembles on a tiny labelled set (water clusters, HF/STO-3G through the reference
stage's labeller), driven through the ``liquidscale mlip`` CLI as the rules drive it.

One ensemble of 2 tiny models is trained once per module; the loop test adds a second iteration.
Budget: about 4 minutes of CPU on one core (8 min wall on the loaded shared machine) (two 2000-step trainings, two 100-step trainings, PySCF labels).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from liquidscale.cli import main
from liquidscale.config import validate_config
from liquidscale.io import read_json
from liquidscale.mlip import data
from liquidscale.mlip.settings import rule_settings
from liquidscale.molecules import WATER, group_molecules

pytestmark = pytest.mark.slow

METHOD = {"xc": "HF", "basis": "sto-3g", "density_fit": False, "conv_tol": 1e-9}
# toy complete environments: the selected atom's molecule (core) in a 1.5 Å shell; 2 bulk cuts trained on, 2 held out;
# core atoms only (shell weight 0), the case the force-weight test corrupts the shell of
ENVIRONMENT = {"core_radius": 1.2, "shell": 1.5, "shell_force_weight": 0.0, "bulk_frames": 2, "bulk_test_frames": 2, "bulk_molecules": 16}
TRAIN_STEPS = 2000


def make_config(steps: int) -> dict:
    return validate_config(
        {
            "systems": ["water"],
            "seed": 11,
            "water": {"temperature_range": [250.0, 400.0]},
            "reference": {"method": METHOD, "initial": {"cluster_sizes": [1, 2], "frames_per_size": 16, "bond_jitter": 0.03, "angle_jitter": 4.0},
                          "environment": ENVIRONMENT, "shards": 1},
            "mlip": {
                "ensemble_size": 2,
                "descriptor": {"rcut": 4.0, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4},
                "fitting_neuron": [32, 32],
                "training": {"steps": steps, "decay_steps": max(1, steps // 15), "start_lr": 0.01, "stop_lr": 1e-4, "start_pref_e": 0.5, "start_pref_f": 50.0, "test_fraction": 0.2},
                "explore": {"molecules": 32, "temperatures": 1, "densities": 1, "external_potentials": 1, "steps": 20, "frames": 2},
                "select": {"trust_lo": 0.02, "trust_hi": 50.0, "max_candidates": 2},
            },
        }
    )


def run(config: dict, action: str, *args: str, iteration: int = 0) -> None:
    settings = json.dumps(rule_settings(config, "water", action))
    assert main(["mlip", action, "--settings", settings, "--iteration", str(iteration), *args]) == 0


def label_into(frames, folder: Path) -> list:
    """Label frames with the reference stage's PySCF labeller and write its dpdata output."""
    from liquidscale.reference.configurations import number_frames
    from liquidscale.reference.output import write_data
    from liquidscale.reference.qm import label_shard

    method = validate_config({"reference": {"method": METHOD}})["reference"]["method"]
    atoms, failures = label_shard(number_frames(frames), method, WATER.type_map, 0, log=lambda *_: None)
    assert not failures
    write_data(folder, atoms, WATER.type_map, ENVIRONMENT["shell_force_weight"])
    return atoms


@pytest.fixture(scope="module")
def iteration0(tmp_path_factory):
    """Labelled clusters and bulk environments (reference iteration 0) and an ensemble of two models trained on them."""
    import torch

    from liquidscale.reference.configurations import bulk_environments, initial_clusters

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mlip")
    config = make_config(TRAIN_STEPS)
    reference = config["reference"]
    frames = initial_clusters(WATER, reference["initial"], config["seed"])
    frames += bulk_environments(WATER, reference["environment"], reference["initial"], 0.033, config["seed"])
    label_into(frames, root / "reference/iter000/data")
    it = root / "mlip/iter000"
    run(config, "data", "--reference", str(root / "reference/iter000/data"), "--out", str(it / "data"))
    for member in range(2):
        run(config, "train", "--member", str(member), "--data", str(it / "data"), "--out", str(it / f"model{member}"))
    models = [str(it / f"model{m}") for m in range(2)]
    run(config, "test", "--data", str(it / "data"), "--models", *models, "--out", str(it / "metrics.json"), "--figure", str(it / "learning_curve.png"))
    return root, config


def potentials(folder: Path, symbols):
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    return [DeepMDPotential(folder / f"model{m}" / "model.pth", symbols) for m in range(2)]


def frames_of(part: Path, kind: str = "") -> list[tuple[list[str], data.Frames]]:
    """(symbols, frames) of every system below ``part`` (only ``kind``'s, clusters or environments, if given)."""
    out = []
    for folder in data.system_folders([part]):
        if kind and f"_{kind}_" not in folder.name:
            continue
        frames = data.load_frames(folder, WATER.type_map)
        out.append(([WATER.type_map[t] for t in frames.atom_types], frames))
    return out


def own_errors(model_dir: Path, part: Path) -> tuple[float, float, float]:
    """Energy RMSE per atom, force RMSE on the weighted (core) atoms and the RMS of those reference forces."""
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    e_sq, f_sq, f_ref, n_frames, n_components = 0.0, 0.0, 0.0, 0, 0.0
    for symbols, frames in frames_of(part):
        energy, forces = DeepMDPotential(model_dir / "model.pth", symbols)(frames.coords, None)
        w = frames.weights[..., None]
        e_sq += float((((energy.numpy() - frames.energies) / len(symbols)) ** 2).sum())
        f_sq += float((w * (forces.numpy() - frames.forces) ** 2).sum())
        f_ref += float((w * frames.forces**2).sum())
        n_frames += len(frames.energies)
        n_components += 3 * float(frames.weights.sum())
    return np.sqrt(e_sq / n_frames), np.sqrt(f_sq / n_components), np.sqrt(f_ref / n_components)


def dp_test(model: Path, systems: list[Path], workdir: Path) -> dict[str, float]:
    """DeePMD's own ``dp --pt test`` (every atom counts): energy RMSE per atom and force RMSE, weighted average."""
    import re

    from liquidscale.mlip import training

    listing = workdir / "systems.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in systems))
    log = workdir / "dp_test.log"
    training.run_dp(["test", "-m", str(model.resolve()), "-f", str(listing), "-l", str(log)], workdir, workdir / "dp.log", 1)
    text = log.read_text()
    block = text[text.rfind("weighted average of errors"):] if "weighted average of errors" in text else text
    return {
        "energy_rmse_per_atom": float(re.search(r"Energy RMSE/Natoms\s*:\s*(\S+)", block).group(1)),
        "force_rmse": float(re.search(r"Force\s+RMSE\s*:\s*(\S+)", block).group(1)),
    }


def test_models_reproduce_their_training_forces(iteration0):
    root, _ = iteration0
    it = root / "mlip/iter000"
    summary = read_json(it / "data/summary.json")
    assert summary["frames"]["train"] + summary["frames"]["test"] == 32 + 2 and summary["frames"]["bulk"] == 2
    for member in range(2):
        energy_rmse, force_rmse, force_scale = own_errors(it / f"model{member}", it / "data/train")
        print(f"model{member}: train energy RMSE {energy_rmse:.4f} eV/atom, force RMSE {force_rmse:.3f} eV/Å (RMS force {force_scale:.3f})")
        assert force_rmse < 0.3 * force_scale  # better than 30% of the force magnitude after 1500 steps of a tiny net
        assert energy_rmse < 0.04  # eV/atom


def test_held_out_metrics_agree_with_deepmds_own_test_on_plain_clusters(iteration0, tmp_path):
    """On clusters (every atom weighted 1) our evaluation equals DeePMD's independent ``dp test``; on environments
    only the core atoms count, which ``dp test`` cannot do, so the metrics are ours."""
    import shutil

    from liquidscale.mlip import training

    root, _ = iteration0
    it = root / "mlip/iter000"
    metrics = read_json(it / "metrics.json")
    assert (it / "learning_curve.png").stat().st_size > 0
    clusters = tmp_path / "clusters"
    for folder in data.system_folders([it / "data/test"]):
        if "_clusters_" in folder.name:
            # all weights 1 here; dp test's batch loader repeats atom_pref per component itself (DeePMD-kit 3.2's
            # training loader does not), so it would reject the per-component file the training needs
            shutil.copytree(folder, clusters / folder.name, ignore=shutil.ignore_patterns("atom_pref.npy"))
    for member in metrics["members"]:
        assert member["held_out"]["frames"] == metrics["frames"]["test"] > 0 and member["bulk"]["frames"] == 2
        assert np.isfinite(member["bulk"]["force_rmse"])
        model = it / member["model"] / "model.pth"
        ours = training.held_out_errors(model, clusters, WATER.type_map)
        deepmd = dp_test(model, data.system_folders([clusters]), tmp_path)
        assert ours["energy_rmse_per_atom"] == pytest.approx(deepmd["energy_rmse_per_atom"], rel=1e-5)
        assert ours["force_rmse"] == pytest.approx(deepmd["force_rmse"], rel=1e-5)


def test_force_weights_reach_deepmds_loss(iteration0, tmp_path):
    """Forces of weight-0 atoms (an environment's shell) do not enter training: garbage there leaves DeePMD's
    training loss unchanged step for step, while the same garbage with every weight 1 changes it."""
    import shutil

    from liquidscale.mlip import training

    root, config = iteration0
    train = root / "mlip/iter000/data/train"
    environments = [p for p in data.system_folders([train]) if "_environments_" in p.name]
    assert environments

    def loss_curve(name: str, corrupt: bool, all_weights: bool) -> np.ndarray:
        copy = tmp_path / name / "train"
        shutil.copytree(train, copy)
        rng = np.random.default_rng(0)
        for folder in data.system_folders([copy]):
            if "_environments_" not in folder.name:
                continue
            for set_dir in folder.glob("set.*"):
                pref = np.load(set_dir / "atom_pref.npy")
                if corrupt:
                    forces = np.load(set_dir / "force.npy")
                    np.save(set_dir / "force.npy", np.where(pref == 0, rng.normal(0, 50.0, forces.shape), forces))
                if all_weights:
                    np.save(set_dir / "atom_pref.npy", np.ones_like(pref))
        mlip = {**config["mlip"], "training": {**config["mlip"]["training"], "steps": 40, "decay_steps": 10}}
        systems = [str(p.resolve()) for p in data.system_folders([copy])]
        dp_input = training.training_input(mlip, WATER.type_map, [16, 32], systems, seed=5)
        dp_input["training"]["disp_freq"] = 5
        workdir = tmp_path / name
        (workdir / "input.json").write_text(json.dumps(dp_input))
        training.run_dp(["train", "input.json"], workdir, workdir / "dp.log", 1)
        curve = training.read_lcurve(workdir / "lcurve.out")
        return np.stack([curve["rmse_e_trn"], training.force_column(curve)])

    clean = loss_curve("clean", corrupt=False, all_weights=False)
    assert np.array_equal(loss_curve("garbage_on_shell", corrupt=True, all_weights=False), clean)
    assert not np.allclose(loss_curve("garbage_weighted", corrupt=True, all_weights=True), clean, rtol=0.05)


def test_deviation_is_larger_out_of_distribution(iteration0):
    from liquidscale.mlip.deepmd_potential import ensemble_forces, max_force_deviation

    root, _ = iteration0
    it = root / "mlip/iter000"
    rng = np.random.default_rng(3)
    # plain clusters only: this module trains on core atoms only (shell weight 0), so a shell's deviation is large by design
    for symbols, frames in frames_of(it / "data/train", kind="clusters"):
        models = potentials(it, symbols)
        inside, _ = max_force_deviation(ensemble_forces(models, frames.coords))
        # out of distribution: bonds stretched by 25% about each O, plus 0.15 Å random displacements
        distorted = frames.coords.copy()
        oxygens = [i for i, s in enumerate(symbols) if s == "O"]
        for k, o in enumerate(oxygens):
            hydrogens = [h for h in range(len(symbols)) if symbols[h] == "H"][2 * k : 2 * k + 2]
            distorted[:, hydrogens] = frames.coords[:, [o]] + 1.25 * (frames.coords[:, hydrogens] - frames.coords[:, [o]])
        distorted += rng.normal(0, 0.15, distorted.shape)
        outside, _ = max_force_deviation(ensemble_forces(models, distorted))
        print(f"{len(symbols)} atoms: median deviation {np.median(inside):.3f} (training) vs {np.median(outside):.3f} eV/Å (distorted)")
        assert np.median(outside) > 2.0 * np.median(inside)


def test_nve_md_conserves_energy(iteration0):
    """Velocity Verlet (the engine without friction) on training dimers in a periodic box, 0.1 ps at 0.25 fs."""
    from liquidscale.md.engine import FailureChecks, LangevinEngine
    from liquidscale.md.potential import METAL

    root, _ = iteration0
    it = root / "mlip/iter000"
    symbols, frames = next((s, f) for s, f in frames_of(it / "data/train", kind="clusters") if len(s) == 6)
    # dpdata sorts atoms by type (O O H H H H); the engine wants them molecule by molecule (O H H)
    order = group_molecules(symbols, frames.coords[0], WATER).members.ravel()
    positions = frames.coords[:4][:, order] + 6.0
    symbols = [symbols[i] for i in order]
    model = potentials(it, symbols)[0]
    engine = LangevinEngine(
        potential=model,
        symbols=symbols,
        masses=[WATER.masses[0], WATER.masses[1], WATER.masses[2]] * 2,
        site_mask=[s == "O" for s in symbols],
        positions=positions,
        cell_lengths=np.full((4, 3), 12.0),
        temperatures=[150.0] * 4,
        seeds=[1, 2, 3, 4],
        units=METAL,
        timestep=0.00025,
        friction=0.0,
        checks=FailureChecks(max_temperature_ratio=100.0),  # no thermostat: the training frames' strain heats them up
    )
    total = []
    engine.run(400, callback=lambda e: total.append((e.potential_energy() + e.kinetic_energy()).numpy().copy()), every=10)
    assert not engine.failures
    total = np.array(total) / len(symbols)  # eV per atom, (40, 4)
    time = 0.00025 * 10 * np.arange(1, len(total) + 1)
    drift = np.abs(np.polyfit(time, total, 1)[0])
    spread = total.std(axis=0)
    print(f"NVE drift {drift.max():.2e} eV/atom/ps, fluctuation {spread.max():.2e} eV/atom")
    assert drift.max() < 5e-3  # eV per atom per ps (measured ~7e-4)
    assert spread.max() < 1e-3  # eV per atom (measured ~1.4e-4)


def test_two_iteration_loop_feeds_selected_labelled_frames_into_training(iteration0):
    """explore -> select -> label (reference stage) -> iteration 1 data and training -> final models."""
    from liquidscale.reference.configurations import read_extxyz

    root, config0 = iteration0
    config = make_config(100)
    it0, it1 = root / "mlip/iter000", root / "mlip/iter001"
    models0 = [str(it0 / f"model{m}") for m in range(2)]
    run(config, "explore", "--models", *models0, "--out", str(it0 / "explore"))
    run(config, "select", "--explore", str(it0 / "explore"), "--metrics", str(it0 / "metrics.json"), "--out", str(it0 / "selected.extxyz"), "--report", str(it0 / "selection.json"))
    report = read_json(it0 / "selection.json")
    assert report["accurate"] + report["candidate"] + report["failed"] == pytest.approx(1.0)
    selected = read_extxyz(it0 / "selected.extxyz", WATER, source="mlip")
    assert 1 <= len(selected) == report["selected"] <= 2
    assert all(frame.core is not None and frame.core.any() for frame in selected)  # complete environments, core marked
    labelled = label_into(selected, root / "reference/iter001/data")

    references = [str(root / f"reference/iter{k:03d}/data") for k in range(2)]
    run(config, "data", "--reference", *references, "--out", str(it1 / "data"), iteration=1)
    # atom order differs (dpdata sorts by type), so compare frames by their sorted coordinates
    split = frames_of(it1 / "data/train") + frames_of(it1 / "data/test")
    merged = {tuple(np.round(np.sort(c.ravel()), 6)) for _, f in split for c in f.coords}
    for atoms in labelled:
        assert tuple(np.round(np.sort(atoms.get_positions().ravel()), 6)) in merged
    summary = read_json(it1 / "data/summary.json")
    assert summary["frames"]["train"] + summary["frames"]["test"] == 34 + len(labelled) and summary["frames"]["bulk"] == 2
    assert summary["frames"]["train"] > read_json(it0 / "data/summary.json")["frames"]["train"]

    for member in range(2):
        run(config, "train", "--member", str(member), "--data", str(it1 / "data"), "--previous", str(it0 / f"model{member}"), "--out", str(it1 / f"model{member}"), iteration=1)
        trained_on = read_json(it1 / f"model{member}/input.json")["training"]["training_data"]["systems"]
        assert any("iter001_" in Path(p).name for p in trained_on)
        assert read_json(it1 / f"model{member}/member.json")["reused_from"] is None
    models1 = [str(it1 / f"model{m}") for m in range(2)]
    run(config, "test", "--data", str(it1 / "data"), "--models", *models1, "--out", str(it1 / "metrics.json"), "--figure", str(it1 / "learning_curve.png"), iteration=1)
    run(config, "explore", "--models", *models1, "--out", str(it1 / "explore"), iteration=1)
    run(config, "select", "--explore", str(it1 / "explore"), "--metrics", str(it1 / "metrics.json"), "--out", str(it1 / "selected.extxyz"), "--report", str(it1 / "selection.json"), iteration=1)
    final = root / "mlip/final"
    run(config, "final", "--iterations", str(it0), str(it1), "--out", str(final))
    metadata = read_json(final / "metadata.json")
    assert metadata["iteration"] == 1 and metadata["type_map"] == ["O", "H"] and metadata["rcut"] == 4.0
    assert set(metadata["training_data_hashes"]) == {"train", "iter000", "iter001"}
    assert [row["iteration"] for row in metadata["history"]] == [0, 1]
    assert (final / "model0.pth").is_file() and (final / "model1.pth").is_file() and (final / "convergence.png").is_file()
    # where each job ran is recorded (CI has no GPU, so auto ran on the CPU)
    assert [c["torch_device"] for c in metadata["training_compute"]] == ["cpu", "cpu"]
    assert read_json(it1 / "explore/explore.json")["provenance"]["compute"] == {"torch_device": "cpu", "precision": "float64", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    assert config0["mlip"]["descriptor"] == config["mlip"]["descriptor"]
