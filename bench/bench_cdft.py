"""Benchmark of the cDFT stage: one planar solve of a few thousand grid points, one training epoch, and the
ratio between the MD time behind one profile and the functional's solve of a profile.

    python bench/bench_cdft.py [--md-benchmark benchmarks/lj/sampling/batch0000.tsv --md-batch results/lj/sampling/batch0000.nc]

The MD time per profile is the Snakemake benchmark wall time of a sampling batch divided by its runs.
Without a benchmark file it is estimated (and printed as an estimate) as a production run of the
design: 1e5 MD steps of 1000 atoms at 1 microsecond per atom-step (DeePMD on one GPU) = 100 s.
Hard rods stand in for the functional: the solve cost depends on grid and window size, not on the system.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from liquidscale.cdft.hard_rods import PercusHardRods, hard_rod_dataset
from liquidscale.cdft.solver import solve
from liquidscale.cdft.train import TrainingSettings, _Trainer, prepare_runs
from liquidscale.external import RandomPotentialSettings, random_potential

ESTIMATED_MD_SECONDS = 1e5 * 1000 * 1e-6


def timed(func, repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (the machine is shared) and the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def md_seconds_per_profile(benchmark: str | None, batch: str | None) -> tuple[float, str]:
    if benchmark is None:
        return ESTIMATED_MD_SECONDS, "estimate: 1e5 steps x 1000 atoms x 1 us/atom-step"
    import pandas as pd
    import xarray as xr

    seconds = float(pd.read_csv(benchmark, sep="\t")["s"].iloc[0])
    runs = xr.open_dataset(batch).sizes["run"] if batch else 1
    return seconds / runs, f"measured: {benchmark} ({runs} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--md-benchmark", help="Snakemake benchmark TSV of a sampling batch")
    parser.add_argument("--md-batch", help="the batch's netCDF (for its number of runs)")
    parser.add_argument("--points", type=int, default=4000, help="grid points of the benchmark solve")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dz = 0.1
    z = (np.arange(args.points) + 0.5) * dz
    V = random_potential((2026, 1), args.points * dz, RandomPotentialSettings(cap=2.0, p_hard_wall=0.0, p_slit=0.0)).beta_v(z)

    exact = PercusHardRods(dz)
    t_exact, sol = timed(lambda: solve(exact, V, 1.0, mu=2.0))
    print(f"exact Percus solve, {args.points} points: {t_exact * 1e3:.1f} ms ({sol.iterations} iterations)")

    block = {"box_length": 10.0, "dz": dz, "runs": 60, "beta_mu_range": [-3.0, 5.5], "potential_cap": 2.0, "hard_walls": False}
    ds = hard_rod_dataset(block, [0.7, 0.15, 0.15], seed=1, provenance={})
    settings = TrainingSettings(window=1.0)
    trainer = _Trainer(prepare_runs(ds, "train", settings.min_density_fraction), settings, dz, seed=1)
    t_warm, _ = timed(trainer.run_epoch, repeat=1)
    trainer.epoch = 1
    t_epoch, _ = timed(trainer.run_epoch, repeat=3)
    print(f"training: Adam warm-up {t_warm:.2f} s, one L-BFGS epoch ({settings.lbfgs_iterations} evaluations, {len(trainer.rho)} profiles) {t_epoch:.2f} s")
    for _ in range(20):
        trainer.run_epoch()
    model = trainer.model.eval()
    t_net, sol = timed(lambda: solve(model, V, 1.0, mu=2.0))
    print(f"neural solve, {args.points} points, window +-{model.interaction_range}: {t_net * 1e3:.1f} ms ({sol.iterations} iterations)")

    md, source = md_seconds_per_profile(args.md_benchmark, args.md_batch)
    print(f"MD time per profile: {md:.1f} s ({source})")
    print(f"MD time / neural solve time: {md / t_net:.3g} (target > 1e4)")
    if args.md_benchmark:
        print(f"production-run estimate ({ESTIMATED_MD_SECONDS:.0f} s of MD per profile) / neural solve time: {ESTIMATED_MD_SECONDS / t_net:.3g}")


if __name__ == "__main__":
    main()
