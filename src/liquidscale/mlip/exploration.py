"""Exploration: Langevin MD with the newest model at the state points the campaign will sample.

Per temperature (evenly spanning the system's range) the replicas are bulk boxes spanning the
sampling stage's density range (vapour to liquid), a liquid-vapour slab (a film at the sampling
slab density in a box three times longer along z) and dense boxes in random planar external
potentials drawn as the sampling stage draws them; molecules are placed by the sampling stage's
``place_molecules``. All replicas hold the
same molecules, so one batched engine runs them together. Model 0 drives the dynamics (as in
DP-GEN); every ensemble member then evaluates the saved frames for the force deviation.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, damaged_input
from ..external import ExternalPotential, RandomPotentialSettings, random_potential
from ..molecules import Molecule


@dataclass(frozen=True)
class Replica:
    """One exploration run: its kind, temperature (K), box (Å), external potential and seed."""

    kind: str  # "bulk", "slab" or "external"
    temperature: float
    density: float  # molecules / Å^3 of the region the molecules start in
    cell_lengths: tuple[float, float, float]
    slab_width: float  # fraction of the box length along z the molecules start in
    external: ExternalPotential | None
    seed: int


def replica_seed(seed: int, system: str, iteration: int, index: int, purpose: str) -> int:
    return int(np.random.default_rng([seed, zlib.crc32(system.encode()), iteration, index, zlib.crc32(purpose.encode())]).integers(1, 2**31 - 1))


def densest(sampling: Mapping[str, Any], system: str) -> float:
    """The highest molecular density (Å^-3) the sampling stage starts runs at (uniform or slab)."""
    return max(sampling[system]["density_range"][1], sampling[system]["slab_density"])


def state_points(system: str, explore: Mapping[str, Any], sampling: Mapping[str, Any], temperature_range: Sequence[float], seed: int, iteration: int, rcut: float) -> list[Replica]:
    """The replicas of one exploration job (see the module docstring).

    ``sampling`` holds the sampling stage's ``potentials`` and ``<system>`` block, so exploration
    spans its density range and draws its families of external potentials.
    """
    n = explore["molecules"]
    block = sampling[system]
    potentials = RandomPotentialSettings.from_mapping({**sampling["potentials"], **block["potential_lengths"]})
    low, high = block["density_range"]
    temperatures = np.linspace(temperature_range[0], temperature_range[1], explore["temperatures"])
    replicas: list[Replica] = []

    def add(kind: str, temperature: float, density: float, lengths: tuple[float, float, float], slab_width: float = 1.0, external=None):
        index = len(replicas)
        replicas.append(Replica(kind, float(temperature), float(density), lengths, slab_width, external, replica_seed(seed, system, iteration, index, "replica")))

    def cube(density: float) -> tuple[float, float, float]:
        return ((n / density) ** (1.0 / 3.0),) * 3

    for temperature in temperatures:
        for density in np.geomspace(low, high, explore["densities"]):
            add("bulk", temperature, density, cube(density))
        if explore["slab"]:
            edge = cube(block["slab_density"])[0]
            add("slab", temperature, block["slab_density"], (edge, edge, 3 * edge), slab_width=1.0 / 3.0)
        for _ in range(explore["external_potentials"]):
            lengths = cube(high)
            draw = replica_seed(seed, system, iteration, len(replicas), "external")
            add("external", temperature, high, lengths, external=random_potential(draw, lengths[2], potentials))
    shortest = cube(max(high, block["slab_density"]))[0]
    if 2 * rcut > shortest:
        raise UserError(
            f"config key 'mlip.explore.molecules': {n} molecules at the densest sampled state make a {shortest:.1f} Å box, "
            f"shorter than twice the model cutoff {rcut} Å (mlip.descriptor.rcut); use more molecules"
        )
    return replicas


@dataclass
class Trajectory:
    """Frames saved during exploration: positions (F, N, 3), boxes (F, 3), replica index and step per frame."""

    positions: list[np.ndarray]
    cells: list[np.ndarray]
    replica: list[int]
    step: list[int]

    def record(self, engine) -> None:
        for row, rid in enumerate(engine.ids.tolist()):
            self.positions.append(engine.x[row].cpu().numpy().copy())
            self.cells.append(engine.cell[row].cpu().numpy().copy())
            self.replica.append(rid)
            self.step.append(engine.steps_done)


def run_exploration(
    potential, molecule: Molecule, replicas: Sequence[Replica], explore: Mapping[str, Any], sampling_block: Mapping[str, Any], device: str = "cpu", minimise_steps: int = 20
):
    """Place molecules as the sampling stage does, minimise briefly, then run Langevin MD of all replicas
    in one batch on ``device`` (the potential's) in ``explore['precision']``; returns the symbols, the
    trajectory and the failed replicas with their reasons."""
    from ..md.engine import FailureChecks, LangevinEngine
    from ..md.potential import METAL
    from ..sampling.initial import place_molecules

    n = explore["molecules"]
    symbols = list(molecule.symbols) * n
    site = molecule.site_index()
    template = molecule.geometry() - molecule.geometry()[site]
    positions = np.stack(
        [
            place_molecules(template, n, np.array(r.cell_lengths), np.random.default_rng(r.seed), sampling_block["min_separation"], r.external, r.slab_width)
            for r in replicas
        ]
    )
    engine = LangevinEngine(
        potential=potential,
        symbols=symbols,
        masses=np.tile(molecule.masses, n),
        site_mask=[i % 3 == site for i in range(len(symbols))],
        positions=positions,
        cell_lengths=np.array([r.cell_lengths for r in replicas]),
        temperatures=[r.temperature for r in replicas],
        seeds=[r.seed for r in replicas],
        units=METAL,
        timestep=explore["timestep"],
        friction=explore["friction"],
        externals=[r.external for r in replicas],
        checks=FailureChecks(min_distance=sampling_block["min_distance"], molecule=molecule),
        md_wall_softness=sampling_block["md_wall_softness"],
        device=device,
        dtype=explore["precision"],
    )
    engine.minimise(minimise_steps, max_displacement=0.01)  # removes the grid's closest contacts only
    trajectory = Trajectory([], [], [], [])
    every = max(1, explore["steps"] // explore["frames"])
    engine.run(explore["steps"], callback=trajectory.record, every=every, phase="exploration")
    return symbols, trajectory, dict(engine.failures)


def expected_frames(explore: Mapping[str, Any]) -> int:
    """Frames a replica that does not fail saves (one every steps // frames steps)."""
    return explore["steps"] // max(1, explore["steps"] // explore["frames"])


def frame_deviations(models: Sequence, trajectory: Trajectory, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Max force deviation over the ensemble (eV/Å) and the atom where it occurs, per saved frame."""
    import logging

    from ..logs import Throttle, duration
    from .deepmd_potential import ensemble_forces, max_force_deviation

    log = logging.getLogger(__name__)
    deviation, atom = [], []
    progress = Throttle(len(trajectory.positions))
    for start in range(0, len(trajectory.positions), batch):
        stop = start + batch
        forces = ensemble_forces(models, np.stack(trajectory.positions[start:stop]), np.stack(trajectory.cells[start:stop]))
        d, a = max_force_deviation(forces)
        deviation.append(d)
        atom.append(a)
        done = min(stop, len(trajectory.positions))
        if progress.due(done):
            log.info("model deviation: frame %d of %d with %d models, ETA %s", done, progress.total, len(models), duration(progress.eta(done)))
    if not deviation:
        return np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate(deviation), np.concatenate(atom)


def write_exploration(folder, symbols: Sequence[str], trajectory: Trajectory, replicas: Sequence[Replica], deviation: np.ndarray, atom: np.ndarray) -> None:
    """``trajectory.extxyz`` (frames with their deviation in the info line) and ``model_devi.csv`` (one row per frame)."""
    import ase
    import ase.io
    import pandas as pd

    folder = Path(folder)
    frames = []
    for k, positions in enumerate(trajectory.positions):
        info = {"replica": trajectory.replica[k], "step": trajectory.step[k], "max_devi_f": float(deviation[k]), "devi_atom": int(atom[k])}
        frames.append(ase.Atoms(symbols=list(symbols), positions=positions, cell=trajectory.cells[k], pbc=True, info=info))
    ase.io.write(folder / "trajectory.extxyz", frames, format="extxyz")
    table = pd.DataFrame(
        {
            "frame": np.arange(len(frames)),
            "replica": trajectory.replica,
            "step": trajectory.step,
            "kind": [replicas[r].kind for r in trajectory.replica],
            "temperature_K": [replicas[r].temperature for r in trajectory.replica],
            "density_per_A3": [replicas[r].density for r in trajectory.replica],
            "max_devi_f_eV_per_A": deviation,
            "devi_atom": atom,
        }
    )
    table.to_csv(folder / "model_devi.csv", index=False)


def read_exploration(folder) -> tuple[list[str], list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Symbols, frame positions, orthorhombic box lengths, max deviation and its atom, from :func:`write_exploration`."""
    import ase.io
    import pandas as pd

    folder = Path(folder)
    try:
        table = pd.read_csv(folder / "model_devi.csv")
        if len(table) == 0:
            return [], [], [], np.zeros(0), np.zeros(0, dtype=int)
        if table.isna().any().any():
            raise ValueError("incomplete rows")
        deviation, atom = table["max_devi_f_eV_per_A"].to_numpy(), table["devi_atom"].to_numpy()
    except (OSError, ValueError, KeyError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise damaged_input(folder / "model_devi.csv", "exploration table", "mlip_explore", exc, folder) from None
    try:
        frames = ase.io.read(folder / "trajectory.extxyz", index=":", format="extxyz")
    except Exception as exc:  # ase raises XYZError, ValueError or IndexError for a truncated file
        raise damaged_input(folder / "trajectory.extxyz", "exploration trajectory", "mlip_explore", exc, folder) from None
    if len(frames) != len(table):
        raise damaged_input(folder, "exploration output", "mlip_explore", f"{len(frames)} frames in trajectory.extxyz, {len(table)} rows in model_devi.csv", folder)
    symbols = frames[0].get_chemical_symbols()
    return (
        symbols,
        [f.get_positions() for f in frames],
        [f.cell.lengths() for f in frames],
        deviation,
        atom,
    )


def replica_record(replica: Replica) -> dict[str, Any]:
    """A JSON-serialisable description of a replica (with its external potential, rebuildable exactly)."""
    return {
        "kind": replica.kind,
        "temperature_K": replica.temperature,
        "density_per_A3": replica.density,
        "cell_lengths_A": list(replica.cell_lengths),
        "slab_width": replica.slab_width,
        "external": None if replica.external is None else replica.external.to_dict(),
        "seed": replica.seed,
    }
