"""Thermodynamics and pair structure of any ``Functional``: free energies, bulk EOS, c2 and S(k).

All energies are returned in units of k_B T (beta F, beta Omega, beta mu, beta p); extensive
quantities are per unit cross-section (planar profiles), densities in the dataset's density unit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .functional import Functional

QUADRATURE_POINTS = 48


def _gauss_legendre_unit(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of Gauss-Legendre quadrature on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(points)
    return torch.as_tensor(0.5 * (x + 1.0)), torch.as_tensor(0.5 * w)


def _tensor(rho) -> torch.Tensor:
    return torch.as_tensor(np.asarray(rho, dtype=float), dtype=torch.float64)


def excess_free_energy(functional: Functional, rho, T: float, points: int = QUADRATURE_POINTS) -> float:
    """beta F_exc[rho] = -int_0^1 da int dz rho(z) c1(z; [a rho]) (functional line integration)."""
    rho = _tensor(rho)
    a, w = _gauss_legendre_unit(points)
    with torch.no_grad():
        c1 = functional.c1(a[:, None] * rho[None, :], T)
    return float(-(w[:, None] * rho[None, :] * c1).sum() * functional.dz)


def grand_potential(functional: Functional, rho, V_ext, T: float, mu: float, k_B: float = 1.0) -> float:
    """beta Omega = beta F_id + beta F_exc + int rho (beta V_ext - beta mu), with beta F_id = int rho (ln rho - 1)."""
    rho = np.asarray(rho, dtype=float)
    beta = 1.0 / (k_B * T)
    occupied = rho > 0
    r = rho[occupied]
    ideal_and_external = np.sum(r * (np.log(r) - 1.0) + r * beta * (np.asarray(V_ext, dtype=float)[occupied] - mu))
    return float(ideal_and_external * functional.dz + excess_free_energy(functional, rho, T))


def pair_direct_correlation(functional: Functional, rho, T: float) -> np.ndarray:
    """c2(z_i, z_j) = (1/dz) d c1(z_i) / d rho(z_j) by automatic differentiation (an n x n matrix)."""
    jac = torch.autograd.functional.jacobian(lambda r: functional.c1(r, T), _tensor(rho))
    return (jac / functional.dz).numpy()


def bulk_points(functional: Functional) -> int:
    """Grid points of a periodic bulk box long enough that c2 does not wrap around it."""
    return 2 * math.ceil(functional.interaction_range / functional.dz - 1e-9) + 2


def bulk_c1(functional: Functional, rho, T: float) -> np.ndarray:
    """c1 of homogeneous fluids at densities ``rho`` (any shape), evaluated as a batch of constant profiles."""
    rho = _tensor(rho)
    with torch.no_grad():
        c1 = functional.c1(rho.reshape(-1, 1).expand(-1, bulk_points(functional)).contiguous(), T)[:, 0]
    return c1.reshape(rho.shape).numpy()


def bulk_beta_mu(functional: Functional, rho, T: float) -> np.ndarray:
    """beta mu(rho, T) = ln rho - c1_b(rho, T) (thermal wavelength absorbed, as in training)."""
    return np.log(np.asarray(rho, dtype=float)) - bulk_c1(functional, rho, T)


def bulk_beta_pressure(functional: Functional, rho, T: float, points: int = QUADRATURE_POINTS) -> np.ndarray:
    """beta p = int_0^rho rho' d(beta mu)/d rho' = rho - rho c1_b(rho) + int_0^rho c1_b(rho') d rho' (Gauss-Legendre)."""
    rho = np.asarray(rho, dtype=float)
    a, w = (t.numpy() for t in _gauss_legendre_unit(points))
    c1_nodes = bulk_c1(functional, rho[..., None] * a, T)
    return rho - rho * bulk_c1(functional, rho, T) + rho * (c1_nodes * w).sum(-1)


def bulk_planar_c2(functional: Functional, rho_b: float, T: float) -> tuple[np.ndarray, np.ndarray]:
    """(z, c_bar(z)): the planar direct correlation function of the bulk at density ``rho_b``.

    One row of c2 of a constant profile; for a 3D fluid c_bar(z) = 2 pi int_|z|^inf r c(r) dr.
    """
    n = bulk_points(functional)
    rho = torch.full((n,), float(rho_b), dtype=torch.float64, requires_grad=True)
    (row,) = torch.autograd.grad(functional.c1(rho, T)[0], rho)
    offsets = (np.arange(n) + n // 2) % n - n // 2
    order = np.argsort(offsets)
    return offsets[order] * functional.dz, row.numpy()[order] / functional.dz


def c_hat(z: np.ndarray, c_bar: np.ndarray, k) -> np.ndarray:
    """The 1D Fourier transform of c_bar (= the 3D c_hat(k) for a 3D fluid); real since c_bar is even."""
    k = np.asarray(k, dtype=float)
    dz = z[1] - z[0]
    return np.cos(k[..., None] * z) @ c_bar * dz


def structure_factor(functional: Functional, rho_b: float, T: float, k) -> np.ndarray:
    """S(k) = 1 / (1 - rho c_hat(k)) from the functional's bulk pair structure."""
    z, c_bar = bulk_planar_c2(functional, rho_b, T)
    return 1.0 / (1.0 - rho_b * c_hat(z, c_bar, k))
