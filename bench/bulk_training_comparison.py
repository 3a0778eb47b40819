"""Does training on core labels of liquid cuts help a model in the liquid? A toy-sized measurement.

HF/STO-3G labels of 32 gas-phase water clusters (1-4 molecules) and of 16 bulk-like cuts (core radius
3 Å, cut at 3.5 Å, from boxes packed at 0.033 Å^-3); the cuts with core labels are split in half. Two
tiny DeePMD models (rcut 3 Å, 800 steps) per seed: one on the gas-phase clusters only, one also on the
training half's core labels; each is scored by the force RMSE on the core atoms of the held-out half
(`liquidscale.mlip.training.core_force_rmse`). Prints one JSON line per seed and model. Run:
`python bench/bulk_training_comparison.py /tmp/comparison` (about 5 CPU minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from liquidscale.mlip import data
from liquidscale.mlip.training import core_force_rmse, dp_command, training_input
from liquidscale.molecules import WATER
from liquidscale.reference.configurations import bulk_environments, initial_clusters
from liquidscale.reference.output import labelled_atoms, write_data
from liquidscale.reference.qm import label

METHOD = {"xc": "HF", "basis": "sto-3g", "density_fit": False, "conv_tol": 1e-8, "max_cycle": 100, "grid_level": 1}
MLIP = {
    "descriptor": {"type": "se_e2_a", "rcut": 3.0, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4},
    "fitting_neuron": [32, 32],
    "training": {"steps": 800, "decay_steps": 80, "start_lr": 0.01, "stop_lr": 1e-4, "start_pref_e": 0.5, "limit_pref_e": 1.0,
                 "start_pref_f": 50.0, "limit_pref_f": 1.0, "batch_size": 1},
}
SEEDS = (3, 4, 5, 6)


def labelled(frames):
    return [labelled_atoms(f, (result := label(f.symbols, f.positions, METHOD)).energy, result.forces) for f in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    root = parser.parse_args().workdir
    type_map = list(WATER.type_map)
    clusters = initial_clusters(WATER, {"cluster_sizes": [1, 2, 3, 4], "frames_per_size": 8, "min_distance": 1.6, "density": 0.02,
                                        "bond_jitter": 0.03, "angle_jitter": 4.0}, seed=1)
    cuts = [f for f in bulk_environments(WATER, {"radius": 3.5, "core_radius": 3.0, "bulk_frames": 16, "bulk_molecules": 16},
                                         {"density": 0.033, "min_separation": 2.6}, seed=1) if not f.complete]
    gas, bulk = labelled(clusters), labelled(cuts)
    train_bulk, held_out = bulk[: len(bulk) // 2], bulk[len(bulk) // 2 :]
    write_data(root / "held_out", held_out, type_map)
    env = dict(os.environ, DEVICE="cpu", OMP_NUM_THREADS="1", DP_INTRA_OP_PARALLELISM_THREADS="1", DP_INTER_OP_PARALLELISM_THREADS="1")
    for name, atoms in (("gas_clusters", gas), ("gas_clusters_and_core_labels", gas + train_bulk)):
        write_data(root / name, atoms, type_map)
        data.split_data([(0, root / name)], type_map, 0.0, 1, root / f"{name}_split")
        folders = [str(p.resolve()) for p in data.system_folders([root / f"{name}_split" / "train"])]
        for seed in SEEDS:
            work = root / f"{name}_seed{seed}"
            work.mkdir()
            (work / "input.json").write_text(json.dumps(training_input(MLIP, type_map, [20, 40], folders, seed=seed)))
            for command in (["train", "input.json"], ["freeze", "-o", "model.pth"]):
                subprocess.run([*dp_command(), *command], cwd=work, env=env, check=True, capture_output=True)
            score = core_force_rmse(work / "model.pth", root / "held_out" / data.CORE_FOLDER, type_map)
            print(json.dumps({"model": name, "seed": seed, "held_out_bulk_frames": score["frames"], "core_force_rmse": score["force_rmse"]}), flush=True)


if __name__ == "__main__":
    main()
