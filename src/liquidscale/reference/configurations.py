"""Configurations to label: random molecular clusters, bulk environments, and frames read from extxyz files.

A cluster of n molecules fills a sphere whose volume matches the configured molecular number
density; each molecule gets a uniformly random centre of mass in the sphere, a uniformly random
orientation and a thermally distorted geometry (Gaussian bond-length and bond-angle jitter). A
molecule whose atoms come closer than ``min_distance`` to another molecule's atoms is redrawn, so
clusters never overlap. Everything is drawn from one generator seeded by the config seed and the
system name, so the same config always gives the same clusters.

Bulk environments give iteration 0 what gas-phase clusters lack, atoms whose whole descriptor sphere is
filled as in the liquid: a periodic box of molecules is packed at the sampling stage's highest density
(same non-overlap rule, with periodic images) and an environment is cut around a random atom (see
:func:`liquidscale.molecules.cut_environment`); its shell atoms' forces train with ``shell_force_weight``. The last
``bulk_test_frames`` of them are never trained on: they are the held-out bulk set whose core-atom force
error the mlip stage reports per iteration.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import atomic_path
from ..molecules import Molecule

MAX_PLACEMENT_TRIES = 2000


@dataclass
class Frame:
    """One finite configuration: element symbols, positions in Å and free-form metadata."""

    symbols: list[str]
    positions: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    core: np.ndarray | None = None  # per atom: True where the force is bulk-like (trained on); None: every atom


def system_stream(system: str) -> int:
    """A stable integer per system that, with the config seed, seeds that system's clusters."""
    return zlib.crc32(system.encode())


def system_rng(seed: int, system: str) -> np.random.Generator:
    """The generator for one system's clusters: independent of other systems, fixed by the seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, system_stream(system)]))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniformly distributed on SO(3) (from a normalised Gaussian quaternion)."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def distorted_molecule(molecule: Molecule, rng: np.random.Generator, bond_jitter: float, angle_jitter: float) -> np.ndarray:
    """Molecule positions (3, 3) with jittered bonds and angle, centre of mass at the origin.

    An angle beyond 180° is folded back (a bent linear molecule bends the same way either side).
    """
    bonds = molecule.bond_length + bond_jitter * rng.normal(size=2)
    angle = molecule.angle + angle_jitter * rng.normal()
    angle = 360.0 - angle if angle > 180.0 else angle
    xyz = molecule.geometry((float(bonds[0]), float(bonds[1])), float(angle))
    return xyz - molecule.masses @ xyz / molecule.mass


def cluster_radius(n_molecules: int, density: float) -> float:
    """Radius in Å of the sphere holding ``n_molecules`` at ``density`` molecules per Å^3."""
    return float((3.0 * n_molecules / (4.0 * np.pi * density)) ** (1.0 / 3.0))


def uniform_in_sphere(rng: np.random.Generator, radius: float) -> np.ndarray:
    direction = rng.normal(size=3)
    return radius * rng.random() ** (1.0 / 3.0) * direction / np.linalg.norm(direction)


def random_cluster(molecule: Molecule, n_molecules: int, rng: np.random.Generator, initial: Mapping[str, Any]) -> np.ndarray:
    """Positions (3 n, 3) of a non-overlapping, thermally distorted cluster (molecules in order)."""
    radius = cluster_radius(n_molecules, initial["density"])
    placed: list[np.ndarray] = []
    for _ in range(n_molecules):
        for _ in range(MAX_PLACEMENT_TRIES):
            xyz = distorted_molecule(molecule, rng, initial["bond_jitter"], initial["angle_jitter"])
            xyz = xyz @ random_rotation(rng).T + uniform_in_sphere(rng, radius)
            if not placed or min_intermolecular_distance(np.concatenate(placed), xyz) >= initial["min_distance"]:
                placed.append(xyz)
                break
        else:
            raise UserError(
                f"config keys 'reference.initial.density'/'min_distance': cannot place {n_molecules} {molecule.name} molecules "
                f"without overlap in a sphere of radius {radius:.2f} Å; lower the density or min_distance"
            )
    return np.concatenate(placed)


def min_intermolecular_distance(others: np.ndarray, xyz: np.ndarray, cell: np.ndarray | None = None) -> float:
    from ..molecules import minimum_image

    return float(np.linalg.norm(minimum_image(others[:, None, :] - xyz[None, :, :], cell), axis=-1).min())


def packed_box(molecule: Molecule, n_molecules: int, density: float, rng: np.random.Generator, initial: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (3 n, 3) and cubic cell (3, 3) of ``n_molecules`` randomly placed, distorted molecules at
    ``density`` (Å^-3) with periodic boundaries, no two closer than ``min_distance`` (nearest images)."""
    side = (n_molecules / density) ** (1.0 / 3.0)
    cell = np.eye(3) * side
    placed: list[np.ndarray] = []
    for _ in range(n_molecules):
        for _ in range(MAX_PLACEMENT_TRIES):
            xyz = distorted_molecule(molecule, rng, initial["bond_jitter"], initial["angle_jitter"])
            xyz = xyz @ random_rotation(rng).T + side * rng.random(3)
            if not placed or min_intermolecular_distance(np.concatenate(placed), xyz, cell) >= initial["min_distance"]:
                placed.append(xyz)
                break
        else:
            raise UserError(
                f"config key 'reference.initial.min_distance': cannot pack {n_molecules} {molecule.name} molecules at "
                f"{density:g} Å^-3 without overlap; lower min_distance or reference.environment.bulk_molecules"
            )
    return np.concatenate(placed), cell


def bulk_environments(molecule: Molecule, environment: Mapping[str, Any], initial: Mapping[str, Any], density: float, seed: int) -> list[Frame]:
    """``bulk_frames + bulk_test_frames`` environments, each cut from its own packed box around a random atom;
    the last ``bulk_test_frames`` are marked ``held_out`` (never trained on)."""
    from ..molecules import cut_environment

    rng = np.random.default_rng(np.random.SeedSequence([seed, system_stream(molecule.name), zlib.crc32(b"bulk")]))
    total = environment["bulk_frames"] + environment["bulk_test_frames"]
    frames = []
    for k in range(total):
        positions, cell = packed_box(molecule, environment["bulk_molecules"], density, rng, initial)
        symbols = list(molecule.symbols) * environment["bulk_molecules"]
        atom = int(rng.integers(len(symbols)))
        cut_symbols, cut_positions, core = cut_environment(symbols, positions, molecule, atom, environment["core_radius"], environment["shell"], cell)
        held_out = int(k >= environment["bulk_frames"])
        frames.append(Frame(cut_symbols, cut_positions, {"source": "bulk", "kind": "environment", "held_out": held_out}, core))
    return frames


def initial_clusters(molecule: Molecule, initial: Mapping[str, Any], seed: int) -> list[Frame]:
    """``frames_per_size`` clusters for every size in ``cluster_sizes``, reproducible from ``seed``."""
    rng = system_rng(seed, molecule.name)
    frames = []
    for n in initial["cluster_sizes"]:
        for _ in range(initial["frames_per_size"]):
            xyz = random_cluster(molecule, n, rng, initial)
            frames.append(Frame(list(molecule.symbols) * n, xyz, {"source": "cluster", "n_molecules": n}))
    return frames


def read_extxyz(path: str | Path, molecule: Molecule, source: str) -> list[Frame]:
    """Finite frames from an extxyz file; a periodic frame or a foreign element is a UserError."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: configurations file not found")
    if path.stat().st_size == 0:
        return []
    try:
        atoms_list = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:
        raise UserError(f"{path}: not a readable extxyz file ({exc})") from None
    frames = []
    for i, atoms in enumerate(atoms_list):
        symbols = atoms.get_chemical_symbols()
        foreign = sorted(set(symbols) - set(molecule.symbols))
        if foreign:
            raise UserError(f"{path}: frame {i} contains {foreign}, which are not elements of {molecule.name}")
        if atoms.pbc.any():
            raise UserError(
                f"{path}: frame {i} is periodic; the reference stage labels finite clusters "
                "(cut them from bulk frames with liquidscale.molecules.cut_environment)"
            )
        # ase reads numbers as numpy scalars; arrays and other objects are not carried on
        info = {k: v.item() if isinstance(v, np.generic) else v for k, v in atoms.info.items() if isinstance(v, (str, int, float, np.generic))}
        info.setdefault("source", f"{source}:{i}")
        core = np.asarray(atoms.arrays["core"], dtype=bool) if "core" in atoms.arrays else None
        frames.append(Frame(symbols, atoms.get_positions(), info, core))
    return frames


def number_frames(frames: list[Frame]) -> list[Frame]:
    """Give each frame its position in the file as ``frame``: the key that ties labels, failures and summary rows."""
    for i, frame in enumerate(frames):
        frame.info["frame"] = i
    return frames


def frames_to_atoms(frames: list[Frame]):
    """ase Atoms of finite frames; an environment's core mask travels as the per-atom array ``core``."""
    import ase

    atoms_list = []
    for f in frames:
        atoms = ase.Atoms(symbols=f.symbols, positions=f.positions, info=dict(f.info), pbc=False)
        if f.core is not None:
            atoms.arrays["core"] = np.asarray(f.core, dtype=bool)
        atoms_list.append(atoms)
    return atoms_list


def write_extxyz(path: str | Path, atoms_list) -> None:
    """Write ase Atoms (with any attached results) atomically; an empty list gives an empty file."""
    import ase.io

    with atomic_path(path) as tmp:
        tmp.write_text("")
        if atoms_list:
            ase.io.write(tmp, atoms_list, format="extxyz")


def iteration0_configurations(molecule: Molecule, reference: Mapping[str, Any], seed: int, extra: str | Path | None, density: float) -> list[Frame]:
    """Iteration 0's frames: the random clusters, the bulk environments (packed at ``density``, Å^-3), then
    any extra configurations, numbered in order."""
    frames = initial_clusters(molecule, reference["initial"], seed)
    frames += bulk_environments(molecule, reference["environment"], reference["initial"], density, seed)
    if extra is not None:
        frames += read_extxyz(extra, molecule, source=Path(extra).name)
    return number_frames(frames)


def assign_shards(frames: list[Frame], shards: int) -> list[list[Frame]]:
    """Split frames between labelling jobs so their costs balance (largest first, to the least-loaded
    shard); the cost of a DFT label is taken as n_atoms^3. Deterministic; each shard keeps file order."""
    loads = [0.0] * shards
    members: list[list[int]] = [[] for _ in range(shards)]
    for i in sorted(range(len(frames)), key=lambda i: (-len(frames[i].symbols), i)):
        k = loads.index(min(loads))
        loads[k] += len(frames[i].symbols) ** 3
        members[k].append(i)
    return [[frames[i] for i in sorted(m)] for m in members]
