"""Labelled data for training: gather every iteration's dpdata folders, split held-out frames, size ``sel``.

The split is by frame, drawn over all frames of one reference iteration (its compositions pooled,
so small compositions are not over-represented) and seeded by (config seed, source iteration): a
frame held out in iteration i stays held out in every later iteration, so test metrics never see a
frame that an earlier or later model trained on.

Clusters with core labels (a reference ``data/core/`` folder, with DeePMD's ``atom_pref.npy``: 1 on
core atoms, 0 elsewhere) are split on their own: their held-out frames form ``test_bulk/``, the bulk
environments whose core-atom force RMSE the test step reports, and at least one is held out once an
iteration has two. Their training copies lose ``energy.npy``, so DeePMD skips their energy term (the
cluster's energy includes its cut surface, which no liquid has) and trains on core forces only.
Every other training copy gets ``atom_pref.npy`` of ones: DeePMD's weighted force term, the only
force term the training input uses, skips a system without the file. Held-out copies keep dpdata's
layout (``dp test`` reads it with DeePMD's batch loader).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, damaged_input


CORE_FOLDER = "core"  # below a reference data folder: the clusters with core labels
ATOM_PREF = "atom_pref"  # DeePMD's per-atom force weight (atom_pref.npy)


@dataclass(frozen=True)
class Frames:
    """Frames of one composition in numpy form: the subset of dpdata's fields this stage needs."""

    atom_types: np.ndarray  # (N,) int indices into the type map
    coords: np.ndarray  # (F, N, 3) Å
    cells: np.ndarray | None  # (F, 3, 3) Å, None for clusters (no periodic boundaries)
    energies: np.ndarray | None  # (F,) eV; None for core-labelled training copies (no energy.npy)
    forces: np.ndarray  # (F, N, 3) eV/Å
    atom_pref: np.ndarray | None  # (F, N) force weights (1 core, 0 other atoms); None: all atoms count


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
        load_frames(type_file.parent, type_map, rule, output)


def load_frames(folder: str | Path, type_map: Sequence[str], rule: str = "mlip_data", output: str | Path | None = None) -> Frames:
    """Read one ``deepmd/npy`` folder with atom types mapped onto ``type_map``.

    The structure through dpdata, the labels from the set files: a core-labelled training copy has no
    ``energy.npy``, and its ``atom_pref.npy`` is in DeePMD's layout (see :func:`write_force_weights`).
    A truncated or incomplete folder is a one-line error naming ``rule``, the rule that writes it."""
    import dpdata

    folder = Path(folder)
    try:
        unknown = set(np.loadtxt(folder / "type_map.raw", dtype=str, ndmin=1)) - set(type_map)
        if unknown:
            raise UserError(f"{folder}: elements {sorted(unknown)} are not in the type map {list(type_map)} (config key 'mlip.type_map')")
        system = dpdata.System(str(folder), fmt="deepmd/npy", type_map=list(type_map))
        n_frames, n_atoms = system.get_nframes(), system.get_natoms()
        labels = {name: _set_files(folder, name) for name in ("energy", "force", ATOM_PREF)}
        missing = [name for name in ("force",) + (() if labels[ATOM_PREF] is not None else ("energy",)) if labels[name] is None]
        if missing:
            raise ValueError(f"no {' or '.join(missing)}.npy")
        # dpdata sorts atoms by type on reading; the set files keep the folder's order (type.raw)
        order = np.argsort(np.loadtxt(folder / "type.raw", dtype=int, ndmin=1), kind="stable")
        forces = labels["force"].reshape(n_frames, n_atoms, 3)[:, order]
        weights = labels[ATOM_PREF]
        if weights is not None:
            weights = weights.reshape(n_frames, n_atoms, -1)[:, order, 0]
        energies = None if labels["energy"] is None else labels["energy"].reshape(n_frames)
    except UserError:
        raise
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise damaged_input(folder, "dpdata deepmd/npy folder", rule, exc, output) from None
    return Frames(
        atom_types=np.asarray(system["atom_types"], dtype=int),
        coords=np.asarray(system["coords"], dtype=float),
        cells=None if system.nopbc else np.asarray(system["cells"], dtype=float),
        energies=energies,
        forces=forces,
        atom_pref=weights,
    )


def _set_files(folder: Path, name: str) -> np.ndarray | None:
    """``name``.npy of every ``set.*`` of ``folder`` stacked by frame (rows), or None where no set has it."""
    parts = [np.load(f) for f in sorted(folder.glob(f"set.*/{name}.npy"))]
    if not parts:
        return None
    return np.concatenate([p.reshape(len(p), -1) if p.ndim > 1 else p.reshape(-1, 1) for p in parts])


def write_force_weights(folder: Path, weights: np.ndarray) -> None:
    """``atom_pref.npy`` (frames, 3 x atoms) in ``folder``'s single set: each atom's weight once per force
    component, the layout DeePMD 3.2's PyTorch per-frame training loader reads (it ignores the requirement's
    repeat=3, which its batch loader, used by ``dp test``, applies to dpdata's (frames, atoms))."""
    (set_dir,) = sorted(folder.glob("set.*"))
    np.save(set_dir / f"{ATOM_PREF}.npy", np.repeat(np.asarray(weights, dtype=np.float32), 3, axis=1))


def held_out_mask(n_frames: int, fraction: float, seed: int, source_iteration: int, stream: bytes = b"held-out", at_least: int = 0) -> np.ndarray:
    """Boolean mask of held-out frames of one source iteration, at least ``at_least`` of them; at least one
    frame is kept for training. ``stream`` separates independent splits (clusters, bulk environments)."""
    rng = np.random.default_rng([seed, source_iteration, zlib.crc32(stream)])
    n_test = min(max(int(round(fraction * n_frames)), at_least), n_frames - 1)
    mask = np.zeros(n_frames, dtype=bool)
    mask[rng.permutation(n_frames)[: max(n_test, 0)]] = True
    return mask


def split_data(
    iteration_dirs: Sequence[tuple[int, Path]], type_map: Sequence[str], fraction: float, seed: int, out_dir: Path
) -> dict[str, int]:
    """Write ``out_dir/train/``, ``out_dir/test/`` and ``out_dir/test_bulk/`` (one folder per source
    iteration and composition; see the module docstring). ``iteration_dirs`` pairs each reference
    iteration with its ``data/`` folder. Returns frame counts."""
    counts = {"train": 0, "test": 0, "test_bulk": 0}
    for iteration, data_dir in iteration_dirs:
        folders = system_folders([data_dir])
        for core in (False, True):
            kind = [f for f in folders if (f.parent.name == CORE_FOLDER) == core]
            systems = [labelled_system(folder, type_map, "reference_collect", data_dir) for folder in kind]
            sizes = [len(system) for system in systems]
            mask = held_out_mask(sum(sizes), fraction, seed, iteration, b"held-out bulk", 1) if core else held_out_mask(sum(sizes), fraction, seed, iteration)
            test = "test_bulk" if core else "test"
            for folder, system, held_out in zip(kind, systems, np.split(mask, np.cumsum(sizes)[:-1])):
                weights = system.data.get(ATOM_PREF, np.ones((len(system), system.get_natoms())))
                name = f"iter{iteration:03d}_{CORE_FOLDER + '_' if core else ''}{folder.name}"
                for part, indices in ((test, np.flatnonzero(held_out)), ("train", np.flatnonzero(~held_out))):
                    if len(indices):
                        target = out_dir / part / name
                        system.sub_system(indices).to_deepmd_npy(str(target))
                        if part == "train":
                            write_force_weights(target, weights[indices])
                            if core:
                                (energy,) = target.glob("set.*/energy.npy")
                                energy.unlink()
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
