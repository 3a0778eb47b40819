"""Benchmark of the cDFT stage (prints times and ratios; not a timed test).

    python bench/bench_cdft.py [--results results] [--production-configs config/water.yaml config/co2.yaml]

1. One planar solve of 4000 grid points (hard rods): the trained neural functional against the exact
   Percus functional on the same potential, and one training epoch.
2. One evaluation of c1 for the production architectures (config/water.yaml, config/co2.yaml: grid,
   window, channels): the FFT path the model takes against direct convolution.
3. MD time per profile / solve time of the same profile, per system that ``make demo`` has run
   (needs results/<system>/{mlip/final,cdft,profiles.nc}). The MD cost is measured by running the
   sampling stage's own job (same engine, same DeePMD model) at two lengths and taking the
   difference, so start-up does not count; the solves are the demo functional's canonical solves
   of the demo's held-out profiles. For production run lengths the MD time is that per-atom-step
   cost times the atoms and steps of the production configs, and the solve time is the demo
   solve scaled by the cost of one c1 evaluation of the production architecture. Both sides run
   on this CPU (one thread); the demo MLIP is smaller than a production one, so the MD side is an
   underestimate.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liquidscale import dataset as pds
from liquidscale.cdft import functional as fn
from liquidscale.fluids.hard_rods import PercusHardRods, hard_rod_dataset
from liquidscale.cdft.model import NeuralC1, load_model
from liquidscale.cdft.solver import solve
from liquidscale.cdft.train import TrainingSettings, _solve_like, _Trainer, prepare_runs
from liquidscale.config import load_yaml, stage_settings, validate_config
from liquidscale.external import RandomPotentialSettings, random_potential


def best_time(func, repeat: int = 3) -> tuple[float, object]:
    """Fastest of ``repeat`` calls (the machine is shared: the minimum is the honest cost) and the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


class CountingFunctional:
    """A functional that counts its c1 evaluations (the unit of a solve's cost)."""

    def __init__(self, functional):
        self.functional, self.calls = functional, 0
        self.dz, self.interaction_range = functional.dz, functional.interaction_range

    def c1(self, rho, T):
        self.calls += 1
        return self.functional.c1(rho, T)


def bench_hard_rods(points: int) -> None:
    dz = 0.1
    z = (np.arange(points) + 0.5) * dz
    V = random_potential((2026, 1), points * dz, RandomPotentialSettings(cap=2.0, p_hard_wall=0.0, p_slit=0.0)).beta_v(z)
    t_exact, sol = best_time(lambda: solve(PercusHardRods(dz), V, 1.0, mu=2.0))
    block = {"box_length": 10.0, "dz": dz, "runs": 60, "beta_mu_range": [-3.0, 5.5], "potential_cap": 2.0, "hard_walls": False}
    ds = hard_rod_dataset(block, [0.7, 0.15, 0.15], seed=1, provenance={})
    settings = TrainingSettings(window=1.0)
    trainer = _Trainer(prepare_runs(ds, "train", settings), settings, dz, seed=1)
    t_warm, _ = best_time(trainer.run_epoch, repeat=1)
    trainer.epoch = 1
    t_epoch, _ = best_time(trainer.run_epoch, repeat=3)
    for _ in range(20):
        trainer.run_epoch()
    model = trainer.model.eval()
    t_net, net = best_time(lambda: solve(model, V, 1.0, mu=2.0))
    print(f"== hard rods, one grand-canonical solve of {points} points (window +-{model.interaction_range:g} sigma)")
    print(f"exact Percus : {t_exact * 1e3:7.1f} ms ({sol.iterations} iterations)")
    print(f"neural c1    : {t_net * 1e3:7.1f} ms ({net.iterations} iterations)   neural / exact = {t_net / t_exact:.1f}")
    print(f"training: Adam warm-up {t_warm:.2f} s, one L-BFGS epoch ({settings.lbfgs_iterations} evaluations, {len(trainer.rho)} profiles) {t_epoch:.2f} s")


def production_architecture(config_path: str, system: str) -> tuple[NeuralC1, int]:
    """A functional of the production config's architecture (random weights: the cost does not depend on them) and its grid points."""
    config = validate_config(load_yaml(config_path))
    sampling = config["sampling"][system]
    window, channels = config["cdft"]["window"][system], config["cdft"]["channels"]
    points = math.ceil(sampling["box"][2] / sampling["bin_width"] - 1e-9)  # bins tile the box, none wider than bin_width
    dz = sampling["box"][2] / points
    return NeuralC1(dz, window, channels, density_scale=0.03, temperature_range=[250.0, 650.0]).eval(), points


def c1_evaluation_time(model: NeuralC1, points: int) -> float:
    rho = torch.rand(points, dtype=torch.float64) * 0.03
    with torch.no_grad():
        return best_time(lambda: model.c1(rho, 300.0), repeat=10)[0]


def bench_evaluation(configs: list[str]) -> dict[str, float]:
    """Seconds per c1 evaluation of each production architecture (FFT path), against direct convolution."""
    print("== one c1 evaluation, production architecture: FFT convolution vs direct conv1d")
    seconds = {}
    for path in configs:
        system = Path(path).stem
        model, points = production_architecture(path, system)
        fft = c1_evaluation_time(model, points)
        threshold, fn.FFT_KERNEL_WIDTH = fn.FFT_KERNEL_WIDTH, 10**9  # force the direct path (the baseline)
        direct = c1_evaluation_time(model, points)
        fn.FFT_KERNEL_WIDTH = threshold
        seconds[system] = fft
        print(f"{system:6s}: {points} points, window +-{model.interaction_range:g} ({2 * round(model.interaction_range / model.dz) + 1} bins), channels {model.channels}: FFT {fft * 1e3:.2f} ms, direct {direct * 1e3:.1f} ms, direct / FFT = {direct / fft:.0f}")
    return seconds


def md_seconds_per_atom_step(settings: dict, model: Path, steps: tuple[int, int] = (4, 44)) -> tuple[float, int]:
    """Seconds per atom-step of the sampling job (engine + DeePMD + profile sampling) for batch 0 of ``settings``.

    The job runs at two lengths, one replica, no minimisation; the difference is the cost of the extra steps alone
    (80 extra steps: start-up, ~5 s for a production box, varies by ~1 s between runs and must not dominate).
    """
    from liquidscale.sampling.batch import run_batch
    from liquidscale.sampling.statepoints import statepoint_table, system_sampling

    times = []
    for n in steps:
        sampling = {**settings["sampling"], "replicas_per_job": 1, "minimisation_steps": 0, "equilibration_steps": n, "production_steps": n, "device": "cpu"}
        job = {**settings, "sampling": sampling}
        table = statepoint_table(system_sampling(job))
        with tempfile.TemporaryDirectory() as tmp:
            times.append(best_time(lambda: run_batch(job, table, 0, Path(tmp) / "batch.nc", model), repeat=2)[0])
    atoms = int(table["n_molecules"].iloc[0]) * len(_chemistry(settings).molecule_symbols)
    return (times[1] - times[0]) / (2 * (steps[1] - steps[0]) * atoms), atoms


def _chemistry(settings: dict):
    from liquidscale.sampling.batch import chemistry

    return chemistry(settings["system"], settings["sampling"][settings["system"]])


def run_atom_steps(settings: dict) -> float:
    """Mean atoms x steps of one run of the state-point table of ``settings`` (its MD size)."""
    from liquidscale.sampling.statepoints import statepoint_table, system_sampling

    s = settings["sampling"]
    atoms = statepoint_table(system_sampling(settings))["n_molecules"].mean() * len(_chemistry(settings).molecule_symbols)
    return float(atoms * (s["minimisation_steps"] + s["equilibration_steps"] + s["production_steps"]))


def demo_solves(results: Path, system: str) -> tuple[float, int, NeuralC1, int]:
    """The demo functional's canonical solves of its held-out profiles, as the cdft stage's metrics do them:
    median time, largest number of c1 evaluations, the functional and the grid points."""
    model, _ = load_model(results / system / "cdft")
    ds = pds.open_profile_dataset(results / system / "profiles.nc")
    settings = TrainingSettings(window=model.interaction_range)
    test = prepare_runs(ds, "test", settings)
    times, evaluations = [], []
    for k in range(len(test)):
        counting = CountingFunctional(model)
        _solve_like(counting, test, k, settings, ds, np.inf)
        evaluations.append(counting.calls)
        times.append(best_time(lambda: _solve_like(model, test, k, settings, ds, np.inf))[0])
    return float(np.median(times)), max(evaluations), model, ds.sizes[pds.Z]


def bench_ratio(results: Path, demo_config: Path, configs: list[str], evaluation_seconds: dict[str, float]) -> None:
    print("== MD time per profile / solve time of a profile (both on this CPU, one thread)")
    demo_validated = validate_config(load_yaml(demo_config))
    for path in configs:
        system = Path(path).stem
        needed = [results / system / "mlip/final/model0.pth", results / system / "cdft/model.json", results / system / "profiles.nc"]
        if not all(p.exists() for p in needed):
            print(f"{system}: no demo results under {results}/{system} (run `make demo` first)")
            continue
        demo = stage_settings(demo_validated, system, "sampling")
        production = stage_settings(validate_config(load_yaml(path)), system, "sampling")
        per_atom_step, atoms = md_seconds_per_atom_step(production, needed[0])
        solve_seconds, evaluations, model, points = demo_solves(results, system)
        demo_md = per_atom_step * run_atom_steps(demo)
        production_md = per_atom_step * run_atom_steps(production)
        production_solve = solve_seconds * evaluation_seconds[system] / c1_evaluation_time(model, points)
        print(f"{system}: MD {per_atom_step * 1e6:.0f} us per atom-step (demo MLIP, {atoms} atoms); demo functional solve of a held-out profile {solve_seconds * 1e3:.0f} ms (<= {evaluations} c1 evaluations)")
        print(f"{system}: demo runs      : MD {demo_md:9.1f} s per profile / solve = {demo_md / solve_seconds:.3g}")
        print(f"{system}: production runs: MD {production_md:9.3g} s per profile / solve ({production_solve * 1e3:.0f} ms, production architecture) = {production_md / production_solve:.3g}  (target > 1e4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=4000, help="grid points of the hard-rod solve")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder of a finished demo")
    parser.add_argument("--demo-config", type=Path, default=Path("config/config.yaml"), help="the config the demo results were made with")
    parser.add_argument("--production-configs", nargs="+", default=["config/water.yaml", "config/co2.yaml"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_hard_rods(args.points)
    evaluation_seconds = bench_evaluation(args.production_configs)
    bench_ratio(args.results, args.demo_config, args.production_configs, evaluation_seconds)


if __name__ == "__main__":
    main()
