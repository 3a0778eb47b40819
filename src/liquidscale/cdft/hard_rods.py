"""Hard rods in one dimension: Percus' exact functional, the Tonks equation of state, and a verification dataset.

The exact functional lets the whole cDFT machinery (solver, training, free energies, pair structure)
be checked against truth without any simulation. Units: sigma = 1, k_B T = 1 (athermal: T only
scales energies).

Percus' functional in fundamental-measure form: with n0(x) = [rho(x - s/2) + rho(x + s/2)] / 2 and
n1(x) = int_{x-s/2}^{x+s/2} rho, beta F_exc = int -n0 ln(1 - n1) dx. On the grid the integral is the
trapezoid rule over s/dz (even) intervals, and c1 is the exact derivative of the discrete free
energy, so the bulk is exactly Tonks' fluid at any grid spacing.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .functional import as_batch, grid_points, periodic_correlate

SIGMA = 1.0


def tonks_beta_p(rho: np.ndarray | float, sigma: float = SIGMA) -> np.ndarray:
    """Exact pressure of hard rods: beta p = rho / (1 - rho sigma)."""
    rho = np.asarray(rho, dtype=float)
    return rho / (1.0 - rho * sigma)


def tonks_beta_mu(rho: np.ndarray | float, sigma: float = SIGMA) -> np.ndarray:
    """Exact chemical potential (thermal wavelength = 1): ln rho - ln(1 - eta) + eta / (1 - eta), eta = rho sigma."""
    rho = np.asarray(rho, dtype=float)
    eta = rho * sigma
    return np.log(rho) - np.log1p(-eta) + eta / (1.0 - eta)


class PercusHardRods:
    """Exact c1 of hard rods of length ``sigma`` on a periodic grid (implements ``Functional``)."""

    def __init__(self, dz: float, sigma: float = SIGMA):
        intervals = grid_points(sigma, dz, "hard-rod length sigma")
        if intervals % 2:
            raise UserError(f"sigma / dz = {intervals} must be even so that rho(x +- sigma/2) lies on the grid (choose dz = sigma / even number)")
        self.dz = float(dz)
        self.sigma = float(sigma)
        self.interaction_range = float(sigma)
        half = intervals // 2
        w0 = torch.zeros(intervals + 1, dtype=torch.float64)
        w0[0] = w0[-1] = 0.5
        w1 = torch.full((intervals + 1,), self.dz, dtype=torch.float64)
        w1[0] = w1[-1] = 0.5 * self.dz
        self._w0, self._w1, self._half = w0, w1, half

    def weighted_densities(self, rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return periodic_correlate(rho, self._w0.to(rho)), periodic_correlate(rho, self._w1.to(rho))

    def excess_free_energy(self, rho: torch.Tensor) -> torch.Tensor:
        """beta F_exc per profile (batch,) — the exact functional itself, differentiable."""
        rho, single = as_batch(rho)
        n0, n1 = self.weighted_densities(rho)
        energy = -(n0 * torch.log1p(-n1)).sum(-1) * self.dz
        return energy[0] if single else energy

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float = 1.0) -> torch.Tensor:
        """c1 = -(1/dz) d(beta F_exc)/d rho_i, in closed form (T is irrelevant for an athermal fluid)."""
        rho, single = as_batch(rho)
        n0, n1 = self.weighted_densities(rho)
        dphi_dn0 = -torch.log1p(-n1)
        dphi_dn1 = n0 / (1.0 - n1)
        c1 = -(periodic_correlate(dphi_dn0, self._w0.to(rho)) + periodic_correlate(dphi_dn1, self._w1.to(rho)))
        return c1[0] if single else c1
