"""Exploration: Langevin MD with the newest model at the state points the campaign will sample.

Per temperature (evenly spanning the system's range) the replicas are bulk boxes from vapour to
liquid density, a liquid-vapour slab (a liquid film in a box three times longer along z) and liquid
boxes in random planar external potentials of the sampling stage's families. All replicas hold the
same molecules, so one batched engine runs them together. Model 0 drives the dynamics (as in
DP-GEN); every ensemble member then evaluates the saved frames for the force deviation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..external import ExternalPotential, RandomPotentialSettings, random_potential
from ..molecules import Molecule


@dataclass(frozen=True)
class Replica:
    """One exploration run: its kind, temperature (K), box (Å), external potential and seed."""

    kind: str  # "bulk", "slab" or "external"
    temperature: float
    density: float  # molecules / Å^3 of the region the molecules start in
    cell_lengths: tuple[float, float, float]
    film: tuple[float, float]  # z range (Å) the molecules start in
    external: ExternalPotential | None
    seed: int


def replica_seed(seed: int, system: str, iteration: int, index: int) -> int:
    return int(np.random.default_rng([seed, sum(system.encode()), iteration, index, 7]).integers(1, 2**31 - 1))


def state_points(
    system: str,
    explore: Mapping[str, Any],
    temperature_range: Sequence[float],
    seed: int,
    iteration: int,
    rcut: float,
    external_settings: RandomPotentialSettings = RandomPotentialSettings(),
) -> list[Replica]:
    """The replicas of one exploration job (see the module docstring)."""
    n = explore["molecules"]
    liquid = explore["liquid_density"][system]
    temperatures = np.linspace(temperature_range[0], temperature_range[1], explore["temperatures"])
    replicas: list[Replica] = []

    def add(kind: str, temperature: float, density: float, lengths: tuple[float, float, float], film: tuple[float, float], external=None):
        replicas.append(Replica(kind, float(temperature), density, lengths, film, external, replica_seed(seed, system, iteration, len(replicas))))

    liquid_edge = (n / liquid) ** (1.0 / 3.0)
    for temperature in temperatures:
        for fraction in explore["density_fractions"]:
            edge = (n / (fraction * liquid)) ** (1.0 / 3.0)
            add("bulk", temperature, fraction * liquid, (edge, edge, edge), (0.0, edge))
        if explore["slab"]:
            add("slab", temperature, liquid, (liquid_edge, liquid_edge, 3 * liquid_edge), (liquid_edge, 2 * liquid_edge))
        for k in range(explore["external_potentials"]):
            draw_seed = [seed, sum(system.encode()), iteration, len(replicas), 11]
            potential = random_potential(draw_seed, liquid_edge, external_settings)
            add("external", temperature, liquid, (liquid_edge,) * 3, (0.0, liquid_edge), potential)
    if 2 * rcut > liquid_edge:
        raise UserError(
            f"config key 'mlip.explore.molecules': {n} molecules at liquid density make a {liquid_edge:.1f} Å box, "
            f"shorter than twice the model cutoff {rcut} Å (mlip.descriptor.rcut); use more molecules"
        )
    return replicas


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def lattice_configuration(molecule: Molecule, n_molecules: int, cell_lengths: Sequence[float], film: Sequence[float], rng) -> np.ndarray:
    """Molecules with random orientations on a simple-cubic grid filling the film z in ``film``; (3n, 3) Å.

    A grid keeps the centres apart at any density; the short minimisation that follows removes the
    remaining close contacts between partner atoms.
    """
    extent = np.array([cell_lengths[0], cell_lengths[1], film[1] - film[0]])
    per_side = math.ceil(n_molecules ** (1.0 / 3.0))
    grid = (np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / per_side
    sites = grid[rng.permutation(len(grid))[:n_molecules]] * extent + np.array([0.0, 0.0, film[0]])
    template = molecule.geometry()
    return np.concatenate([site + template @ random_rotation(rng).T for site in sites])


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


def run_exploration(potential, molecule: Molecule, replicas: Sequence[Replica], explore: Mapping[str, Any], minimise_steps: int = 20):
    """Minimise, then run Langevin MD of all replicas in one batch; returns the trajectory and failures."""
    from ..md.engine import FailureChecks, LangevinEngine
    from ..md.potential import METAL

    n = explore["molecules"]
    symbols = list(molecule.symbols) * n
    positions = np.stack([lattice_configuration(molecule, n, r.cell_lengths, r.film, np.random.default_rng(r.seed)) for r in replicas])
    site = molecule.site_index()
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
        checks=FailureChecks(molecule=molecule),
    )
    engine.minimise(minimise_steps, max_displacement=0.01)  # removes the grid's closest contacts only
    trajectory = Trajectory([], [], [], [])
    every = max(1, explore["steps"] // explore["frames"])
    engine.run(explore["steps"], callback=trajectory.record, every=every)
    return symbols, trajectory, dict(engine.failures)


def expected_frames(explore: Mapping[str, Any]) -> int:
    """Frames a replica that does not fail saves (one every steps // frames steps)."""
    return explore["steps"] // max(1, explore["steps"] // explore["frames"])


def frame_deviations(models: Sequence, trajectory: Trajectory, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Max force deviation over the ensemble (eV/Å) and the atom where it occurs, per saved frame."""
    from .deepmd_potential import ensemble_forces, max_force_deviation

    deviation, atom = [], []
    for start in range(0, len(trajectory.positions), batch):
        stop = start + batch
        forces = ensemble_forces(models, np.stack(trajectory.positions[start:stop]), np.stack(trajectory.cells[start:stop]))
        d, a = max_force_deviation(forces)
        deviation.append(d)
        atom.append(a)
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
    table = pd.read_csv(folder / "model_devi.csv")
    if len(table) == 0:
        return [], [], [], np.zeros(0), np.zeros(0, dtype=int)
    frames = ase.io.read(folder / "trajectory.extxyz", index=":", format="extxyz")
    symbols = frames[0].get_chemical_symbols()
    return (
        symbols,
        [f.get_positions() for f in frames],
        [f.cell.lengths() for f in frames],
        table["max_devi_f_eV_per_A"].to_numpy(),
        table["devi_atom"].to_numpy(),
    )


def replica_record(replica: Replica) -> dict[str, Any]:
    """A JSON-serialisable description of a replica (with its external potential, rebuildable exactly)."""
    return {
        "kind": replica.kind,
        "temperature_K": replica.temperature,
        "density_per_A3": replica.density,
        "cell_lengths_A": list(replica.cell_lengths),
        "film_A": list(replica.film),
        "external": None if replica.external is None else replica.external.to_dict(),
        "seed": replica.seed,
    }
