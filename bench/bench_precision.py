"""float32 against float64 in the sampling engine (and DeePMD's networks): force error, NVE energy drift
and the density profile of a sampling batch (prints differences; not a timed test).

    python bench/bench_precision.py [--model results/water/mlip/final/model0.pth] [--nve-steps 2000]

For the LJ fluid always, and for water when a frozen DeePMD model is given (or found at the default path):
1. forces of the same configuration in both precisions: max |F32 - F64| / rms |F64|;
2. NVE (friction 0, velocity Verlet) from the same equilibrated state in both precisions: drift of
   the total energy per atom (slope of a linear fit, energy per atom per time unit) and its rms
   fluctuation, both precisions side by side;
3. one small sampling batch (``run_batch``, same seeds) in both precisions: the density profiles'
   difference in units of their combined standard error. The trajectories part after a few hundred
   steps (chaos), so the profiles agree only statistically: the same statistic between two float64
   batches whose thermostats have other seeds (same potentials and starts) is printed beside it as the noise floor.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def lj_system(n: int = 500, density: float = 0.7, seed: int = 0):
    from liquidscale.md.potential import REDUCED, LennardJones
    from liquidscale.sampling.initial import place_molecules

    box = np.full(3, (n / density) ** (1 / 3))
    frame = place_molecules(np.zeros((1, 3)), n, box, np.random.default_rng(seed), 0.9)
    return {"label": f"LJ, {n} atoms, rho 0.7, T 1.5", "make": lambda: LennardJones(2.5), "symbols": ["X"] * n, "masses": np.ones(n),
            "frame": frame, "box": box, "units": REDUCED, "temperature": 1.5, "timestep": 0.005, "friction": 1.0, "time_unit": "tau", "energy_unit": "epsilon",
            "minimise": 100}  # fmt: skip


def water_system(model: str, precision: str, n: int = 64, seed: int = 0):
    from liquidscale.md.potential import METAL
    from liquidscale.mlip.deepmd_potential import DeepMDPotential
    from liquidscale.molecules import WATER
    from liquidscale.sampling.initial import place_molecules

    box = np.full(3, (n / 0.0334) ** (1 / 3))
    frame = place_molecules(WATER.geometry() - WATER.geometry()[0], n, box, np.random.default_rng(seed), 2.6)
    symbols = list(WATER.symbols) * n
    return {"label": f"DeePMD water ({model}), {n} molecules", "make": lambda: DeepMDPotential(model, symbols, precision=precision), "symbols": symbols,
            "masses": np.tile(WATER.masses, n), "frame": frame, "box": box, "units": METAL, "temperature": 300.0, "timestep": 0.00025, "friction": 5.0,
            "time_unit": "ps", "energy_unit": "eV", "minimise": 0}  # fmt: skip  (minimising with a crude MLIP pulls H atoms into neighbours)


def engine(system, potential, dtype: str, friction: float):
    from liquidscale.md.engine import FailureChecks, LangevinEngine

    s = system
    checks = FailureChecks(every=10**9, min_distance=0.0, max_temperature_ratio=1e12)
    return LangevinEngine(
        potential, s["symbols"], s["masses"], [True] * len(s["symbols"]), s["frame"][None], s["box"][None], [s["temperature"]], [1],
        s["units"], s["timestep"], friction, checks=checks, dtype=dtype,
    )  # fmt: skip


def compare(system, equilibration: int, nve_steps: int, potential32=None) -> None:
    import torch

    s = system
    potential64 = s["make"]()
    reference = engine(s, potential64, "float64", s["friction"])
    reference.minimise(s["minimise"], 0.01)
    reference.run(equilibration)
    state = (reference.x.clone(), reference.v.clone())
    runs = {}
    for dtype, potential in (("float64", potential64), ("float32", potential32 or potential64)):
        e = engine(s, potential, dtype, 0.0)
        e.x, e.v = state[0].to(e.x.dtype), state[1].to(e.x.dtype)
        e.compute_forces()
        runs[dtype] = e
    f64, f32 = runs["float64"].forces.double(), runs["float32"].forces.double()
    rms = f64.pow(2).sum(-1).mean().sqrt().item()
    print(f"== {s['label']}")
    print(f"forces: max |F32 - F64| / rms|F64| = {(f32 - f64).norm(dim=-1).max().item() / rms:.2e}   (rms |F| = {rms:.3g} {s['energy_unit']}/length)")
    n_atoms = len(s["symbols"])
    for dtype, e in runs.items():
        total = []
        for _ in range(nve_steps):
            e.step()
            total.append((e.potential_energy() + e.kinetic_energy()).double().item() / n_atoms)
        t = np.arange(1, nve_steps + 1) * s["timestep"]
        slope, intercept = np.polyfit(t, total, 1)
        fluctuation = np.std(np.array(total) - (slope * t + intercept))
        print(f"NVE {dtype}: {nve_steps} steps of {s['timestep']} {s['time_unit']}: drift {slope:+.2e} {s['energy_unit']}/atom/{s['time_unit']}, rms fluctuation {fluctuation:.2e} {s['energy_unit']}/atom")
    del torch


def profile_difference(system_name: str, model: str | None) -> None:
    import xarray as xr

    from liquidscale.config import stage_settings, validate_config
    from liquidscale.sampling.batch import run_batch
    from liquidscale.sampling.statepoints import statepoint_table, system_sampling

    common = {"runs": 4, "replicas_per_job": 4, "minimisation_steps": 20, "equilibration_steps": 400, "production_steps": 2000, "sample_every": 5, "check_every": 100, "device": "cpu"}
    if system_name == "lj":
        config = {"systems": ["lj"], "sampling": {**common, "lj": {"box": [6.0, 6.0, 10.0]}}}
    else:
        # the demo's water sampling (config/config.yaml), which its crude MLIP survives
        config = {"systems": ["water"], "sampling": {**common, "minimisation_steps": 0, "production_steps": 1000, "water": {"box": [10.2, 10.2, 16.0], "density_range": [0.003, 0.033], "timestep": 0.00025}}}
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision, thermostat_shift in (("float64", 0), ("float32", 0), ("float64", 1)):
            settings = stage_settings(validate_config({**config, "sampling": {**config["sampling"], "precision": precision}}), system_name, "sampling")
            table = statepoint_table(system_sampling(settings))
            table["thermostat_seed"] += thermostat_shift  # same potentials and placements, other noise
            out = Path(tmp) / f"{precision}_{thermostat_shift}.nc"
            run_batch(settings, table, 0, out, model)
            profiles[precision, thermostat_shift] = xr.load_dataset(out)
    reference = profiles["float64", 0]
    for label, other in (("float32 vs float64, same seeds", profiles["float32", 0]), ("float64 vs float64, other thermostat seeds (the noise floor)", profiles["float64", 1])):
        print(f"profiles ({system_name}, {label}): {profile_statistics(reference, other)}")


def profile_statistics(a, b) -> str:
    """|rho_a - rho_b| per bin in units of the combined standard error, over runs that finished in both."""
    ok = (a["status"].values == 0) & (b["status"].values == 0)
    if not ok.any():
        return f"no run finished in both; failures: {[str(r) for r in np.concatenate([a['failure_reason'].values, b['failure_reason'].values]) if r]}"
    diff = (a["rho"] - b["rho"]).values[ok]
    se = np.sqrt(a["rho_stderr"].values[ok] ** 2 + b["rho_stderr"].values[ok] ** 2)
    z = np.abs(diff[se > 0]) / se[se > 0]
    return (
        f"{ok.sum()} runs, mean |drho|/stderr {z.mean():.2f}, 95th percentile {np.percentile(z, 95):.2f}, "
        f"bins beyond 2 stderr {np.mean(z > 2):.3f}, mean |drho| / mean rho {np.abs(diff).mean() / a['rho'].values[ok].mean():.3f}"
    )


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="frozen DeePMD model of water")
    parser.add_argument("--nve-steps", type=int, default=2000)
    parser.add_argument("--skip-profiles", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = args.model or ("results/water/mlip/final/model0.pth" if Path("results/water/mlip/final/model0.pth").is_file() else None)
    compare(lj_system(), 500, args.nve_steps)
    if not args.skip_profiles:
        profile_difference("lj", None)
    if model:
        compare(water_system(model, "float64"), 400, args.nve_steps, potential32=water_system(model, "float32")["make"]())
        if not args.skip_profiles:
            profile_difference("water", model)


if __name__ == "__main__":
    main()
