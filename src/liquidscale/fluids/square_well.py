"""Hard rods with a mean-field square-well attraction: a planar fluid with a known van der Waals transition.

beta F_exc = Percus hard rods + (beta/2) int int rho(z) phi(z - z') rho(z') with phi = -epsilon for
|z - z'| < range. Its bulk EOS is closed form, beta p = rho/(1 - rho sigma) - (beta epsilon range) rho^2,
with k_B Tc = 8 epsilon range / (27 sigma) and rho_c = 1/(3 sigma), so every analysis algorithm can be
checked against exact answers on a functional that also has interfaces, wetting and capillary
condensation. Reduced units (sigma, epsilon, k_B = 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..cdft.functional import as_batch, grid_points, periodic_correlate, temperature_column
from .hard_rods import PercusHardRods, tonks_beta_mu


class SquareWellMeanField:
    """Implements ``cdft.functional.Functional``: Percus c1 plus the mean-field attraction (1/T) int rho phi."""

    def __init__(self, dz: float, sigma: float = 1.0, epsilon: float = 1.0, attraction_range: float = 1.5):
        self.hard_rods = PercusHardRods(dz, sigma)
        self.dz, self.sigma, self.epsilon, self.attraction_range = float(dz), float(sigma), float(epsilon), float(attraction_range)
        self.interaction_range = max(self.hard_rods.interaction_range, self.attraction_range)
        steps = grid_points(attraction_range, dz, "attraction range")
        weights = torch.full((2 * steps + 1,), -self.epsilon * self.dz, dtype=torch.float64)
        weights[0] = weights[-1] = -0.5 * self.epsilon * self.dz  # trapezoid: sums exactly to -2 epsilon range
        self._phi = weights

    @property
    def critical_temperature(self) -> float:
        return 8.0 * self.epsilon * self.attraction_range / (27.0 * self.sigma)

    def bulk_beta_mu(self, rho: np.ndarray | float, T: np.ndarray | float) -> np.ndarray:
        """Exact bulk chemical potential (thermal wavelength = 1): Tonks' minus 2 epsilon range rho / T."""
        return tonks_beta_mu(rho, self.sigma) - 2.0 * self.epsilon * self.attraction_range * np.asarray(rho, dtype=float) / np.asarray(T, dtype=float)

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float = 1.0) -> torch.Tensor:
        rho, single = as_batch(rho)
        beta = 1.0 / temperature_column(T, rho.shape[0], rho).unsqueeze(1)
        c1 = self.hard_rods.c1(rho) - beta * periodic_correlate(rho, self._phi.to(rho))
        return c1[0] if single else c1


def square_well_dataset(block: Mapping[str, Any], split_fractions: Sequence[float], seed: int, provenance: Mapping[str, Any]):
    """Exact multi-temperature profiles of the square-well fluid in seeded random potentials (known mu).

    ``block``: box_length, dz, runs, potential_cap, hard_walls (as for hard rods), epsilon,
    attraction_range, temperature_range (k_B T / epsilon, drawn uniformly: span Tc for both sides of
    the transition) and density_range (rho sigma). Run k's beta mu is the bulk value at a density drawn
    uniformly from density_range and the solve starts from that uniform density, so below Tc dense
    (liquid-like) runs are as common as dilute ones instead of every run falling onto the vapour branch.
    """
    from ._grand_canonical import grand_canonical_dataset

    runs = int(block["runs"])
    functional = SquareWellMeanField(float(block["dz"]), epsilon=float(block["epsilon"]), attraction_range=float(block["attraction_range"]))
    rng = np.random.default_rng([seed, 7])
    T = rng.uniform(*block["temperature_range"], size=runs)
    density = rng.uniform(*block["density_range"], size=runs)
    return grand_canonical_dataset(
        functional,
        block,
        T,
        functional.bulk_beta_mu(density, T),
        split_fractions,
        seed,
        provenance,
        start=lambda k, V: np.where(np.isfinite(V), density[k], 0.0),
        system="square_well",
        site="rod",
        dimension=1,
        length_unit="sigma",
        energy_unit="epsilon",
        temperature_unit="epsilon / k_B",
    )
