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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..cdft.functional import as_batch, grid_points, periodic_correlate

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
        dphi_dn1 = n0 * torch.exp(dphi_dn0)  # = n0 / (1 - n1), but NaN (outside the domain) wherever n1 > 1
        c1 = -(periodic_correlate(dphi_dn0, self._w0.to(rho)) + periodic_correlate(dphi_dn1, self._w1.to(rho)))
        return c1[0] if single else c1


def hard_rod_dataset(block: Mapping[str, Any], split_fractions: Sequence[float], seed: int, provenance: Mapping[str, Any]):
    """Exact grand-canonical profiles in seeded random potentials, as a profile dataset with known mu.

    ``block`` is the config's ``hard_rods`` block, ``split_fractions`` the ``profiles.split`` key.
    Run k uses the potential the sampling stage's generator draws from (seed, k) and beta mu drawn
    uniformly from ``beta_mu_range``; a run whose minimisation fails is kept with status failed and
    the solver's reason.
    """
    from ._grand_canonical import grand_canonical_dataset

    runs = int(block["runs"])
    beta_mu = np.random.default_rng([seed, 5]).uniform(*block["beta_mu_range"], size=runs)
    return grand_canonical_dataset(
        PercusHardRods(float(block["dz"])),
        block,
        np.ones(runs),
        beta_mu,
        split_fractions,
        seed,
        provenance,
        system="hard_rods",
        site="rod",
        dimension=1,
        length_unit="sigma",
        energy_unit="k_B T",
        temperature_unit="T (k_B T = 1)",
    )
