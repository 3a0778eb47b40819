"""Pair searches through vesin's O(N) cell-list neighbour list instead of dense N x N distance matrices.

Every pair search of the package (the MD engine's failure check, the Lennard-Jones Verlet list, the
neighbour counts that size DeePMD's ``sel``) goes through :func:`pairs_within`. Its result is the
dense minimum-image search's: each unordered pair ``i < j`` once, at the distance of its nearest
periodic image. vesin lists every image within the cutoff (several when the cutoff exceeds half
a box edge, and an atom's own images beyond a full edge); those are folded to the nearest one here,
so the answer does not depend on how the cutoff compares with the box.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def pairs_within(points: np.ndarray, cell: np.ndarray | None, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atom pairs (i < j) closer than ``cutoff`` and their shortest-image distance.

    ``points`` (N, 3); ``cell`` a (3, 3) matrix of cell vectors (rows), (3,) orthorhombic edge lengths,
    or None for no periodic boundaries. Returns int64 ``i``, ``j`` and float64 ``distance``, sorted by (i, j).
    """
    import vesin

    points = np.ascontiguousarray(points, dtype=np.float64)
    if cell is None:
        box, periodic = np.zeros((3, 3)), False
    else:
        cell = np.asarray(cell, dtype=np.float64)
        box, periodic = (np.diag(cell) if cell.ndim == 1 else cell), True
    search = vesin.NeighborList(cutoff=float(cutoff), full_list=False, n_threads=1)
    i, j, distance = search.compute(points, box, periodic, "ijd")
    i, j = i.astype(np.int64), j.astype(np.int64)
    distinct = i != j  # an atom's own periodic images (cutoff beyond a box edge) are not pairs
    low, high, distance = np.minimum(i, j)[distinct], np.maximum(i, j)[distinct], distance[distinct]
    order = np.lexsort((distance, high, low))  # by pair, nearest image first
    low, high, distance = low[order], high[order], distance[order]
    first = np.ones(len(low), dtype=bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    return low[first], high[first], distance[first]


def batched_pairs(positions: "torch.Tensor", cell_lengths: "torch.Tensor", cutoff: float):
    """:func:`pairs_within` for B replicas [B, N, 3] in orthorhombic boxes [B, 3].

    Returns replica index, i, j (long) and distance (positions' dtype), all on the positions' device.
    The search runs on the CPU (a copy of B N 3 numbers per call); only the O(B N) pair lists come back.
    """
    import torch

    x = positions.detach().cpu().numpy()
    cells = cell_lengths.detach().cpu().numpy()
    found = [pairs_within(x[b], cells[b], cutoff) for b in range(len(x))]
    replica = np.concatenate([np.full(len(f[0]), b, dtype=np.int64) for b, f in enumerate(found)]) if found else np.zeros(0, dtype=np.int64)

    def joined(k: int, dtype) -> "torch.Tensor":
        values = np.concatenate([f[k] for f in found]) if found else np.zeros(0)
        return torch.as_tensor(values, dtype=dtype, device=positions.device)

    device = positions.device
    return torch.as_tensor(replica, device=device), joined(0, torch.long), joined(1, torch.long), joined(2, positions.dtype)
