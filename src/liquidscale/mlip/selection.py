"""Model-deviation selection (DP-GEN's trust levels) and the clusters sent back for labelling.

Every explored frame is *accurate* (max force deviation below ``trust_lo``), a *candidate*
(between ``trust_lo`` and ``trust_hi``) or *failed* (above ``trust_hi``, or from a replica that blew
up: too far from the data to learn from). Candidates become clusters: the complete environment of
the frame's most uncertain atom (``reference.environment``: the whole molecules with an atom within
``core_radius + shell`` of it, cut out across the periodic boundaries, since a molecular QM code
labels finite clusters), weighted as the reference stage weighs bulk cuts. Clusters are then chosen by
farthest-point sampling on a pair-distance fingerprint, so near-duplicates (consecutive frames of
one trajectory, symmetric copies) are sent once. Once the accurate fraction reaches the converged
threshold (and, when set, the held-out bulk force RMSE its bound), nothing is selected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import Any

import numpy as np

from ..molecules import Molecule, cut_environment, group_molecules

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
    """A finite cluster of whole molecules cut from an explored frame."""

    symbols: list[str]
    positions: np.ndarray  # (n, 3) Å, centred on the most uncertain atom
    core: np.ndarray  # (n,) bool: atoms whose whole environment is in the cluster (trained on)
    frame: int
    deviation: float


def cut_candidate(symbols, positions, cell, molecule: Molecule, atom: int, environment: Mapping[str, Any], frame: int, deviation: float) -> Cluster | None:
    """The complete environment of ``atom``; None when the frame's molecules are broken (nothing whole to cut)."""
    if not group_molecules(symbols, positions, molecule, cell).intact:
        return None
    cluster_symbols, cluster_positions, core = cut_environment(symbols, positions, molecule, atom, environment["core_radius"], environment["shell"], cell)
    return Cluster(cluster_symbols, cluster_positions, core, frame, deviation)


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
    failed_replica_frames: int = 0,
    bulk_force_rmse: float = float("nan"),
) -> tuple[list[Cluster], dict[str, Any]]:
    """Classify frames, and unless converged pick spread-out candidate clusters; returns them and a report.

    ``bulk_force_rmse`` is this iteration's held-out bulk error; with ``converged_bulk_force_rmse`` set,
    convergence also needs it below that bound (NaN, no bulk set, never converges then)."""
    labels = classify(max_deviation, select["trust_lo"], select["trust_hi"])
    report: dict[str, Any] = {"frames": len(labels), "failed_replica_frames": failed_replica_frames, **fractions(labels, failed_replica_frames)}
    bound = select["converged_bulk_force_rmse"]
    report["bulk_force_rmse"] = bulk_force_rmse
    report["bulk_accurate"] = bool(bound is None or bulk_force_rmse <= bound)
    report["converged"] = bool(report[ACCURATE] >= select["converged_accurate_fraction"] and report["bulk_accurate"])
    clusters: list[Cluster] = []
    if not report["converged"]:
        for f in np.flatnonzero(labels == CANDIDATE):
            cell = np.diag(cells[f]) if cells[f] is not None else None
            cluster = cut_candidate(symbols, frames[f], cell, molecule, int(uncertain_atom[f]), environment, int(f), float(max_deviation[f]))
            if cluster is not None:
                clusters.append(cluster)
    r_max = 2 * (environment["core_radius"] + environment["shell"]) + 2 * molecule.bond_length + 1.0
    features = np.array([fingerprint(c.symbols, c.positions, molecule.type_map, r_max) for c in clusters])
    chosen = farthest_point_selection(features, np.array([c.deviation for c in clusters]), select["max_candidates"], select["min_separation"])
    report.update(candidate_clusters=len(clusters), selected=len(chosen))
    return [clusters[i] for i in sorted(chosen)], report


def write_clusters(path, clusters: Sequence[Cluster], system: str, iteration: int) -> None:
    """Clusters as a non-periodic extxyz (core mask as the per-atom array ``core``) for the reference stage;
    an empty file when nothing was selected."""
    import ase
    import ase.io

    frames = []
    for c in clusters:
        info = {"system": system, "mlip_iteration": iteration, "source_frame": c.frame, "max_devi_f": c.deviation, "kind": "environment"}
        atoms = ase.Atoms(symbols=c.symbols, positions=c.positions, pbc=False, info=info)
        atoms.arrays["core"] = np.asarray(c.core, dtype=bool)
        frames.append(atoms)
    if frames:
        ase.io.write(path, frames, format="extxyz")
    else:
        open(path, "w").close()
