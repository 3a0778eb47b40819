"""Labelled data for training: gather every iteration's dpdata folders, split held-out frames, size ``sel``.

Held-out bulk environments (the reference stage's ``data/bulk/``) go to ``bulk/`` whole and are never
trained on. Of the rest, the split is by frame, drawn over all frames of one reference iteration (its compositions pooled,
so small compositions are not over-represented) and seeded by (config seed, source iteration): a
frame held out in iteration i stays held out in every later iteration, so test metrics never see a
frame that an earlier or later model trained on.
"""

from __future__ import annotations

import functools
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, damaged_input


@dataclass(frozen=True)
class Frames:
    """Frames of one composition in numpy form: the subset of dpdata's fields this stage needs."""

    atom_types: np.ndarray  # (N,) int indices into the type map
    coords: np.ndarray  # (F, N, 3) Å
    cells: np.ndarray | None  # (F, 3, 3) Å, None for clusters (no periodic boundaries)
    energies: np.ndarray  # (F,) eV
    forces: np.ndarray  # (F, N, 3) eV/Å
    weights: np.ndarray  # (F, N) per-atom force weight in training and testing (``reference.output.force_weights``)


@functools.cache
def register_atom_pref() -> None:
    """Make dpdata keep the force weights (``atom_pref.npy``) once per force component, (frames, atoms, 3).

    dpdata knows them per atom, (frames, atoms), the layout DeePMD documents; but DeePMD-kit 3.2's PyTorch data
    loader reads the file frame by frame without the per-atom repeat its loss expects, so that layout fails to
    train. (Its batch loader, used by ``dp test``, does repeat, and so rejects this layout: liquidscale evaluates
    held-out errors itself.) Registered once per process (dpdata warns about the redefinition, which is meant).
    """
    import dpdata
    from dpdata.data_type import Axis, DataType

    atom_pref = DataType("atom_pref", np.ndarray, (Axis.NFRAMES, Axis.NATOMS, 3), required=False, deepmd_name="atom_pref")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Data type atom_pref is registered twice")
        for cls in (dpdata.System, dpdata.LabeledSystem):
            cls.register_data_type(atom_pref)


def per_component(weights: np.ndarray) -> np.ndarray:
    """Per-atom weights (..., atoms) as the stored per-component array (..., atoms, 3)."""
    return np.repeat(np.asarray(weights, dtype=float)[..., None], 3, axis=-1)


def system_folders(data_dirs: Sequence[str | Path]) -> list[Path]:
    """The dpdata ``deepmd/npy`` system folders (those holding ``type.raw``) below each data folder."""
    folders: list[Path] = []
    for data_dir in map(Path, data_dirs):
        if not data_dir.is_dir():
            raise UserError(f"{data_dir}: labelled-data folder not found; run the reference stage first")
        folders.extend(sorted(p.parent for p in data_dir.rglob("type.raw")))
    return folders


def labelled_system(folder: str | Path, type_map: Sequence[str], rule: str, output: str | Path | None = None):
    """dpdata's ``LabeledSystem`` of one ``deepmd/npy`` folder; a truncated or incomplete folder is a
    one-line error naming it and ``rule``, the rule that writes it (into its folder ``output``)."""
    import dpdata
    from dpdata.data_type import DataError

    register_atom_pref()
    try:
        system = dpdata.LabeledSystem(str(folder), fmt="deepmd/npy", type_map=list(type_map))
    except (OSError, EOFError, ValueError, KeyError, IndexError, DataError) as exc:
        raise damaged_input(folder, "dpdata deepmd/npy folder", rule, exc, output) from None
    missing = [label for label in ("energies", "forces") if label not in system.data]
    if missing:
        raise damaged_input(folder, "dpdata deepmd/npy folder", rule, f"no {' or '.join(missing)}", output)
    return system


def check_folders(data_dir: str | Path, type_map: Sequence[str], rule: str, output: str | Path) -> None:
    """Read every system folder below ``data_dir`` once, so a damaged one stops the job before DeePMD starts."""
    for type_file in sorted(Path(data_dir).rglob("type.raw")):
        labelled_system(type_file.parent, type_map, rule, output)


def load_frames(folder: str | Path, type_map: Sequence[str], rule: str = "mlip_data") -> Frames:
    """Read one ``deepmd/npy`` folder with atom types mapped onto ``type_map``."""
    system = labelled_system(folder, type_map, rule)
    unknown = set(system["atom_names"]) - set(type_map)
    if unknown:
        raise UserError(f"{folder}: elements {sorted(unknown)} are not in the type map {list(type_map)} (config key 'mlip.type_map')")
    periodic = not system.nopbc
    return Frames(
        atom_types=np.asarray(system["atom_types"], dtype=int),
        coords=np.asarray(system["coords"], dtype=float),
        cells=np.asarray(system["cells"], dtype=float) if periodic else None,
        energies=np.asarray(system["energies"], dtype=float),
        forces=np.asarray(system["forces"], dtype=float),
        weights=np.asarray(system.data["atom_pref"][..., 0] if "atom_pref" in system.data else np.ones(system["coords"].shape[:2]), dtype=float),
    )


def held_out_mask(n_frames: int, fraction: float, seed: int, source_iteration: int) -> np.ndarray:
    """Boolean mask of held-out frames of one source iteration; at least one frame is kept for training."""
    rng = np.random.default_rng([seed, source_iteration, zlib.crc32(b"held-out")])
    n_test = min(int(round(fraction * n_frames)), n_frames - 1)
    mask = np.zeros(n_frames, dtype=bool)
    mask[rng.permutation(n_frames)[: max(n_test, 0)]] = True
    return mask


def split_data(
    iteration_dirs: Sequence[tuple[int, Path]], type_map: Sequence[str], fraction: float, seed: int, out_dir: Path
) -> dict[str, int]:
    """Write ``out_dir/train/``, ``out_dir/test/`` and ``out_dir/bulk/`` (one folder per source iteration,
    kind and composition).

    ``iteration_dirs`` pairs each reference iteration with its ``data/`` folder. Returns frame counts.
    """
    counts = {"train": 0, "test": 0, "bulk": 0}
    for iteration, data_dir in iteration_dirs:
        for folder in system_folders([data_dir / "bulk"]) if (data_dir / "bulk").is_dir() else []:
            system = labelled_system(folder, type_map, "reference_collect", data_dir)
            system.to_deepmd_npy(str(out_dir / "bulk" / f"iter{iteration:03d}_{folder.name}"))
            counts["bulk"] += len(system)
        folders = [f for f in system_folders([data_dir]) if f.parent.name != "bulk"]
        systems = [labelled_system(folder, type_map, "reference_collect", data_dir) for folder in folders]
        sizes = [len(system) for system in systems]
        masks = np.split(held_out_mask(sum(sizes), fraction, seed, iteration), np.cumsum(sizes)[:-1])
        for folder, system, mask in zip(folders, systems, masks):
            for part, indices in (("test", np.flatnonzero(mask)), ("train", np.flatnonzero(~mask))):
                if len(indices):
                    system.sub_system(indices).to_deepmd_npy(str(out_dir / part / f"iter{iteration:03d}_{folder.parent.name}_{folder.name}"))
                    counts[part] += len(indices)
    if counts["train"] == 0:
        raise UserError(f"no labelled frames found in {[str(d) for _, d in iteration_dirs]}; the reference stage produced no data")
    return counts


def neighbour_counts(frames: Frames, rcut: float, n_types: int) -> np.ndarray:
    """Largest number of neighbours of each type within ``rcut`` of any atom over all frames, shape (n_types,).

    A periodic neighbour is counted once, at its nearest image (the cell-list search of
    ``liquidscale.md.neighbours``: memory O(N) per frame, not the N x N distance matrix).
    """
    from ..md.neighbours import pairs_within

    n_atoms = len(frames.atom_types)
    best = np.zeros(n_types, dtype=int)
    for f in range(len(frames.coords)):
        i, j, _ = pairs_within(frames.coords[f], None if frames.cells is None else frames.cells[f], rcut)
        per_atom = np.zeros((n_atoms, n_types), dtype=int)
        np.add.at(per_atom, (i, frames.atom_types[j]), 1)
        np.add.at(per_atom, (j, frames.atom_types[i]), 1)
        best = np.maximum(best, per_atom.max(axis=0, initial=0))
    return best


def bulk_neighbour_estimate(rcut: float, molecule_density: float, atoms_per_molecule: Sequence[int]) -> np.ndarray:
    """Mean neighbours of each type in a sphere of radius ``rcut`` in the liquid (molecules/Å^3)."""
    volume = 4.0 / 3.0 * math.pi * rcut**3
    return np.array([volume * molecule_density * n for n in atoms_per_molecule])


def auto_sel(data_counts: np.ndarray, bulk_estimate: np.ndarray, margin: float = 1.5) -> list[int]:
    """``sel`` per type: the larger of what the data shows and the liquid's mean count, with a margin.

    Training data are small clusters, but the models must run in the dense liquid the campaign
    explores; a ``sel`` sized only from clusters would silently drop neighbours there.
    """
    needed = np.maximum(data_counts, bulk_estimate) * margin
    return [int(math.ceil(n / 2.0) * 2) for n in needed]
