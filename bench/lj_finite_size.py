"""Is the LJ campaign's lateral box large enough? Liquid-vapour slabs of LJTS (2.5 sigma) in boxes of lateral edge
6 sigma (config/lj.yaml) and 12 sigma, same slab thickness, same LAMMPS engine and protocol as the sampling stage;
the coexisting densities from the plateaus, beside the published correlations (Vrabec et al. 2006).

Issue 12 item 1 asks for randomised lateral sizes with 1/L as a network input, or boxes shown to be large enough:
this measures the second. Plateaus: liquid |z - Lz/2| < 3, vapour |z - Lz/2| > 11 (a 15 sigma slab: at T = 1.0 the
interfaces are ~3 sigma wide, and a thinner slab measured here had no liquid plateau at either lateral size). Run: `python bench/lj_finite_size.py`.
"""

from __future__ import annotations

import numpy as np

from liquidscale.fluids import ljts
from liquidscale.md.lammps_engine import ReplicaSpec, run_replica
from liquidscale.sampling.initial import place_molecules
from liquidscale.sampling.profiles import ProfileAccumulator

LZ, SLAB, BIN = 30.0, 0.5, 0.1
STEPS, EQUILIBRATION, EVERY = 100_000, 10_000, 10


def slab_densities(lateral: float, T: float, seed: int) -> tuple[float, float]:
    box = np.array([lateral, lateral, LZ])
    n = round(ljts.rho_liquid(T) * lateral**2 * SLAB * LZ)
    positions = place_molecules(np.zeros((1, 3)), n, box, np.random.default_rng(seed), 0.9, None, slab_width=SLAB)
    spec = ReplicaSpec(run=0, n_atoms=n, box=tuple(box), temperature=T, thermostat_seed=seed, external=None, cutoff=2.5, timestep=0.005,
                       friction=1.0, minimisation_steps=100, max_displacement=0.05, equilibration_steps=EQUILIBRATION,
                       production_steps=STEPS, sample_every=EVERY, widom_insertions=0, widom_every=EVERY)
    profiles = ProfileAccumulator(1, LZ, BIN, STEPS // EVERY)
    _, failure = run_replica(spec, positions, profiles, None)
    assert not failure, failure
    rho = profiles.histogram_density(np.array([lateral**2]))[0]
    distance = np.abs(profiles.z - 0.5 * LZ)
    return float(rho[distance > 11].mean()), float(rho[distance < 3].mean())


def main() -> None:
    print("T     L    rho_vapour  rho_liquid   (Vrabec 2006: rho_vapour rho_liquid)")
    for T in (0.8, 1.0):
        for lateral in (6.0, 12.0):
            vapour, liquid = slab_densities(lateral, T, seed=7)
            print(f"{T:.2f}  {lateral:4.1f}  {vapour:.5f}     {liquid:.5f}      ({ljts.rho_vapour(T):.5f}  {ljts.rho_liquid(T):.5f})", flush=True)


if __name__ == "__main__":
    main()
