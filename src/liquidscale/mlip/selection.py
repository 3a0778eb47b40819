"""Model-deviation selection (DP-GEN's trust levels) and the clusters sent back for labelling.

Every explored frame is *accurate* (max force deviation below ``trust_lo``), a *candidate*
(between ``trust_lo`` and ``trust_hi``) or *failed* (above ``trust_hi``, or from a replica that blew
up: too far from the data to learn from). Candidates become clusters with complete environments:
the whole molecules with an atom within ``core_radius + buffer`` (``reference.environment``) of the
frame's most uncertain atom, cut from the periodic frame (a molecular QM code labels finite
clusters), with the core atoms marked whose forces are labels of the liquid. Clusters are then
chosen by farthest-point sampling on a pair-distance fingerprint, so near-duplicates (consecutive
frames of one trajectory, symmetric copies) are sent once. Once the loop has converged
(:func:`liquidscale.mlip.convergence.converged`), nothing is selected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import Any

import numpy as np

from ..molecules import Molecule, cut_environment, group_molecules
from .convergence import converged

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


def classify(max_deviation: np.ndarray, trust_lo: float, trust_hi: float) -> np.ndarray:
    """Per frame 'accurate', 'candidate' or 'failed'; a non-finite deviation counts as failed."""
    labels = np.full(len(max_deviation), FAILED, dtype=object)
    finite = np.isfinite(max_deviation)
    labels[finite & (max_deviation < trust_lo)] = ACCURATE
    labels[finite & (max_deviation >= trust_lo) & (max_deviation < trust_hi)] = CANDIDATE
    return labels


def fractions(labels: Sequence[str], failed_replica_frames: int = 0) -> dict[str, float]:
    """DP-GEN's accurate / candidate / failed fractions; frames a blown-up replica never produced count as failed."""
    labels = list(labels) + [FAILED] * failed_replica_frames
    total = max(len(labels), 1)
    return {name: labels.count(name) / total for name in (ACCURATE, CANDIDATE, FAILED)}


@dataclass(frozen=True)
class Cluster:
    """A finite cluster of whole molecules cut from an explored frame, with its core-atom mask."""

    symbols: list[str]
    positions: np.ndarray  # (n, 3) Å, centred on the most uncertain atom
    core: np.ndarray  # (n,) bool
    frame: int
    deviation: float


def cut_candidate(symbols, positions, cell, molecule: Molecule, atom: int, environment: Mapping[str, Any], frame: int, deviation: float) -> Cluster | None:
    """The complete-environment cluster around ``atom``; None when the frame's molecules are broken (nothing whole to cut)."""
    if not group_molecules(symbols, positions, molecule, cell).intact:
        return None
    cut = cut_environment(symbols, positions, molecule, atom, environment["radius"], environment["core_radius"], cell)
    return Cluster(cut.symbols, cut.positions, cut.core, frame, deviation)


def fingerprint(symbols: Sequence[str], positions: np.ndarray, elements: Sequence[str], r_max: float, width: float = 0.3) -> np.ndarray:
    """Gaussian-smoothed pair-distance densities per element pair, per atom of the cluster.

    Invariant to rotations, translations and atom order; its Euclidean distance (times sqrt(dr))
    is the L2 distance between two clusters' pair-distance densities, so identical clusters are 0.
    """
    grid = np.arange(0.5, r_max, width / 2)
    symbols = np.asarray(symbols)
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    upper = np.triu(np.ones_like(d, dtype=bool), k=1)
    blocks = []
    for a, b in combinations_with_replacement(sorted(elements), 2):
        pair = upper & (((symbols[:, None] == a) & (symbols[None, :] == b)) | ((symbols[:, None] == b) & (symbols[None, :] == a)))
        r = d[pair]
        density = np.exp(-0.5 * ((grid[:, None] - r[None, :]) / width) ** 2).sum(axis=1) / (width * np.sqrt(2 * np.pi))
        blocks.append(density / len(symbols))
    return np.concatenate(blocks) * np.sqrt(width / 2)


def farthest_point_selection(features: np.ndarray, priority: np.ndarray, cap: int, min_separation: float) -> list[int]:
    """Indices chosen greedily: start at the highest ``priority``, then always the point farthest from the
    chosen ones, until ``cap`` points or until the farthest lies within ``min_separation`` (near-duplicate)."""
    if len(features) == 0 or cap == 0:
        return []
    chosen = [int(np.argmax(priority))]
    nearest = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < cap:
        candidate = int(np.argmax(nearest))
        if nearest[candidate] < min_separation or nearest[candidate] == 0.0:
            break
        chosen.append(candidate)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[candidate], axis=1))
    return chosen


def select_clusters(
    symbols: Sequence[str],
    frames: Sequence[np.ndarray],
    cells: Sequence[np.ndarray],
    max_deviation: np.ndarray,
    uncertain_atom: np.ndarray,
    molecule: Molecule,
    select: Mapping[str, Any],
    environment: Mapping[str, Any],
    bulk_force_rmse: float,
    failed_replica_frames: int = 0,
) -> tuple[list[Cluster], dict[str, Any]]:
    """Classify frames, and unless converged (given this iteration's held-out ``bulk_force_rmse``) pick
    spread-out candidate clusters cut as ``environment`` says; returns them and a report."""
    labels = classify(max_deviation, select["trust_lo"], select["trust_hi"])
    report: dict[str, Any] = {"frames": len(labels), "failed_replica_frames": failed_replica_frames, **fractions(labels, failed_replica_frames)}
    report["bulk_force_rmse"] = bulk_force_rmse
    report["converged"] = converged(report[ACCURATE], bulk_force_rmse, select)
    clusters: list[Cluster] = []
    if not report["converged"]:
        for f in np.flatnonzero(labels == CANDIDATE):
            cell = np.diag(cells[f]) if cells[f] is not None else None
            cluster = cut_candidate(symbols, frames[f], cell, molecule, int(uncertain_atom[f]), environment, int(f), float(max_deviation[f]))
            if cluster is not None:
                clusters.append(cluster)
    r_max = 2 * environment["radius"] + 2 * molecule.bond_length + 1.0
    features = np.array([fingerprint(c.symbols, c.positions, molecule.type_map, r_max) for c in clusters])
    chosen = farthest_point_selection(features, np.array([c.deviation for c in clusters]), select["max_candidates"], select["min_separation"])
    report.update(candidate_clusters=len(clusters), selected=len(chosen))
    return [clusters[i] for i in sorted(chosen)], report


def write_clusters(path, clusters: Sequence[Cluster], system: str, iteration: int) -> None:
    """Clusters (with their core masks) as a non-periodic extxyz for the reference stage; an empty file when nothing was selected."""
    from ..reference.configurations import Frame, frames_to_atoms, write_extxyz

    info = {"system": system, "mlip_iteration": iteration}
    frames = [Frame(c.symbols, c.positions, {**info, "source_frame": c.frame, "max_devi_f": c.deviation, "core_atoms": int(c.core.sum())}, c.core) for c in clusters]
    write_extxyz(path, frames_to_atoms(frames))
