"""Density profiles of the density site along z, accumulated during MD for every replica.

Two estimators on the same grid:

* the histogram: rho(z) = <sum_i delta(z - z_i)> / A;
* force sampling (Borgis, Assaraf, Rotenberg & Vuilleumier, Mol. Phys. 111, 3486 (2013); de las
  Heras & Schmidt, PRL 120, 218001 (2018)): in equilibrium d rho / dz = beta <sum_i delta(z - z_i)
  F_i,z> / A with F_i the total conservative force on site i (interactions + V_ext), so rho follows
  by integrating the force density. Its variance does not grow as the bins shrink, which is why it
  suits fine grids. The periodic box fixes the integration constant by N = A * integral rho dz; the
  (noise-only) net force is removed so the integral closes on itself.
"""

from __future__ import annotations

import numpy as np


class ProfileAccumulator:
    """Histograms of site positions and site z forces per replica, for replicas ``0..n_replicas-1``."""

    def __init__(self, n_replicas: int, box_z: float, bin_width: float, device: str = "cpu"):
        import torch

        self.n_bins = int(np.ceil(box_z / bin_width - 1e-9))
        self.box_z = float(box_z)
        self.dz = self.box_z / self.n_bins
        self.counts = torch.zeros(n_replicas * self.n_bins, dtype=torch.float64, device=device)
        self.force = torch.zeros_like(self.counts)
        self.samples = torch.zeros(n_replicas, dtype=torch.float64, device=device)

    @property
    def z(self) -> np.ndarray:
        """Bin centres."""
        return (np.arange(self.n_bins) + 0.5) * self.dz

    def sample(self, engine) -> None:
        """Add the engine's current frame (active replicas only)."""
        z = engine.site_z()
        bins = (z / self.dz).long().clamp(0, self.n_bins - 1)  # clamp keeps a NaN row in range; it fails anyway
        flat = (bins + engine.ids[:, None] * self.n_bins).reshape(-1)
        self.counts.index_add_(0, flat, self.counts.new_ones(flat.shape))
        self.force.index_add_(0, flat, engine.site_force_z().reshape(-1).to(self.force.dtype))
        self.samples.index_add_(0, engine.ids, self.samples.new_ones(engine.ids.shape))

    def histogram_density(self, area: np.ndarray) -> np.ndarray:
        """rho from counts [n_replicas, n_bins] (NaN for replicas without samples)."""
        counts = self.counts.reshape(-1, self.n_bins).cpu().numpy()
        samples = self.samples.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return counts / (samples[:, None] * np.asarray(area)[:, None] * self.dz)

    def force_density(self, area: np.ndarray, kT: np.ndarray, n_sites: int) -> np.ndarray:
        """rho by integrating beta times the mean force density; mean fixed to n_sites / (A L)."""
        force = self.force.reshape(-1, self.n_bins).cpu().numpy()
        samples = self.samples.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            f = force / (samples[:, None] * np.asarray(area)[:, None] * self.dz)
        f = f - f.mean(axis=1, keepdims=True)
        # trapezoid between neighbouring bin centres: rho_{k+1} - rho_k = beta dz (f_k + f_{k+1}) / 2
        steps = 0.5 * (f[:, :-1] + f[:, 1:]) * self.dz / np.asarray(kT)[:, None]
        rho = np.concatenate([np.zeros((f.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
        mean = n_sites / (np.asarray(area) * self.box_z)
        return rho - rho.mean(axis=1, keepdims=True) + mean[:, None]
