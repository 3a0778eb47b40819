"""Density profiles of the density site along z, accumulated during MD for every replica, with block errors.

Two estimators on the same grid:

* the histogram: rho(z) = <sum_i delta(z - z_i)> / A;
* force sampling (Borgis, Assaraf, Rotenberg & Vuilleumier, Mol. Phys. 111, 3486 (2013); de las
  Heras & Schmidt, PRL 120, 218001 (2018)): in equilibrium d rho / dz = beta <sum_i delta(z - z_i)
  F_i,z> / A with F_i the total conservative force on site i (interactions + V_ext), so rho follows
  by integrating the force density. Its variance does not grow as the bins shrink, which is why it
  suits fine grids. The periodic box fixes the integration constant by N = A * integral rho dz; the
  (noise-only) net force is removed so the integral closes on itself. Where the density vanishes
  the integrated noise can make it slightly negative; it is kept so (clipping would bias it upwards).

Standard errors: MD frames are correlated, so a Poisson error from the counts underestimates the
noise. The production run is cut into ``blocks`` consecutive blocks of samples, each block's profile
is computed with either estimator, and the standard error of the mean profile is the spread of the
block profiles / sqrt(blocks) (honest as long as a block is much longer than the correlation time).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

# 20 blocks: the standard error is itself known to ~1/sqrt(2 * 19) = 16%; more blocks would be
# shorter than the slow (collective) correlation times of long production runs
PROFILE_BLOCKS = 20


class ProfileAccumulator:
    """Per-block histograms of site positions and site z forces per replica, for replicas ``0..n_replicas-1``.

    ``samples``: how many frames each replica will be sampled for; consecutive samples fill the blocks in
    turn (block sizes differ by at most one sample). Memory: 2 x blocks x replicas x bins floats.
    """

    def __init__(self, n_replicas: int, box_z: float, bin_width: float, samples: int, blocks: int = PROFILE_BLOCKS, device: str = "cpu"):
        import torch

        if samples < 2:
            raise UserError(f"profiles need at least 2 samples for a standard error, got {samples} (config keys 'sampling.production_steps' / 'sampling.sample_every')")
        self.n_bins = int(np.ceil(box_z / bin_width - 1e-9))
        self.box_z = float(box_z)
        self.dz = self.box_z / self.n_bins
        self.n_replicas = n_replicas
        self.blocks = min(blocks, samples)
        self.expected_samples = samples
        self.taken = 0
        self.counts = torch.zeros(self.blocks * n_replicas * self.n_bins, dtype=torch.float64, device=device)
        self.force = torch.zeros_like(self.counts)
        self.block_samples = torch.zeros(self.blocks * n_replicas, dtype=torch.float64, device=device)

    @property
    def z(self) -> np.ndarray:
        """Bin centres."""
        return (np.arange(self.n_bins) + 0.5) * self.dz

    @property
    def samples(self):
        """Samples taken per replica (torch, on the accumulator's device)."""
        return self.block_samples.reshape(self.blocks, self.n_replicas).sum(0)

    def sample(self, engine) -> None:
        """Add the engine's current frame (active replicas only) to the current block."""
        if self.taken >= self.expected_samples:
            raise UserError(f"profile accumulator sized for {self.expected_samples} samples got one more")
        block = self.taken * self.blocks // self.expected_samples
        self.taken += 1
        z = engine.site_z()
        bins = (z / self.dz).long().clamp(0, self.n_bins - 1)  # clamp keeps a NaN row in range; it fails anyway
        rows = block * self.n_replicas + engine.ids
        flat = (bins + rows[:, None] * self.n_bins).reshape(-1)
        self.counts.index_add_(0, flat, self.counts.new_ones(flat.shape))
        self.force.index_add_(0, flat, engine.site_force_z().reshape(-1).to(self.force.dtype))
        self.block_samples.index_add_(0, rows, self.block_samples.new_ones(rows.shape))

    def state_dict(self) -> dict:
        """The sums so far (for a checkpoint); ``load_state_dict`` continues them exactly."""
        return {"taken": self.taken, "counts": self.counts.cpu(), "force": self.force.cpu(), "block_samples": self.block_samples.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.taken = int(state["taken"])
        for name in ("counts", "force", "block_samples"):
            setattr(self, name, state[name].to(getattr(self, name).device))

    def _per_block(self, sums) -> tuple[np.ndarray, np.ndarray]:
        """(blocks, replicas, bins) sums and (blocks, replicas) sample counts as numpy."""
        return sums.reshape(self.blocks, self.n_replicas, self.n_bins).cpu().numpy(), self.block_samples.reshape(self.blocks, self.n_replicas).cpu().numpy()

    def histogram_density(self, area: np.ndarray) -> np.ndarray:
        """rho from counts [n_replicas, n_bins] (NaN for replicas without samples)."""
        counts, samples = self._per_block(self.counts)
        return _histogram(counts.sum(0), samples.sum(0), np.asarray(area), self.dz)

    def histogram_stderr(self, area: np.ndarray) -> np.ndarray:
        """Standard error of ``histogram_density`` from the spread of the block histograms (NaN without samples in every block)."""
        counts, samples = self._per_block(self.counts)
        return _block_stderr(_histogram(counts, samples, np.asarray(area), self.dz))

    def force_density(self, area: np.ndarray, kT: np.ndarray, n_sites: np.ndarray) -> np.ndarray:
        """rho by integrating beta times the mean force density; mean fixed to n_sites / (A L)."""
        force, samples = self._per_block(self.force)
        return self._integrate(force.sum(0), samples.sum(0), area, kT, n_sites)

    def force_stderr(self, area: np.ndarray, kT: np.ndarray, n_sites: np.ndarray) -> np.ndarray:
        """Standard error of ``force_density`` from the spread of the force-sampling profiles of the blocks."""
        force, samples = self._per_block(self.force)
        return _block_stderr(self._integrate(force, samples, area, kT, n_sites))

    def _integrate(self, force: np.ndarray, samples: np.ndarray, area, kT, n_sites) -> np.ndarray:
        """Force sums [..., replicas, bins] over ``samples`` [..., replicas] frames -> rho [..., replicas, bins]."""
        area, kT = np.asarray(area, dtype=float), np.asarray(kT, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = force / (samples[..., None] * area[:, None] * self.dz)
        f = f - f.mean(axis=-1, keepdims=True)
        # trapezoid between neighbouring bin centres: rho_{k+1} - rho_k = beta dz (f_k + f_{k+1}) / 2
        steps = 0.5 * (f[..., :-1] + f[..., 1:]) * self.dz / kT[:, None]
        rho = np.concatenate([np.zeros(f.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], axis=-1)
        mean = np.asarray(n_sites, dtype=float) / (area * self.box_z)
        return rho - rho.mean(axis=-1, keepdims=True) + mean[:, None]


def _histogram(counts: np.ndarray, samples: np.ndarray, area: np.ndarray, dz: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / (samples[..., None] * area[:, None] * dz)


def _block_stderr(block_profiles: np.ndarray) -> np.ndarray:
    """Standard error of the mean over the leading (block) axis."""
    blocks = block_profiles.shape[0]
    return block_profiles.std(axis=0, ddof=1) / np.sqrt(blocks)
