"""What an accelerator buys (issue 13, item 11): one short prepared script for a machine with a GPU.

Prints, on the device it finds (cuda when torch sees one, else cpu; every line says which):
1. the sampling engine's atom-steps/s against the replicas per batch B (1, 4, 16, 64), for the LJ fluid
   (500 atoms) and for DeePMD water of the demo's architecture (64 molecules), in float64 and float32,
   with the per-replica speed-up of batching (B against B = 1) beside each;
2. one DeePMD training step of the demo's architecture: seconds per step, from two training lengths
   differenced (start-up excluded), through the same `liquidscale mlip data/train` commands as the rules.

Self-contained: the water model is trained here on random labels of the package's own water clusters
(the timing needs the architecture, not a good fit), so no campaign has to be copied to the machine.
On a CPU (tests, CI) `--quick` keeps it to seconds: B up to 4, few steps.

    python bench/bench_gpu.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from liquidscale.cli import main as liquidscale
from liquidscale.config import validate_config
from liquidscale.mlip.settings import rule_settings

# the demo's DeePMD architecture (config/config.yaml) with sel fixed for a dense box (sel "auto" would be
# sized from the isolated training clusters)
DEMO_MLIP = {
    "descriptor": {"type": "se_e2_a", "rcut": 4.0, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4, "sel": [16, 32]},
    "fitting_neuron": [32, 32],
}


def training_config(steps: int) -> dict:
    return validate_config(
        {
            "systems": ["water"],
            "reference": {"initial": {"cluster_sizes": [2, 4], "frames_per_size": 8}},
            "mlip": {**DEMO_MLIP, "training": {"steps": steps, "decay_steps": max(1, steps // 10), "test_fraction": 0.2, "device": "auto"}},
        }
    )


def random_label_data(folder: Path) -> None:
    """dpdata folders of the package's initial water clusters with random energies and forces."""
    import dpdata

    from liquidscale.molecules import WATER
    from liquidscale.reference.configurations import initial_clusters

    config = training_config(10)
    rng = np.random.default_rng(0)
    by_size: dict[int, list] = {}
    for frame in initial_clusters(WATER, config["reference"]["initial"], config["seed"]):
        by_size.setdefault(len(frame.symbols), []).append(frame)
    for n, frames in by_size.items():
        symbols = frames[0].symbols
        order = np.argsort([WATER.type_map.index(s) for s in symbols], kind="stable")
        dpdata.LabeledSystem(
            data={
                "atom_names": list(WATER.type_map),
                "atom_numbs": [symbols.count(t) for t in WATER.type_map],
                "atom_types": np.sort([WATER.type_map.index(s) for s in symbols]),
                "orig": np.zeros(3),
                "cells": np.zeros((len(frames), 3, 3)),
                "coords": np.stack([f.positions[order] for f in frames]),
                "energies": rng.normal(size=len(frames)),
                "forces": rng.normal(size=(len(frames), n, 3)),
                "nopbc": True,
            }
        ).to_deepmd_npy(str(folder / f"n{n}"))


def train(root: Path, steps: int) -> tuple[float, Path]:
    """Wall seconds of `liquidscale mlip train` for ``steps`` steps, and the frozen model."""
    config = training_config(steps)
    data = root / f"data{steps}"
    assert liquidscale(["mlip", "data", "--settings", json.dumps(rule_settings(config, "water", "data")), "--reference", str(root / "reference"), "--out", str(data)]) == 0
    out = root / f"model{steps}"
    start = time.perf_counter()
    assert liquidscale(["mlip", "train", "--settings", json.dumps(rule_settings(config, "water", "train")), "--member", "0", "--data", str(data), "--out", str(out)]) == 0
    return time.perf_counter() - start, out / "model.pth"


def replicas(system: dict, b: int, device: str, dtype: str, potential):
    from liquidscale.md.engine import FailureChecks, LangevinEngine
    from liquidscale.sampling.initial import place_molecules

    s = system
    frames = np.stack([place_molecules(s["molecule"], s["n"], s["box"], np.random.default_rng(k), s["min_distance"]) for k in range(b)])
    checks = FailureChecks(every=10**9, min_distance=0.0, max_temperature_ratio=1e12)
    symbols = s["symbols"] * s["n"]
    return LangevinEngine(
        potential, symbols, np.tile(s["masses"], s["n"]), [True] * len(symbols), frames, np.repeat(s["box"][None], b, 0),
        [s["temperature"]] * b, list(range(b)), s["units"], s["timestep"], s["friction"], checks=checks, device=device, dtype=dtype,
    )  # fmt: skip


def atom_steps_per_second(system: dict, b: int, device: str, dtype: str, steps: int) -> float:
    import torch

    engine = replicas(system, b, device, dtype, system["potential"](device, dtype))
    engine.run(max(2, steps // 5))  # warm-up: kernels, neighbour lists
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    engine.run(steps)
    if device == "cuda":
        torch.cuda.synchronize()
    return b * engine.x.shape[1] * steps / (time.perf_counter() - start)


def systems(model: Path) -> list[dict]:
    from liquidscale.md.potential import METAL, REDUCED, LennardJones
    from liquidscale.mlip.deepmd_potential import DeepMDPotential
    from liquidscale.molecules import WATER

    lj_n, water_n = 500, 64
    return [
        {"label": f"LJ, {lj_n} atoms, rho 0.7", "n": lj_n, "molecule": np.zeros((1, 3)), "symbols": ["X"], "masses": np.ones(1),
         "box": np.full(3, (lj_n / 0.7) ** (1 / 3)), "min_distance": 0.9, "units": REDUCED, "temperature": 1.5, "timestep": 0.005, "friction": 1.0,
         "potential": lambda device, dtype: LennardJones(2.5)},
        {"label": f"DeePMD water (demo architecture), {water_n} molecules", "n": water_n, "molecule": WATER.geometry() - WATER.geometry()[0],
         "symbols": list(WATER.symbols), "masses": np.asarray(WATER.masses), "box": np.full(3, (water_n / 0.0334) ** (1 / 3)), "min_distance": 2.6,
         "units": METAL, "temperature": 300.0, "timestep": 0.00025, "friction": 5.0,
         "potential": lambda device, dtype: DeepMDPotential(model, list(WATER.symbols) * water_n, device, dtype)},
    ]  # fmt: skip


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="B up to 4 and few steps (CPU smoke run)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    batch_sizes, md_steps, train_steps = ((1, 4), 10, (10, 30)) if args.quick else ((1, 4, 16, 64), 200, (100, 600))
    print(f"device: {device} ({name}); torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = Path(tmp)
        random_label_data(root / "reference")
        (short, _), (long, model) = (train(root, steps) for steps in train_steps)
        per_step = (long - short) / (train_steps[1] - train_steps[0])
        print(f"DeePMD training (demo architecture, {device}): {per_step * 1e3:.1f} ms/step ({train_steps[1]} steps {long:.1f} s, {train_steps[0]} steps {short:.1f} s)")
        for system in systems(model):
            for dtype in ("float64", "float32"):
                rates = {b: atom_steps_per_second(system, b, device, dtype, md_steps) for b in batch_sizes}
                row = ", ".join(f"B={b}: {rate:.3g} ({rate / rates[1]:.2f}x)" for b, rate in rates.items())
                print(f"{system['label']}, {dtype}, {device}: atom-steps/s {row}")


if __name__ == "__main__":
    main()
