"""Peak memory of one production-size sampling step: the dense pair search against the neighbour list.

    python bench/bench_memory.py [--config config/water.yaml] [--dense-replicas 4 8] [--model model.pth]

One batch step is what a sampling job repeats: a BAOAB step (forces included) and the per-replica
failure check. The batch is the production one of the config: ``sampling.replicas_per_job`` replicas of
the most molecules a run there gets (top of the density range in ``sampling.<system>.box``). The check
is run twice in this process, with the engine's neighbour-list search and with the dense B x N x N x 3
minimum-image search it replaced (kept here as the "before"), and the peak resident memory (RSS, read
from /proc/self/statm by a thread sampling every 0.2 ms, after glibc's malloc_trim so that freed heap
is not silently reused; torch's CPU allocator is invisible to tracemalloc) above the level before the call is printed with the ratio. The dense search at the full
production B does not fit a small shared machine, so it runs at ``--dense-replicas`` (its memory is
linear in B: every intermediate is B x N x N) and the neighbour list runs at those B and the full one.
The potential is the ideal gas (no forces) unless ``--model`` gives a frozen DeePMD model, so that
the engine's own memory is what is measured, not a model's.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import threading
import time

import numpy as np


class PeakRSS:
    """Highest resident set size (bytes) above the level at entry, sampled by a thread while inside."""

    def __init__(self, interval: float = 2e-4):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        # hand freed heap back to the OS first, or a step's allocations reuse resident pages unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.base = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def above_base(self) -> int:
        return self.peak - self.base


def dense_closest_foreign_distance(engine) -> "torch.Tensor":
    """The failure check's pair search before the neighbour list (B x N x N x 3 float64 intermediates)."""
    import torch

    from liquidscale.md.potential import minimum_image

    x = torch.nan_to_num(engine.x)
    delta = minimum_image(x[:, :, None, :] - x[:, None, :, :], engine.cell)
    r2 = (delta * delta).sum(-1)
    n = x.shape[1]
    per_molecule = len(engine.checks.molecule.symbols) if engine.checks.molecule is not None else 1
    molecule_of = torch.arange(n, device=x.device) // per_molecule
    same = molecule_of[:, None] == molecule_of[None, :]
    return r2.masked_fill(same, math.inf).amin((1, 2)).sqrt()


def production_batch(config_path: str):
    """System, replicas per job, molecules and box of the config's largest sampling run."""
    import yaml

    from liquidscale.config import validate_config

    with open(config_path) as handle:
        config = validate_config(yaml.safe_load(handle))
    system = next(s for s in config["systems"] if s in ("water", "co2"))
    block = config["sampling"][system]
    box = np.array(block["box"], dtype=float)
    molecules = round(max(block["density_range"][1], block["slab_density"]) * box.prod())
    return system, config["sampling"]["replicas_per_job"], molecules, box, block


def make_engine(system: str, replicas: int, molecules: int, box: np.ndarray, block, model: str | None):
    from liquidscale.md.engine import FailureChecks, LangevinEngine
    from liquidscale.md.potential import METAL, IdealGas
    from liquidscale.molecules import get_molecule
    from liquidscale.sampling.initial import place_molecules

    molecule = get_molecule(system)
    template = molecule.geometry() - molecule.geometry()[0]
    rng = np.random.default_rng(0)
    frame = place_molecules(template, molecules, box, rng, block["min_separation"])
    symbols = list(molecule.symbols) * molecules
    if model:
        from liquidscale.mlip.deepmd_potential import DeepMDPotential

        potential = DeepMDPotential(model, symbols)
    else:
        potential = IdealGas()
    return LangevinEngine(
        potential, symbols, np.tile(molecule.masses, molecules), [s == symbols[0] for s in symbols],
        np.repeat(frame[None], replicas, 0), np.repeat(box[None], replicas, 0), [300.0] * replicas, list(range(replicas)),
        METAL, block["timestep"], block["friction"], checks=FailureChecks(min_distance=block["min_distance"], molecule=molecule),
    )  # fmt: skip


def step_peak(engine, search) -> int:
    """Peak RSS above base of one step plus one failure-check pair search (``search(engine)``)."""
    with PeakRSS() as peak:
        engine.step()
        search(engine)
    return peak.above_base


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/water.yaml")
    parser.add_argument("--dense-replicas", type=int, nargs="+", default=[4, 8], help="B at which the dense search is run")
    parser.add_argument("--model", default=None, help="frozen DeePMD model (default: ideal gas, the engine alone)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    system, replicas, molecules, box, block = production_batch(args.config)
    atoms = molecules * 3
    print(f"== one batch step of {args.config}: {system}, {molecules} molecules ({atoms} atoms), box {box.tolist()} Å, "
          f"production B = {replicas}; potential: {args.model or 'ideal gas (engine only)'}; memory = peak RSS above the level before the step")  # fmt: skip

    def neighbour_list(engine):
        return engine._closest_foreign_distance(torch.ones(engine.n_active, dtype=torch.bool))

    dense_per_replica = []
    for b in sorted(set(args.dense_replicas) | {replicas}):
        engine = make_engine(system, b, molecules, box, block, args.model)
        step_peak(engine, neighbour_list)  # warm-up: first-call allocations are not the step's
        listed = step_peak(engine, neighbour_list)
        line = f"B={b:<3d} neighbour list: {listed / 2**20:9.1f} MB"
        if b in args.dense_replicas:
            dense = step_peak(engine, dense_closest_foreign_distance)
            closest_new = neighbour_list(engine)
            closest_old = dense_closest_foreign_distance(engine)
            agree = bool(((closest_new == closest_old) | (closest_new.isinf() & (closest_old >= block["min_distance"]))).all())
            line += f"   dense: {dense / 2**20:9.1f} MB   dense / list = {dense / listed:7.1f}   same verdicts: {agree}"
            line += f"   (dense per replica {dense / b / 2**20:.0f} MB)"
            dense_per_replica.append(dense / b)
        elif dense_per_replica:
            scaled = max(dense_per_replica) * b
            line += f"   dense not run here: {scaled / 2**30:.1f} GB scaled linearly from B={max(args.dense_replicas)}; dense / list = {scaled / listed:.0f} (extrapolated)"
        print(line, flush=True)
        del engine


if __name__ == "__main__":
    main()
