"""What complete environments buy: a DeePMD model trained on gas-phase clusters only against one trained on the same
clusters plus bulk environments, both tested on the core atoms of held-out bulk environments (issue 15).

Water, HF/STO-3G labels through the reference stage's own labeller (cheap enough for ~100 labels on one core; the
comparison, not the level, is the point). Environments are cut by ``reference.environment``'s rule from packed
periodic boxes at 0.033 Å^-3 with the shell equal to the descriptor's rcut (3 Å), so a core atom's whole descriptor
sphere is inside its cut, as in production. The environments' shell atoms are trained on with each of
``--shell-weights`` (``reference.environment.shell_force_weight``; 0 is core atoms only), through the reference stage's
own ``write_data``; every model has the same size, seed and number of steps. Also printed: how much a core atom's
force moves when the same cut grows (the cut is far enough away) against how much its boundary atoms' forces move.
Run: ``python bench/bulk_environments.py``; ``--steps N --seeds 3 4`` trains each model longer and once per seed, to
tell the difference from training noise; ``--labels DIR`` keeps the labels (extxyz) in DIR and reuses them when it
already holds them (``--steps 12000 --seeds 3``, three models: ~28 min on one core beside other jobs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from liquidscale.config import validate_config
from liquidscale.mlip import data, training
from liquidscale.molecules import WATER, cut_environment
from liquidscale.reference.configurations import bulk_environments, initial_clusters, number_frames, packed_box, write_extxyz
from liquidscale.reference.output import read_labels, write_data
from liquidscale.reference.qm import label, label_shard

METHOD = validate_config({"reference": {"method": {"xc": "HF", "basis": "sto-3g", "density_fit": False}}})["reference"]["method"]
INITIAL = {"cluster_sizes": [1, 2, 3, 4], "frames_per_size": 16, "min_distance": 1.6, "density": 0.02, "bond_jitter": 0.03, "angle_jitter": 4.0}
RCUT = 3.0
ENVIRONMENT = {"core_radius": 1.2, "shell": RCUT, "bulk_molecules": 32}
DENSITY = 0.033
TRAIN_ENVIRONMENTS, TEST_ENVIRONMENTS = 32, 16
STEPS = 4000


def labelled(frames, path: Path) -> None:
    """Label frames with the reference stage's labeller into an extxyz file (core masks travel with it)."""
    atoms, failures = label_shard(number_frames(frames), METHOD, WATER.type_map, 0, log=lambda *_: None)
    assert not failures, failures
    write_extxyz(path, atoms)


def train(systems: list[Path], workdir: Path, steps: int, seed: int) -> Path:
    mlip = validate_config({
        "mlip": {"descriptor": {"rcut": RCUT, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4}, "fitting_neuron": [32, 32],
                 "training": {"steps": steps, "decay_steps": steps // 20, "start_lr": 0.01, "stop_lr": 1e-4, "start_pref_e": 0.5, "start_pref_f": 50.0}},
    })["mlip"]
    workdir.mkdir(parents=True)
    dp_input = training.training_input(mlip, WATER.type_map, [12, 24], [str(p.resolve()) for p in systems], seed=seed)
    (workdir / "input.json").write_text(json.dumps(dp_input))
    return training.train_and_freeze(workdir / "input.json", workdir, 1)


def core_force_convergence(seed: int = 7) -> list[tuple[float, int, float, float]]:
    """Per shell: atoms in the cut, max |dF| over its core atoms and median |dF| over its boundary atoms, each
    against the same atoms in a cut with a 4.2 Å shell (eV/Å)."""
    positions, cell = packed_box(WATER, 48, DENSITY, np.random.default_rng(seed), INITIAL)
    symbols = list(WATER.symbols) * 48
    cuts = {shell: cut_environment(symbols, positions, WATER, 0, ENVIRONMENT["core_radius"], shell, cell) for shell in (1.0, 2.0, 3.0, 4.2)}
    forces = {shell: label(s, x, METHOD).forces for shell, (s, x, _) in cuts.items()}
    reference_x = cuts[4.2][1]
    rows = []
    for shell in (1.0, 2.0, 3.0):
        _, x, core = cuts[shell]
        same = [int(np.argmin(np.linalg.norm(reference_x - xi, axis=1))) for xi in x]
        moved = np.linalg.norm(forces[shell] - forces[4.2][same], axis=1)
        rows.append((shell, len(x), float(moved[core].max()), float(np.median(moved[~core]))))
    return rows


def write_labels(atoms_list: list, folder: Path, shell_weight: float) -> list[Path]:
    """The reference stage's deepmd/npy output of labelled frames, and its system folders."""
    write_data(folder, atoms_list, WATER.type_map, shell_weight)
    return data.system_folders([folder])


def force_labels(folders: list[Path]) -> float:
    """Trained force components / 3: the sum of the atoms' force weights."""
    return sum(float(data.load_frames(p, WATER.type_map).weights.sum()) for p in folders)


def main(steps: int, seeds: list[int], shell_weights: list[float], labels: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = labels or root
        store.mkdir(parents=True, exist_ok=True)
        train_env = bulk_environments(WATER, {**ENVIRONMENT, "bulk_frames": TRAIN_ENVIRONMENTS, "bulk_test_frames": 0}, INITIAL, DENSITY, seed=2)
        test_env = bulk_environments(WATER, {**ENVIRONMENT, "bulk_frames": 0, "bulk_test_frames": TEST_ENVIRONMENTS}, INITIAL, DENSITY, seed=3)
        for name, frames in (("clusters", lambda: initial_clusters(WATER, INITIAL, seed=1)), ("environments", lambda: train_env), ("bulk", lambda: test_env)):
            if not (store / f"{name}.extxyz").is_file():
                labelled(frames(), store / f"{name}.extxyz")
        # the reference stage's own output: write_data weighs an environment's shell atoms, keeps a held-out one's core mask
        held_out_folders = write_labels(read_labels(store / "bulk.extxyz"), root / "held_out", 0.0)
        clusters = write_labels(read_labels(store / "clusters.extxyz"), root / "clusters", 0.0)
        environments = {w: write_labels(read_labels(store / "environments.extxyz"), root / f"environments_{w}", w) for w in shell_weights}
        sizes = [len(f.symbols) for f in train_env + test_env]
        core_atoms = int(sum(f.core.sum() for f in train_env))
        print(f"water, HF/STO-3G; {len(clusters)} cluster sizes x {INITIAL['frames_per_size']} frames ({force_labels(clusters):.0f} atoms with force "
              f"labels); {TRAIN_ENVIRONMENTS} training and {TEST_ENVIRONMENTS} held-out bulk environments of {min(sizes)}-{max(sizes)} atoms "
              f"({core_atoms} core atoms of {sum(len(f.symbols) for f in train_env)}; core {ENVIRONMENT['core_radius']} Å, shell = rcut = {RCUT} Å); "
              f"se_e2_a 8x16 / 32x32, {steps} steps, seeds {seeds}")
        held_out = [data.load_frames(p, WATER.type_map) for p in held_out_folders]
        scale = np.sqrt(sum(float((f.weights[..., None] * f.forces**2).sum()) for f in held_out) / sum(3 * float(f.weights.sum()) for f in held_out))
        training_sets = {"clusters only": clusters}
        training_sets |= {f"clusters + bulk environments, shell atoms' force weight {w:g}": clusters + environments[w] for w in shell_weights}
        print("| trained on | held-out bulk, core-atom force RMSE (eV/Å) per seed | mean | RMS core force (eV/Å) |")
        print("| --- | --- | --- | --- |")
        for k, (name, systems) in enumerate(training_sets.items()):
            errors = [training.held_out_errors(train(systems, root / f"model{k}-{seed}", steps, seed), root / "held_out" / "bulk", WATER.type_map)["force_rmse"]
                      for seed in seeds]
            print(f"| {name} | {', '.join(f'{e:.3f}' for e in errors)} | {np.mean(errors):.3f} | {scale:.3f} |", flush=True)
    print("\ncore forces as the cut grows (against a 4.2 Å shell, HF/STO-3G):")
    print("| shell (Å) | atoms | core atoms: max abs(dF) (eV/Å) | boundary atoms: median abs(dF) (eV/Å) |")
    print("| --- | --- | --- | --- |")
    for shell, atoms, core, boundary in core_force_convergence():
        print(f"| {shell} | {atoms} | {core:.3f} | {boundary:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="DeePMD training steps per model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3], help="one training of each model per seed")
    parser.add_argument("--shell-weights", type=float, nargs="+", default=[0.0, 1.0], help="reference.environment.shell_force_weight values to train with")
    parser.add_argument("--labels", type=Path, help="folder that keeps the labels (reused when it already holds them)")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.seeds, arguments.shell_weights, arguments.labels)
