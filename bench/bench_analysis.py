"""Benchmark of the analysis stage (not a timed test): prints seconds per part on one CPU thread.

Functional: hard rods + mean-field square-well attraction (exact bulk, real interfaces), dz = 0.05 sigma.
Parts: a full binodal (32 temperatures, with the isotherm scan and critical point), one pore isotherm
(both branches, one width), the Widom and Fisher-Widom lines, and the whole analysis of one system
(target: under a minute).

    PYTHONPATH=src python bench/bench_analysis.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liquidscale.analysis.bulk import Isotherm, coexistence, functional_excess, phase_diagram
from liquidscale.analysis.interfaces import Wall, pore_branch, slit_potential
from liquidscale.fluids.square_well import SquareWellMeanField
from liquidscale.analysis.pipeline import pole_box
from liquidscale.analysis.run import AnalysisSettings, run_analysis
from liquidscale.analysis.supercritical import fisher_widom_point, isobar_lines, s0_isotherm_line, xi_isotherm_line
from liquidscale.cdft.solver import SolverSettings
from liquidscale.config import validate_config


def seconds(start: float) -> str:
    return f"{time.perf_counter() - start:7.2f} s"


def main() -> None:
    torch.set_num_threads(1)
    fluid = SquareWellMeanField(dz=0.05, attraction_range=1.5)
    excess = functional_excess(fluid)
    Tc = fluid.critical_temperature

    start = time.perf_counter()
    diagram = phase_diagram(excess, np.linspace(0.6 * Tc, 1.4 * Tc, 24), rho_max=0.95, n_binodal=32)
    print(f"binodal ({len(diagram.binodal)} T, 24-isotherm scan, critical point):  {seconds(start)}"
          f"   Tc error {diagram.critical.T / Tc - 1:.1e}")

    T = 0.85 * Tc
    co = coexistence(Isotherm.from_functional(excess, T, 0.95))
    H = 12.0
    beta_V = slit_potential(fluid.dz, fluid.interaction_range, Wall(1.0, 1.0), H)[1]
    mus = co.beta_mu + np.linspace(-0.15, 0.0, 9)
    start = time.perf_counter()
    solver = SolverSettings(tol=1e-8, max_iter=20000)
    pore_branch(fluid, beta_V, H, T, mus, None, settings=solver)
    pore_branch(fluid, beta_V, H, T, mus[::-1], np.where(np.isfinite(beta_V), co.rho_liquid, 0.0), settings=solver)
    print(f"pore isotherm (H = {H:g} sigma, 2 branches x 9 mu):           {seconds(start)}")

    config = validate_config({"systems": ["lj"]})["analysis"]
    a1_max, a0_max = pole_box(fluid, config["poles"])
    isotherms = [Isotherm.from_functional(excess, t, 0.95) for t in Tc * np.linspace(1.02, 1.4, 6)]
    fractions = np.linspace(0.02, 0.95, 16)
    rho_grid = 0.95 * fractions
    start = time.perf_counter()
    widom = s0_isotherm_line(isotherms, Tc) + xi_isotherm_line(fluid, isotherms, Tc, fractions, a1_max, a0_max)
    widom += isobar_lines(excess, [0.125 * Tc * r for r in (1.1, 1.5, 2.0)], Tc * np.linspace(1.001, 1.54, 32), lambda T: 0.95, 1.0, with_cp=True)
    print(f"Widom lines ({len(widom)} points, 4 definitions):                  {seconds(start)}")
    start = time.perf_counter()
    found = 0
    for t in Tc * np.linspace(0.8, 1.4, 6):
        try:
            fisher_widom_point(fluid, Isotherm.from_functional(excess, t, 0.95), rho_grid, a1_max, a0_max)
            found += 1
        except Exception:  # noqa: BLE001 - a benchmark only counts
            pass
    print(f"Fisher-Widom line ({found}/6 temperatures):                       {seconds(start)}")

    settings = AnalysisSettings.from_config(config)
    pores = {**settings.pores, "wall_sigma": {"model": 1.0}}
    settings = AnalysisSettings(**{**settings.__dict__, "density_max": {"model": 0.95}, "pores": pores})
    metadata = {"system": "model", "k_B": 1.0, "length_unit": "sigma", "energy_unit": "epsilon", "temperature_unit": "epsilon/k_B",
                "dimension": 1, "architecture": {"temperature_range": [0.6 * Tc, 1.4 * Tc]}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_analysis(fluid, metadata, settings, Path(tmp), {"bench": True})
        print(f"whole analysis of one system (default settings):            {seconds(start)}   parts: {summary['timings_s']}")


if __name__ == "__main__":
    main()
