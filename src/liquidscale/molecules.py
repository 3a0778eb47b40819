"""Molecule definitions for water and CO2 and helpers that group atoms into whole molecules.

Both molecules are triatomics with a *centre* atom (O in water, C in CO2) bonded to two partners,
so one set of helpers serves both. Atoms of a configuration are grouped by assigning every partner
atom to its nearest centre (minimum image in periodic cells); that grouping cuts clusters of whole
molecules out of a bulk frame and detects dissociated molecules (a centre with the wrong number of
partners, or a bond stretched beyond a threshold).

Units: Å, degrees, atomic mass units. Only numpy is imported here, so every stage may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UserError

# IUPAC 2021 conventional standard atomic weights (u).
ATOMIC_MASSES: dict[str, float] = {"H": 1.008, "C": 12.011, "O": 15.999}


@dataclass(frozen=True)
class Molecule:
    """A triatomic molecule: ``symbols[0]`` is the centre bonded to ``symbols[1]`` and ``symbols[2]``."""

    name: str
    symbols: tuple[str, str, str]
    bond_length: float  # Å, centre-partner equilibrium distance
    angle: float  # degrees, partner-centre-partner equilibrium angle
    type_map: tuple[str, ...]  # DeePMD/dpdata element order for this system
    default_site: str  # element whose one-body density the cDFT describes

    @property
    def centre(self) -> str:
        return self.symbols[0]

    @property
    def partner(self) -> str:
        return self.symbols[1]

    @property
    def masses(self) -> np.ndarray:
        return np.array([ATOMIC_MASSES[s] for s in self.symbols])

    @property
    def mass(self) -> float:
        return float(self.masses.sum())

    def geometry(self, bond_lengths: tuple[float, float] | None = None, angle: float | None = None) -> np.ndarray:
        """Cartesian positions (3, 3) in Å, centre at the origin; equilibrium unless overridden."""
        r1, r2 = bond_lengths if bond_lengths is not None else (self.bond_length, self.bond_length)
        theta = np.deg2rad(self.angle if angle is None else angle)
        return np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(theta), r2 * np.sin(theta), 0.0]])

    def max_bond(self, factor: float = 1.35) -> float:
        """Centre-partner distance beyond which a molecule counts as dissociated."""
        return factor * self.bond_length

    def site_index(self, site: str | None = None) -> int:
        """Index within the molecule of the density site (``default_site`` unless given)."""
        site = self.default_site if site is None else site
        if site not in self.symbols:
            raise UserError(f"density site '{site}' is not an element of {self.name} ({'/'.join(self.symbols)})")
        return self.symbols.index(site)

    def formula(self, n_molecules: int) -> str:
        """Composition label of ``n_molecules`` molecules, e.g. ``O6H12`` (see :func:`formula`)."""
        return formula(list(self.symbols) * n_molecules, self.type_map)


def formula(symbols: Sequence[str], type_map: Sequence[str]) -> str:
    """Composition in ``type_map`` order, the way dpdata names MultiSystems folders (``O6H12``, ``C2O4``)."""
    return "".join(f"{el}{n}" for el in type_map if (n := list(symbols).count(el)))


# Gas-phase experimental equilibrium geometries: water r(OH) = 0.9572 Å, HOH = 104.52°
# (Hoy & Bunker 1979); CO2 r(CO) = 1.1600 Å, linear.
WATER = Molecule("water", ("O", "H", "H"), 0.9572, 104.52, ("O", "H"), "O")
CO2 = Molecule("co2", ("C", "O", "O"), 1.1600, 180.0, ("C", "O"), "C")
MOLECULES: dict[str, Molecule] = {"water": WATER, "co2": CO2}


def get_molecule(system: str) -> Molecule:
    try:
        return MOLECULES[system]
    except KeyError:
        raise UserError(f"system '{system}' is not molecular; expected one of {sorted(MOLECULES)}") from None


def minimum_image(vectors: np.ndarray, cell: np.ndarray | None) -> np.ndarray:
    """Shortest periodic images of displacement ``vectors`` (..., 3); unchanged when ``cell`` is None.

    Exact for orthorhombic cells and for triclinic cells that are not strongly skewed.
    """
    if cell is None:
        return vectors
    cell = np.asarray(cell, dtype=float)
    frac = vectors @ np.linalg.inv(cell)
    return (frac - np.round(frac)) @ cell


@dataclass(frozen=True)
class Grouping:
    """Atoms grouped by molecule: ``members[m]`` lists atom indices in the molecule template's order."""

    members: np.ndarray  # (n_molecules, 3) int; only meaningful where the grouping is intact
    intact: bool
    reason: str  # empty when intact


def group_molecules(
    symbols: Sequence[str],
    positions: np.ndarray,
    molecule: Molecule,
    cell: np.ndarray | None = None,
    bond_factor: float = 1.35,
) -> Grouping:
    """Assign every partner atom to its nearest centre atom and check that each molecule is whole.

    Not intact (with the reason) when an element foreign to the molecule appears, when a centre has
    other than two partners, or when a centre-partner distance exceeds ``molecule.max_bond(bond_factor)``.
    """
    symbols = np.asarray(symbols)
    positions = np.asarray(positions, dtype=float)
    foreign = sorted(set(symbols.tolist()) - set(molecule.symbols))
    if foreign:
        return Grouping(np.empty((0, 3), dtype=int), False, f"elements {foreign} are not part of {molecule.name}")
    centres = np.flatnonzero(symbols == molecule.centre)
    # In CO2 the partner element (O) differs from the centre (C), in water likewise (H vs O).
    partners = np.flatnonzero(symbols == molecule.partner)
    if len(partners) != 2 * len(centres):
        return Grouping(np.empty((0, 3), dtype=int), False, f"{len(partners)} {molecule.partner} atoms for {len(centres)} {molecule.centre} atoms")
    if len(centres) == 0:
        return Grouping(np.empty((0, 3), dtype=int), True, "")
    d = np.linalg.norm(minimum_image(positions[partners][:, None, :] - positions[centres][None, :, :], cell), axis=-1)
    owner = np.argmin(d, axis=1)
    members = np.empty((len(centres), 3), dtype=int)
    members[:, 0] = centres
    for m in range(len(centres)):
        mine = partners[owner == m]
        if len(mine) != 2:
            return Grouping(members, False, f"{molecule.centre} atom {centres[m]} has {len(mine)} {molecule.partner} partners")
        members[m, 1:] = mine
    longest = float(d[np.arange(len(partners)), owner].max())
    if longest > molecule.max_bond(bond_factor):
        return Grouping(members, False, f"a {molecule.centre}-{molecule.partner} bond is {longest:.2f} Å > {molecule.max_bond(bond_factor):.2f} Å")
    return Grouping(members, True, "")


def is_dissociated(symbols: Sequence[str], positions: np.ndarray, molecule: Molecule, cell: np.ndarray | None = None) -> bool:
    """True when the atoms cannot be grouped into whole, bonded molecules (see :func:`group_molecules`)."""
    return not group_molecules(symbols, positions, molecule, cell).intact


def whole_molecule_positions(positions: np.ndarray, members: np.ndarray, cell: np.ndarray | None) -> np.ndarray:
    """Positions (n_molecules, 3, 3) with each molecule's partners moved to the centre's periodic image."""
    positions = np.asarray(positions, dtype=float)
    centre = positions[members[:, 0]][:, None, :]
    return centre + minimum_image(positions[members] - centre, cell)


def molecules_around(symbols: Sequence[str], positions: np.ndarray, molecule: Molecule, around_atom: int, cell: np.ndarray | None) -> np.ndarray:
    """Every molecule made whole across periodic boundaries, at its image nearest to atom ``around_atom``
    and shifted so that atom is the origin: (n_molecules, 3, 3), atoms in template order."""
    grouping = group_molecules(symbols, positions, molecule, cell)
    if not grouping.intact:
        raise ValueError(f"cannot cut a cluster from a frame with broken molecules: {grouping.reason}")
    positions = np.asarray(positions, dtype=float)
    whole = whole_molecule_positions(positions, grouping.members, cell)
    origin = positions[around_atom]
    shift = minimum_image(whole[:, 0, :] - origin, cell) - (whole[:, 0, :] - origin)
    return whole + shift[:, None, :] - origin


def cut_environment(
    symbols: Sequence[str],
    positions: np.ndarray,
    molecule: Molecule,
    around_atom: int,
    core_radius: float,
    shell: float,
    cell: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A finite cluster that holds the complete environment of its core atoms: (symbols, positions, core).

    The core is every atom within ``core_radius`` of atom ``around_atom``; the cluster is every whole
    molecule with an atom within ``core_radius + shell`` of it, so each core atom sees all its neighbours
    out to ``shell`` (the descriptor's rcut in production) as in the bulk. Only core forces are bulk-like:
    ``core`` marks them (the held-out bulk error is measured on them). Molecules are ordered by distance (the
    selected molecule first) and centred on ``around_atom``. A periodic box must be wider than twice the
    cut, or a molecule would have to appear twice.
    """
    reach = core_radius + shell
    if cell is not None and 2 * reach > np.min(np.linalg.norm(np.asarray(cell, dtype=float), axis=1)):
        raise ValueError(f"the environment cut (core {core_radius} + shell {shell} Å) does not fit twice into the periodic box")
    whole = molecules_around(symbols, positions, molecule, around_atom, cell)
    distance = np.linalg.norm(whole, axis=-1)
    order = np.argsort(distance.min(axis=1), kind="stable")
    kept = order[distance[order].min(axis=1) <= reach]
    core = distance[kept].reshape(-1) <= core_radius
    return list(molecule.symbols) * len(kept), whole[kept].reshape(-1, 3), core
