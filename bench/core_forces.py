"""How far the cut of a cluster reaches into a core atom's DFT force, and what a bigger cluster costs.

Cuts clusters of growing radius R (whole molecules with an atom within R) around one centre atom of a
periodic liquid box packed as the reference stage packs its bulk-like frames, labels each with PySCF
at CONFIG's level of theory (1 thread), and prints one JSON line per R: atoms, CPU seconds, and the
change of the forces on the centre molecule's atoms against the largest cluster. The forces of the
centre atoms converge as the cut surface moves away (the buffer a core atom needs beyond rcut), and the
seconds against atoms give the scaling exponent that extrapolates the reference cost.

Run: `python bench/core_forces.py config/config.yaml water --radii 2.5 3.5 4.5 5.5`
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfile")
    parser.add_argument("system")
    parser.add_argument("--radii", type=float, nargs="+", required=True, help="cut radii in Å, ascending")
    parser.add_argument("--molecules", type=int, default=64, help="molecules in the periodic box")
    args = parser.parse_args()

    from pyscf import lib

    from liquidscale.config import effective_config
    from liquidscale.molecules import cut_environment, get_molecule
    from liquidscale.reference import action_settings
    from liquidscale.reference.qm import label
    from liquidscale.sampling.initial import place_molecules

    lib.num_threads(1)
    config = effective_config([args.configfile])
    settings = action_settings(config, args.system, "configurations")["reference"]
    molecule = get_molecule(args.system)
    liquid = settings["liquid"]
    box = np.full(3, (args.molecules / liquid["density"]) ** (1.0 / 3.0))
    positions = place_molecules(molecule.geometry() - molecule.geometry()[0], args.molecules, box, np.random.default_rng(config["seed"]), liquid["min_separation"])
    symbols = list(molecule.symbols) * args.molecules
    method = dict(config["reference"]["method"])
    results = []
    for radius in args.radii:
        cut = cut_environment(symbols, positions, molecule, 0, radius, radius, np.diag(box))
        start = time.process_time()
        result = label(cut.symbols, cut.positions, method)
        results.append((radius, result.forces[:3]))
        print(json.dumps({"system": args.system, "method": method, "radius": radius, "atoms": len(cut.symbols), "cpu_seconds": round(time.process_time() - start, 2),
                          "centre_forces": result.forces[:3].round(4).tolist()}), flush=True)
    for radius, forces in results:
        change = np.linalg.norm(forces - results[-1][1], axis=1)
        print(json.dumps({"radius": radius, "centre_force_change_vs_largest": change.round(4).tolist()}), flush=True)


if __name__ == "__main__":
    main()
