"""Liquid-vapour coexistence from a free slab: centred profiles, plateau densities with block errors, the liquid's RDF.

Centre-of-mass frame: a free slab (no V_ext) wanders as a whole (Langevin noise does not conserve momentum, and
even a momentum-conserving slab diffuses), so its profile averaged in the box frame is smeared: the LJ campaign
read a T = 0.8 liquid plateau of 0.662 instead of 0.730 that way. Every frame is histogrammed relative to the
slab's centre, the circular mean of the density sites' z (the centre of mass on the periodic z axis; the uniform
vapour adds nothing to it on average).

Plateaus: the profile folded about the centre, rho(d) with d = |z - centre|, has the equimolar dividing surface
d_G = integral_0^{L/2} (rho - rho_v) dd / (rho_l - rho_v). The liquid plateau is d < d_G - margin, the vapour
plateau d > d_G + margin, rho_l and rho_v their means, iterated to self-consistency. Standard errors: the
production run is cut into consecutive blocks, and the plateau means of the blocks scatter as std / sqrt(blocks).
A slab counts as coexisting only when both plateaus exist, the vapour was seen in at least half the blocks (a slab
starts with none), the plateaus differ beyond the noise and beyond what centring a homogeneous fluid produces, the
liquid plateau is flat, and neither plateau drifts.

RDF of the liquid: each frame counts site pairs by distance for every site as the reference, binned by that
reference's distance from the centre; after the run only references inside the liquid plateau count, normalised
by the liquid plateau density: g(r) = <n(r)> / (rho_l 4/3 pi (r_{k+1}^3 - r_k^3)). Shells of references near the
plateau's edge reach into the interface, which lowers g at r of the order of the margin slightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..md.neighbours import pairs_within

STATUS_OK = "ok"
STATUS_NO_COEXISTENCE = "no coexistence"
STATUS_FAILED = "failed"
# the liquid and vapour plateaus must differ by this many combined standard errors to count as two phases
SEPARATION_SIGMAS = 5.0
# Centring on the sites' own first Fourier mode turns a homogeneous fluid's fluctuation into a bump: of N sites at
# mean density rho, the mode's mean amplitude is sqrt(pi S(k) / 4N), so the centred profile's contrast is about
# 2 rho sqrt(pi S / 4N) (LJ, 257 sites, T = 1.3 > Tc: 0.35 vs 0.25). A slab's contrast must exceed this many times
# the ideal gas's (S = 1), which allows S(k) up to 100 near Tc before a fluctuation can pass for two phases.
CENTRING_MARGIN = 10.0
# a liquid plateau whose inner and outer halves, or whose early and late production, differ by more than this
# fraction (and the noise) is no equilibrium plateau
FLATNESS_TOLERANCE = 0.05


def slab_centre(z: np.ndarray, length: float) -> float:
    """The circular mean of ``z`` on a periodic axis of ``length``: the slab's centre of mass along z."""
    angle = 2.0 * math.pi * np.asarray(z) / length
    return float(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) * length / (2.0 * math.pi)) % length


def centred(z: np.ndarray, centre: float, length: float) -> np.ndarray:
    """Signed distance of ``z`` from ``centre`` on the periodic axis, in [-length/2, length/2)."""
    return np.mod(np.asarray(z) - centre + 0.5 * length, length) - 0.5 * length


class SlabSampler:
    """Per-block centred site histograms and distance-resolved RDF pair counts of ``n_replicas`` slabs in one ``box``.

    Fed like ``sampling.profiles.ProfileAccumulator``: ``sample(engine)`` reads ``engine.site_positions()`` and
    ``engine.ids`` (the torch engine, or the LAMMPS engine's frame). ``samples``: frames each replica will give.
    """

    def __init__(self, n_replicas: int, box, bin_width: float, samples: int, blocks: int, rdf_max: float, rdf_bin_width: float):
        self.box = np.asarray(box, dtype=float)
        self.n_bins = 2 * math.ceil(0.5 * self.box[2] / bin_width - 1e-9)  # even: bins mirror about the centre
        self.dz = self.box[2] / self.n_bins
        self.blocks = min(blocks, samples)
        self.expected_samples = samples
        self.taken = 0
        self.rdf_edges = np.linspace(0.0, rdf_max, max(1, round(rdf_max / rdf_bin_width)) + 1)
        half = self.n_bins // 2
        self.counts = np.zeros((self.blocks, n_replicas, self.n_bins))
        self.block_samples = np.zeros((self.blocks, n_replicas))
        self.pairs = np.zeros((n_replicas, half, len(self.rdf_edges) - 1))  # by reference's |d| bin and r bin
        self.references = np.zeros((n_replicas, half))

    @property
    def z(self) -> np.ndarray:
        """Bin centres, distance from the slab centre."""
        return (np.arange(self.n_bins) + 0.5) * self.dz - 0.5 * self.box[2]

    def sample(self, engine) -> None:
        block = self.taken * self.blocks // self.expected_samples
        self.taken += 1
        for positions, row in zip(engine.site_positions().detach().cpu().numpy(), engine.ids.cpu().numpy().tolist()):
            d = centred(positions[:, 2], slab_centre(positions[:, 2], self.box[2]), self.box[2])
            bins = np.clip(((d + 0.5 * self.box[2]) / self.dz).astype(np.int64), 0, self.n_bins - 1)
            self.counts[block, row] += np.bincount(bins, minlength=self.n_bins)
            self.block_samples[block, row] += 1
            self._count_pairs(row, positions, np.abs(d))

    def _count_pairs(self, row: int, positions: np.ndarray, distance_from_centre: np.ndarray) -> None:
        half, n_r = self.references.shape[1], self.pairs.shape[2]
        layer = np.minimum((distance_from_centre / self.dz).astype(np.int64), half - 1)
        self.references[row] += np.bincount(layer, minlength=half)
        i, j, r = pairs_within(positions, self.box, self.rdf_edges[-1])
        shell = np.minimum((r / (self.rdf_edges[1] - self.rdf_edges[0])).astype(np.int64), n_r - 1)
        for reference in (i, j):  # each pair counts once for either site as the reference
            self.pairs[row] += np.bincount(layer[reference] * n_r + shell, minlength=half * n_r).reshape(half, n_r)

    def profiles(self) -> np.ndarray:
        """Centred densities per block [blocks, replicas, bins] (NaN where a block has no sample)."""
        area = self.box[0] * self.box[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.counts / (self.block_samples[..., None] * area * self.dz)


@dataclass(frozen=True)
class Coexistence:
    """One slab's verdict: the coexisting densities with block standard errors, or why there are none."""

    status: str
    reason: str
    rho_vapour: float
    rho_vapour_stderr: float
    rho_liquid: float
    rho_liquid_stderr: float
    dividing_surface: float  # equimolar half-width d_G of the slab (NaN where none was found)
    blocks: int

    def describe(self) -> str:
        if self.status != STATUS_OK:
            return f"{self.status}: {self.reason}"
        return f"liquid {self.rho_liquid:.5g} ± {self.rho_liquid_stderr:.2g}, vapour {self.rho_vapour:.5g} ± {self.rho_vapour_stderr:.2g}"


def fold(profile: np.ndarray) -> np.ndarray:
    """A centred profile [..., 2n] folded about its middle: [..., n], bin k at distance (k + 1/2) dz from the centre."""
    half = profile.shape[-1] // 2
    return 0.5 * (profile[..., half:] + profile[..., :half][..., ::-1])


def plateau_densities(block_profiles: np.ndarray, dz: float, initial_half_width: float, margin: float, n_sites: int, iterations: int = 20) -> Coexistence:
    """Coexisting densities from the centred profiles of the blocks [blocks, bins] of a slab of ``n_sites`` density
    sites (see the module docstring). ``initial_half_width``: where the dividing surface is looked for first."""
    blocks = block_profiles.shape[0]
    folded_blocks = fold(block_profiles)
    folded = folded_blocks.mean(0)
    d = (np.arange(folded.size) + 0.5) * dz
    half_length = folded.size * dz
    dividing = float(initial_half_width)
    for _ in range(iterations):
        liquid, vapour = d < dividing - margin, d > dividing + margin
        if not liquid.any() or not vapour.any():
            break
        contrast = folded[liquid].mean() - folded[vapour].mean()
        if not contrast > 0:
            return _none(f"no liquid-vapour contrast: the slab's middle is not denser than its surroundings (equimolar search at d = {dividing:.3g})", blocks)
        new = float(np.clip(((folded - folded[vapour].mean()) * dz).sum() / contrast, 0.0, half_length))
        converged = abs(new - dividing) < 0.5 * dz
        dividing = new
        if converged:
            break
    liquid, vapour = d < dividing - margin, d > dividing + margin
    if not liquid.any():
        return _none(f"no liquid plateau: the slab's equimolar half-width {dividing:.3g} is within interface_margin {margin} of its centre (evaporated, or too thin)", blocks, dividing)
    if not vapour.any():
        return _none(f"no vapour plateau: the vapour gap's half-width {half_length - dividing:.3g} is within interface_margin {margin} of the dividing surface", blocks, dividing)
    rho_l, rho_v = folded_blocks[:, liquid].mean(1), folded_blocks[:, vapour].mean(1)
    seen = int((rho_v > 0).sum())
    if 2 * seen < blocks:
        return _none(f"vapour seen in {seen} of {blocks} blocks (no molecule in its plateau in the others): the vapour has not formed (not equilibrated), or its density is below what this slab and run resolve", blocks, dividing)
    error_l, error_v = _stderr(rho_l), _stderr(rho_v)
    values = f"liquid {rho_l.mean():.4g} ± {error_l:.2g}, vapour {rho_v.mean():.4g} ± {error_v:.2g}"
    if rho_l.mean() - rho_v.mean() < SEPARATION_SIGMAS * math.hypot(error_l, error_v):
        return _none(f"plateaus not distinct ({values}: less than {SEPARATION_SIGMAS:g} standard errors apart): evaporated or supercritical", blocks, dividing)
    artefact = CENTRING_MARGIN * 2.0 * folded.mean() * math.sqrt(math.pi / (4.0 * n_sites))
    if rho_l.mean() - rho_v.mean() < artefact:
        return _none(f"contrast {rho_l.mean() - rho_v.mean():.3g} ({values}) below {artefact:.3g}, {CENTRING_MARGIN:g} x what centring a homogeneous fluid of {n_sites} sites shows: no distinct phases (supercritical, near Tc, or too few molecules to tell)", blocks, dividing)
    inner = d < 0.5 * (dividing - margin)
    if inner.any() and (liquid & ~inner).any():
        step = folded_blocks[:, inner].mean(1) - folded_blocks[:, liquid & ~inner].mean(1)
        if _differ(step.mean(), _stderr(step), rho_l.mean()):
            return _none(f"liquid plateau not flat (its inner half {step.mean():+.3g} denser than its outer half; {values}): not equilibrated, or the slab is all interface", blocks, dividing)
    if blocks >= 3:
        for phase, rho in (("liquid", rho_l), ("vapour", rho_v)):
            change, error = _trend(rho)
            if _differ(change, error, rho.mean()):
                return _none(f"{phase} plateau drifts ({change:+.3g} over the production run, {values}): not equilibrated, evaporating or dissolving", blocks, dividing)
    return Coexistence(STATUS_OK, "", float(rho_v.mean()), error_v, float(rho_l.mean()), error_l, dividing, blocks)


def _differ(difference: float, error: float, scale: float) -> bool:
    """A difference beyond both the noise (SEPARATION_SIGMAS standard errors) and FLATNESS_TOLERANCE of ``scale``."""
    return abs(difference) > max(SEPARATION_SIGMAS * error, FLATNESS_TOLERANCE * scale)


def _trend(values: np.ndarray) -> tuple[float, float]:
    """The change over the blocks of a straight line fitted to ``values`` and its standard error from the residuals
    (the blocks' scatter about the trend, not about the mean, which a drift itself would inflate)."""
    k = np.arange(len(values)) - 0.5 * (len(values) - 1)
    slope = float((k * values).sum() / (k * k).sum())
    residuals = values - values.mean() - slope * k
    error = math.sqrt((residuals**2).sum() / (len(values) - 2) / (k * k).sum())
    return slope * (len(values) - 1), error * (len(values) - 1)


def _stderr(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def _none(reason: str, blocks: int, dividing: float = math.nan) -> Coexistence:
    return Coexistence(STATUS_NO_COEXISTENCE, reason, math.nan, math.nan, math.nan, math.nan, dividing, blocks)


def failed(reason: str, blocks: int) -> Coexistence:
    """The verdict of a slab whose MD failed (blow-up, LAMMPS error): no densities."""
    return Coexistence(STATUS_FAILED, reason, math.nan, math.nan, math.nan, math.nan, math.nan, blocks)


def radial_distribution(pairs: np.ndarray, references: np.ndarray, edges: np.ndarray, density: float) -> np.ndarray:
    """g(r) on the shells ``edges`` from pair counts [r bins] summed over ``references`` reference sites, at ``density``."""
    shells = 4.0 / 3.0 * math.pi * np.diff(edges**3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pairs / (references * density * shells)


def liquid_rdf(sampler: SlabSampler, replica: int, result: Coexistence, margin: float) -> np.ndarray:
    """The site-site g(r) of a slab's liquid plateau (references with |d| < d_G - ``margin``); NaN without coexistence."""
    if result.status != STATUS_OK:
        return np.full(len(sampler.rdf_edges) - 1, math.nan)
    plateau = (np.arange(sampler.references.shape[1]) + 0.5) * sampler.dz < result.dividing_surface - margin
    return radial_distribution(sampler.pairs[replica, plateau].sum(0), sampler.references[replica, plateau].sum(), sampler.rdf_edges, result.rho_liquid)
