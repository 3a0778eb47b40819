"""The interface every one-body direct correlation functional implements, and its periodic-grid helpers.

A functional maps planar density profiles on a periodic grid of spacing ``dz`` to c1(z) = -beta
dF_exc/drho(z). Both the exact Percus hard-rod functional and the neural functional implement it,
so the solver and the thermodynamics helpers are verified on the exact one and used on the learned one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ..errors import UserError


@runtime_checkable
class Functional(Protocol):
    """c1[rho](z) on a periodic grid.

    ``dz``: grid spacing; ``interaction_range``: c1(z) depends on rho only within +-interaction_range
    of z (so a bulk grid longer than twice that is free of self-interaction through the boundary).
    ``c1(rho, T)``: rho of shape (batch, n) or (n,), T a float or a (batch,) tensor, float64 tensors;
    returns c1 with the shape of rho (dimensionless, in units of k_B T).
    """

    dz: float
    interaction_range: float

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor: ...


def as_batch(rho: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(batch, n) view of a profile or batch of profiles, and whether the input was a single profile."""
    if rho.dim() == 1:
        return rho.unsqueeze(0), True
    return rho, False


def temperature_column(T: torch.Tensor | float, batch: int, like: torch.Tensor) -> torch.Tensor:
    """T broadcast to shape (batch,) with the dtype and device of ``like``."""
    T = torch.as_tensor(T, dtype=like.dtype, device=like.device)
    return T.expand(batch) if T.dim() == 0 else T.reshape(batch)


def periodic_correlate(f: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """out[i] = sum_j weights[j] f[i + j - p] on a periodic grid, for (batch, n) f and 2p+1 weights."""
    p = (weights.numel() - 1) // 2
    padded = torch.nn.functional.pad(f.unsqueeze(1), (p, p), mode="circular")
    return torch.nn.functional.conv1d(padded, weights.view(1, 1, -1)).squeeze(1)


def grid_points(length: float, dz: float, what: str) -> int:
    """``length / dz`` as an integer, or an error saying which length is not a multiple of the grid."""
    points = round(length / dz)
    if points < 1 or abs(points * dz - length) > 1e-9 * max(1.0, length):
        raise UserError(f"{what} {length} is not a positive multiple of the grid spacing {dz}")
    return points
