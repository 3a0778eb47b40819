"""Reference-stage outputs: shard results, and per (system, iteration) the collected dataset.

A labelling shard writes ``labels.extxyz`` (frames with energy and forces) and ``failures.csv``.
Collecting the shards gives, beside the configurations:

- ``data/``: dpdata ``deepmd/npy`` MultiSystems, one folder per composition (e.g. ``O6H12``) in one
  folder per kind of frame: ``clusters/`` (every atom trained on), ``environments/`` (core atoms trained
  on, shell atoms with ``reference.environment.shell_force_weight``) and ``bulk/`` (held-out bulk
  environments, never trained on; their weights stay the core mask the bulk error is measured on); atoms
  sorted by type within a frame, finite clusters marked ``nopbc``, force weights in ``atom_pref.npy``
  (once per force component: DeePMD's ``pref_pf`` loss reads them);
- ``labels.extxyz``: every labelled frame with its energy (eV) and forces (eV/Å);
- ``summary.csv``: one row per labelled frame; ``failures.csv``: one row per dropped frame;
- ``provenance.json``: method, package versions, config hash, seeds, input hash.

Every configuration frame must come back either labelled or failed; a missing frame is an error.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import atomic_path, provenance, write_json
from ..mlip.data import per_component, register_atom_pref
from ..molecules import Molecule, formula
from .configurations import Frame, frames_to_atoms, write_extxyz

LABELS = "labels.extxyz"
FAILURES = "failures.csv"
SUMMARY = "summary.csv"
PROVENANCE = "provenance.json"
DATA = "data"
FAILURE_COLUMNS = ["frame", "source", "formula", "n_atoms", "reason"]
SUMMARY_COLUMNS = [
    "frame",
    "source",
    "formula",
    "data_folder",
    "index_in_data",
    "n_atoms",
    "energy_eV",
    "energy_per_atom_eV",
    "max_force_eV_per_A",
    "scf_attempt",
    "seconds",
    "shard",
]
PACKAGES = ("pyscf", "pyscf-dispersion", "gpu4pyscf", "dpdata", "ase", "numpy")


def labelled_atoms(frame: Frame, energy: float, forces: np.ndarray, **info: Any):
    """An ase Atoms carrying the label as a single-point result (so extxyz writes energy and forces)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = frames_to_atoms([frame])[0]
    atoms.info.update(info)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.asarray(forces))
    return atoms


def failure_row(frame: Frame, reason: str, type_map: Sequence[str]) -> dict[str, Any]:
    return {
        "frame": frame.info["frame"],
        "source": frame.info.get("source", ""),
        "formula": formula(frame.symbols, type_map),
        "n_atoms": len(frame.symbols),
        "reason": reason,
    }


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows), columns=list(columns)).to_csv(tmp, index=False)


def read_labels(path: str | Path) -> list:
    """Labelled ase Atoms from an extxyz file (empty file: no frames)."""
    import ase.io

    path = Path(path)
    if path.stat().st_size == 0:
        return []
    try:
        return ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ase raises XYZError, ValueError or IndexError for a truncated file
        raise UserError(f"{path}: not a readable extxyz file ({type(exc).__name__}: {exc}); rerun the rule that wrote it") from None


def write_shard(out_dir: str | Path, atoms_list: list, failures: list[dict[str, Any]]) -> None:
    """One labelling job's results, written as a folder that appears only when complete."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_extxyz(tmp / LABELS, atoms_list)
        write_csv(tmp / FAILURES, failures, FAILURE_COLUMNS)


def read_shards(shard_dirs: Sequence[str | Path]) -> tuple[list, list[dict[str, Any]]]:
    """All labelled frames (sorted by frame number) and failure rows of the given shard folders."""
    import pandas as pd

    atoms_list, failures = [], []
    for shard in map(Path, shard_dirs):
        if not (shard / LABELS).is_file() or not (shard / FAILURES).is_file():
            raise UserError(f"{shard}: not a complete labelling shard (needs {LABELS} and {FAILURES}); rerun reference_label")
        atoms_list += read_labels(shard / LABELS)
        try:
            failures += pd.read_csv(shard / FAILURES, keep_default_na=False).to_dict("records")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{shard / FAILURES}: not a readable failure table ({exc}); rerun reference_label") from None
    atoms_list.sort(key=lambda a: int(a.info["frame"]))
    failures.sort(key=lambda row: int(row["frame"]))
    return atoms_list, failures


def check_complete(n_frames: int, atoms_list: list, failures: list[dict[str, Any]]) -> None:
    """Every configuration is labelled or failed, exactly once: nothing is lost silently."""
    seen = [int(a.info["frame"]) for a in atoms_list] + [int(row["frame"]) for row in failures]
    if sorted(seen) != list(range(n_frames)):
        missing = sorted(set(range(n_frames)) - set(seen))
        raise UserError(f"labelling shards do not account for every configuration exactly once (missing frames: {missing[:10]}); rerun reference_label")


def sort_by_type(atoms, type_map: Sequence[str]) -> np.ndarray:
    """Stable permutation that orders a frame's atoms by ``type_map`` (dpdata's per-system atom order)."""
    types = np.array([type_map.index(s) for s in atoms.get_chemical_symbols()])
    return np.argsort(types, kind="stable")


def data_group(atoms) -> str:
    """The ``data/`` folder a labelled frame goes to: ``bulk`` (held out), ``environments`` (has a core) or ``clusters``."""
    if int(atoms.info.get("held_out", 0)):
        return "bulk"
    return "environments" if "core" in atoms.arrays else "clusters"


def force_weights(atoms, shell_weight: float) -> np.ndarray:
    """Per-atom force weight: 1 for every atom of a plain cluster and for an environment's core atoms,
    ``shell_weight`` for its shell atoms (a shell atom's force is exact for the cut, which the model also
    sees whole, but its environment is not the bulk's); a held-out bulk environment keeps its core mask."""
    if "core" not in atoms.arrays:
        return np.ones(len(atoms))
    core = np.asarray(atoms.arrays["core"], dtype=float)
    return core if data_group(atoms) == "bulk" else core + shell_weight * (1.0 - core)


def to_multisystems(atoms_list: list, type_map: Sequence[str], shell_weight: float):
    """dpdata MultiSystems with one LabeledSystem per composition; atoms of every frame sorted by type."""
    import dpdata

    register_atom_pref()
    by_formula: dict[str, list] = {}
    for atoms in atoms_list:
        by_formula.setdefault(formula(atoms.get_chemical_symbols(), type_map), []).append(atoms)
    systems = []
    for frames in by_formula.values():
        order = sort_by_type(frames[0], type_map)
        symbols = np.array(frames[0].get_chemical_symbols())[order]
        types = np.array([type_map.index(s) for s in symbols])
        data = {
            "atom_names": list(type_map),
            "atom_numbs": [int((types == t).sum()) for t in range(len(type_map))],
            "atom_types": types,
            "orig": np.zeros(3),
            "nopbc": True,
            "cells": np.zeros((len(frames), 3, 3)),
            "coords": np.stack([a.get_positions()[sort_by_type(a, type_map)] for a in frames]),
            "energies": np.array([a.get_potential_energy() for a in frames]),
            "forces": np.stack([a.get_forces()[sort_by_type(a, type_map)] for a in frames]),
            "atom_pref": per_component(np.stack([force_weights(a, shell_weight)[sort_by_type(a, type_map)] for a in frames])),
        }
        systems.append(dpdata.LabeledSystem(data=data))
    return dpdata.MultiSystems(*systems, type_map=list(type_map))


def write_data(folder: Path, atoms_list: list, type_map: Sequence[str], shell_weight: float) -> None:
    """Labelled frames as ``folder/<kind>/<composition>`` deepmd/npy systems (see the module docstring)."""
    for group in sorted({data_group(a) for a in atoms_list}):
        frames = [a for a in atoms_list if data_group(a) == group]
        to_multisystems(frames, type_map, shell_weight).to_deepmd_npy(str(Path(folder) / group))


def summary_rows(atoms_list: list, type_map: Sequence[str]) -> list[dict[str, Any]]:
    """One row per labelled frame; ``index_in_data`` is its frame index in ``data/<data_folder>``."""
    counts: dict[str, int] = {}
    rows = []
    for atoms in atoms_list:
        comp = formula(atoms.get_chemical_symbols(), type_map)
        folder = f"{data_group(atoms)}/{comp}"
        forces = atoms.get_forces()
        energy = atoms.get_potential_energy()
        rows.append(
            {
                "frame": int(atoms.info["frame"]),
                "source": atoms.info.get("source", ""),
                "formula": comp,
                "data_folder": folder,
                "index_in_data": counts.get(folder, 0),
                "n_atoms": len(atoms),
                "energy_eV": energy,
                "energy_per_atom_eV": energy / len(atoms),
                "max_force_eV_per_A": float(np.linalg.norm(forces, axis=1).max()),
                "scf_attempt": atoms.info.get("scf_attempt", ""),
                "seconds": atoms.info.get("seconds", np.nan),
                "shard": atoms.info.get("shard", -1),
            }
        )
        counts[folder] = counts.get(folder, 0) + 1
    return rows


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(
    shard_dirs: Sequence[str | Path],
    configurations: str | Path,
    n_frames: int,
    out_dir: str | Path,
    settings: Mapping[str, Any],
    molecule: Molecule,
    seeds: Mapping[str, int],
) -> dict[str, int]:
    """Merge the shards of one (system, iteration) into the outputs listed in the module docstring."""
    out_dir = Path(out_dir)
    atoms_list, failures = read_shards(shard_dirs)
    check_complete(n_frames, atoms_list, failures)
    if failures and not atoms_list:
        raise UserError(f"{configurations}: none of {n_frames} frames could be labelled (first reason: {failures[0]['reason']}); check 'reference.method'")
    type_map = list(molecule.type_map)
    with atomic_path(out_dir / DATA) as tmp:
        tmp.mkdir()  # stays empty when the mlip stage selected nothing for this iteration
        write_data(tmp, atoms_list, type_map, settings["reference"]["environment"]["shell_force_weight"])
    write_extxyz(out_dir / LABELS, atoms_list)
    write_csv(out_dir / SUMMARY, summary_rows(atoms_list, type_map), SUMMARY_COLUMNS)
    write_csv(out_dir / FAILURES, failures, FAILURE_COLUMNS)
    counts = {"n_frames": n_frames, "n_labelled": len(atoms_list), "n_failed": len(failures)}
    record = provenance(
        settings,
        seeds=seeds,
        inputs={"configurations": configurations},
        stage="reference",
        system=molecule.name,
        method=dict(settings["reference"]["method"]),
        type_map=type_map,
        units={"energy": "eV", "forces": "eV/Angstrom", "length": "Angstrom"},
        packages=package_versions(),
        **counts,
    )
    write_json(out_dir / PROVENANCE, record)
    return counts
