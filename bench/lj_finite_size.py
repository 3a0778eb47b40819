"""Is the LJ campaign's lateral box large enough? Liquid-vapour slabs of LJTS (2.5 sigma) in boxes of lateral edge
6 sigma (config/lj.yaml) and 12 sigma, same slab thickness, through the coexistence step's own slab estimator
(``liquidscale.coexistence``: LAMMPS with the sampling protocol, centre-of-mass frame, plateaus interface_margin from
the equimolar surface, block errors), beside the published correlations (Vrabec et al. 2006).

Issue 12 item 1 asks for randomised lateral sizes with 1/L as a network input, or boxes shown to be large enough:
this measures the second. A 15 sigma slab in a 30 sigma box: at T = 1.0 the interfaces are ~3 sigma wide, and a
thinner slab measured here had no liquid plateau at either lateral size. Run: `python bench/lj_finite_size.py`.
"""

from __future__ import annotations

import tempfile

from liquidscale.cli import command_settings
from liquidscale.coexistence.run import run_coexistence
from liquidscale.config import validate_config
from liquidscale.fluids import ljts

TEMPERATURES = (0.8, 1.0)


def slab_results(lateral: float, seed: int = 7):
    config = validate_config({
        "systems": ["lj"], "seed": seed, "sampling": {"lj": {"engine": "lammps"}},
        "coexistence": {"equilibration_steps": 10_000, "production_steps": 100_000, "sample_every": 100, "blocks": 10, "device": "cpu",
                        "lj": {"temperatures": list(TEMPERATURES), "box": [lateral, lateral, 30.0], "slab_width": 0.5, "interface_margin": 3.0,
                               "rdf_max": 0.5 * lateral}},
    })
    with tempfile.TemporaryDirectory() as out:
        return run_coexistence(command_settings(config, "lj", "coexistence", "run"), out)


def main() -> None:
    print("T     L     rho_vapour         rho_liquid         (Vrabec 2006: rho_vapour rho_liquid)")
    for lateral in (6.0, 12.0):
        for T, r in zip(TEMPERATURES, slab_results(lateral)):
            values = f"{r.rho_vapour:.5f}±{r.rho_vapour_stderr:.5f}  {r.rho_liquid:.5f}±{r.rho_liquid_stderr:.5f}" if r.status == "ok" else f"{r.status}: {r.reason}"
            print(f"{T:.2f}  {lateral:4.1f}  {values}   ({ljts.rho_vapour(T):.5f}  {ljts.rho_liquid(T):.5f})", flush=True)


if __name__ == "__main__":
    main()
