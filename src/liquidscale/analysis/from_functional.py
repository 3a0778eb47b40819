"""What the analysis needs from a functional's bulk limit: beta mu_ex(rho, T) and the planar dcf c_bar(z).

A bulk state is a constant profile on a periodic grid long enough that c1 at one point never sees
its own images (longer than twice the interaction range).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def bulk_points(functional) -> int:
    """Grid points of the shortest periodic box free of self-interaction."""
    return 2 * math.ceil(functional.interaction_range / functional.dz) + 3


def bulk_excess(functional) -> Callable[[np.ndarray, float], np.ndarray]:
    """beta mu_ex(rho, T) = -c1 of constant profiles, all densities in one batched call."""
    import torch

    n = bulk_points(functional)

    def excess(rho: np.ndarray, T: float) -> np.ndarray:
        profiles = torch.as_tensor(np.asarray(rho, dtype=float)).unsqueeze(1).expand(-1, n).contiguous()
        with torch.no_grad():
            c1 = functional.c1(profiles, float(T))
        return -c1[:, n // 2].numpy()

    return excess


def planar_dcf(functional, rho: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
    """(z, c_bar(z)) for each bulk density: c_bar(z_i - z_c) = (1/dz) d c1(z_c) / d rho(z_i) by autograd.

    Returns the offsets z (n,) and c_bar (len(rho), n); the discrete sum dz * sum c_bar is -d(beta mu_ex)/d rho.
    """
    import torch

    n = bulk_points(functional)
    centre = n // 2
    profiles = torch.as_tensor(np.atleast_1d(np.asarray(rho, dtype=float))).unsqueeze(1).expand(-1, n).contiguous()
    profiles.requires_grad_(True)
    c1 = functional.c1(profiles, float(T))
    (grad,) = torch.autograd.grad(c1[:, centre].sum(), profiles)
    z = (np.arange(n) - centre) * functional.dz
    return z, grad.detach().numpy() / functional.dz
