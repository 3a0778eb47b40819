"""The PeTS fluid (perturbed truncated-and-shifted Lennard-Jones, 2.5 sigma; Heier et al. 2018) through FeOs.

FeOs's classical DFT of PeTS is a known 3D functional with a critical point: its profiles in random
potentials are training data with known mu, and its own binodal, surface tension, capillary
coexistence and Widom line are the answers a functional learned from them must reproduce (rung 2).

Everything here is in reduced units (sigma = epsilon = k_B = 1): densities in sigma^-3, T in
epsilon/k_B, p in epsilon/sigma^3, gamma in epsilon/sigma^2, grand potentials per unit area in
k_B T / sigma^2. FeOs works in SI; the conversions live only in this module (any sigma, epsilon_k
give the same reduced answers: the model has no other scale).

Chemical potential convention (the project's): beta mu = ln rho + beta mu_res(rho, T), i.e. the
thermal wavelength is sigma, so that c1 = ln rho + beta V_ext - beta mu and c1[rho = 0] = 0. FeOs's
residual chemical potential is exactly beta mu_res (it needs no ideal-gas model).

What was measured about FeOs 0.10.5 (Pore1D with an explicit ``external_potential`` array):

* the array is beta V (divided by k_B T), one value per grid point; the middle of a wide pore with
  beta V = c there has the bulk density at beta mu - c;
* a Cartesian Pore1D's grid has ``n_grid`` cells of width (pore_size/2 + 2 sigma)/n_grid, centres at
  (i + 1/2) dz, and mirror (cosine-transform) boundaries at both ends: z = 0 is the pore centre of
  FeOs's own symmetric pores. An arbitrary profile therefore fits on it whole when it is padded with
  empty bins wider than the interaction range (2.5 sigma), as our hard-wall padding is;
* values of beta V >= ~1000 (or inf) make the Euler-Lagrange iteration fail with "illegal values"
  (exp underflows to 0, ln 0); beta V = 100 is a hard wall for every purpose (rho ~ e^-100) and
  the contact density then obeys beta p = rho(contact) with the wall at the bin edge;
* ``grand_potential_density`` is omega(z) in J/m^3 including V_ext and -mu rho, so beta Omega / A is
  its sum times dz (FeOs's own ``grand_potential`` refers to a 1 Å^2 area).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# FeOs parameters: argon-like, only their ratio to the reduced units matters
SIGMA_ANGSTROM = 3.7039
EPSILON_K = 150.03
# beta V given to FeOs for hard bins (V = +inf): e^-100 is zero for the profile, and larger values
# (>= ~1000) make FeOs's iteration fail
HARD_WALL_BETA_V = 100.0
FEOS_ERRORS = (RuntimeError, ValueError)  # what FeOs raises when a state or an iteration fails


@dataclass(frozen=True)
class PetsCoexistence:
    T: float
    rho_vapour: float
    rho_liquid: float
    beta_mu: float
    p: float

    @property
    def beta_p(self) -> float:
        return self.p / self.T


@dataclass(frozen=True)
class PetsInterface:
    """FeOs's free planar interface: liquid at z = 0, vapour at the far end (mirror boundaries)."""

    T: float
    gamma: float
    rho_vapour: float  # plateau densities of the profile
    rho_liquid: float
    z: np.ndarray
    rho: np.ndarray

    @property
    def beta_gamma(self) -> float:
        return self.gamma / self.T


@dataclass(frozen=True)
class PetsProfile:
    rho: np.ndarray
    beta_omega: float  # grand potential per unit area, k_B T / sigma^2


class PetsFluid:
    """FeOs's PeTS equation of state and classical DFT in reduced units."""

    def __init__(self, sigma_angstrom: float = SIGMA_ANGSTROM, epsilon_k: float = EPSILON_K):
        import feos
        import si_units as si

        feos.set_num_threads(1)
        record = feos.PureRecord(feos.Identifier(name="pets"), 1.0, sigma=sigma_angstrom, epsilon_k=epsilon_k)
        self._feos, self._si = feos, si
        self._dft = feos.HelmholtzEnergyFunctional.pets(feos.Parameters.new_pure(record))
        self._sigma = sigma_angstrom * si.ANGSTROM
        self._eps_k = epsilon_k * si.KELVIN
        self._per_molar = si.NAV * self._sigma**3  # reduced density = molar density * this
        self._coexistence = lru_cache(maxsize=4096)(self._coexistence_uncached)
        S = feos.DFTSolver
        # FeOs's default solver, then ever more cautious ones: with strong wells at liquid densities the
        # default overshoots into packing fractions > 1 ("illegal values") in ~1 of 4 dataset runs; the
        # log-space Picard + Newton chain rescues all but ~1 in 100, slow damped Picard the rest (measured)
        self._solvers = (
            None,
            S().picard_iteration(log=True, max_iter=200, damping_coefficient=0.05, tol=1e-4).newton(log=True, tol=1e-10),
            S().picard_iteration(log=True, max_iter=2000, damping_coefficient=0.01, tol=1e-4).newton(log=True, tol=1e-10),
            S().picard_iteration(max_iter=20000, damping_coefficient=0.005, tol=1e-10),
        )

    # --- bulk -----------------------------------------------------------------------------------
    def _state(self, rho: float, T: float):
        return self._feos.State(self._dft, T * self._eps_k, density=float(rho) / self._per_molar)

    def beta_mu_res(self, rho: float, T: float) -> float:
        state = self._state(rho, T)
        return float(state.chemical_potential(self._feos.Contributions.Residual)[0] / (self._si.RGAS * state.temperature))

    def beta_mu(self, rho: float, T: float) -> float:
        """beta mu = ln rho + beta mu_res (thermal wavelength sigma)."""
        return math.log(rho) + self.beta_mu_res(rho, T)

    def beta_pressure(self, rho: float, T: float) -> float:
        return float(self._state(rho, T).pressure() * self._sigma**3 / (self._si.KB * T * self._eps_k))

    def dbeta_p_drho(self, rho: float, T: float) -> float:
        state = self._state(rho, T)
        return float(state.dp_drho() / (self._si.RGAS * state.temperature))

    def S0(self, rho: float, T: float) -> float:
        """S(0) = 1 / (d beta p / d rho) (negative inside the spinodal)."""
        return 1.0 / self.dbeta_p_drho(rho, T)

    @lru_cache(maxsize=1)
    def critical_point(self) -> tuple[float, float, float]:
        """(Tc, rho_c, p_c) of the PeTS bulk."""
        state = self._feos.State.critical_point(self._dft)
        T = float(state.temperature / self._eps_k)
        rho = float(state.density * self._per_molar)
        return T, rho, float(state.pressure() * self._sigma**3 / (self._si.KB * self._eps_k))

    def coexistence(self, T: float) -> PetsCoexistence:
        """Vapour-liquid equilibrium at T < Tc (FeOs's PhaseEquilibrium: equal mu, p and T)."""
        return self._coexistence(float(T))

    def _coexistence_uncached(self, T: float) -> PetsCoexistence:
        vle = self._feos.PhaseEquilibrium.pure(self._dft, T * self._eps_k)
        rho_v = float(vle.vapor.density * self._per_molar)
        rho_l = float(vle.liquid.density * self._per_molar)
        p = float(vle.vapor.pressure() * self._sigma**3 / (self._si.KB * self._eps_k))
        return PetsCoexistence(T, rho_v, rho_l, self.beta_mu(rho_v, T), p)

    def two_phase_gap(self, T: float) -> tuple[float, float] | None:
        """(rho_vapour, rho_liquid) where bulk states are not stable, None where there is no gap.

        Within 1e-3 of Tc FeOs's VLE may not converge; the gap there is below 0.05 in density and
        treated as closed."""
        Tc = self.critical_point()[0]
        if T >= Tc:
            return None
        try:
            co = self.coexistence(T)
        except FEOS_ERRORS:
            if T > Tc * (1 - 1e-3):
                return None
            raise
        return co.rho_vapour, co.rho_liquid

    def bulk_density(self, beta_mu: float, T: float, rho_max: float = 1.2) -> float:
        """Density of the stable bulk phase at (beta mu, T): the vapour root below saturation, the liquid above."""
        from scipy.optimize import brentq

        f = lambda r: self.beta_mu(r, T) - beta_mu  # noqa: E731
        lo, hi = 1e-12, rho_max
        gap = self.two_phase_gap(T)
        if gap is not None:
            if beta_mu <= self.coexistence(T).beta_mu:
                hi = gap[0]
            else:
                lo = gap[1]
        if f(lo) > 0 or f(hi) < 0:
            raise ValueError(f"beta mu = {beta_mu:.6g} at T = {T:.6g} has no stable bulk density in [{lo:.3g}, {hi:.3g}]")
        return float(brentq(f, lo, hi, xtol=1e-15, rtol=1e-13))

    # --- free interface -------------------------------------------------------------------------
    def surface_tension(self, T: float, length: float = 60.0, dz: float = 0.05) -> PetsInterface:
        """FeOs's PlanarInterface (tanh start, mirror boundaries) at T; gamma = integral of omega + p_v.

        gamma at 0.85 Tc agrees to 1e-9 between dz = 0.05 and 0.02 and box lengths 40 and 60 sigma."""
        n = int(round(length / dz))
        Tc = self.critical_point()[0]
        vle = self._feos.PhaseEquilibrium.pure(self._dft, T * self._eps_k)
        interface = self._feos.PlanarInterface.from_tanh(vle, n, length * self._sigma, Tc * self._eps_k, False).solve()
        rho = np.asarray(interface.density * self._per_molar, dtype=float)[0]
        z = np.asarray(interface.z / self._sigma, dtype=float)
        gamma = float(interface.surface_tension * self._sigma**2 / (self._si.KB * self._eps_k))
        return PetsInterface(float(T), gamma, float(rho[-1]), float(rho[0]), z, rho)

    # --- planar inhomogeneous profiles ----------------------------------------------------------
    def solve(self, beta_V: np.ndarray, T: float, beta_mu: float, dz: float, rho_init: np.ndarray | None = None) -> PetsProfile:
        """Grand-canonical profile in beta V(z) (bins of width dz, +inf = hard) at the reservoir's beta mu.

        The whole array lies on FeOs's grid; its ends must be hard (or the profile mirrors there).
        """
        return self.solve_at_density(beta_V, T, self.bulk_density(beta_mu, T), dz, rho_init)

    def solve_at_density(self, beta_V: np.ndarray, T: float, rho_bulk: float, dz: float, rho_init: np.ndarray | None = None) -> PetsProfile:
        """As ``solve``, with the reservoir given by its bulk density (any phase: only its mu matters).

        FeOs's solvers are tried in turn (``self._solvers``); the last one's error is raised if all fail.
        """
        for solver in self._solvers:
            try:
                return self._solve_once(beta_V, T, rho_bulk, dz, rho_init, solver)
            except FEOS_ERRORS as exc:
                error = exc
        raise RuntimeError(f"{error} (all {len(self._solvers)} FeOs solver settings failed)")

    def _solve_once(self, beta_V: np.ndarray, T: float, rho_bulk: float, dz: float, rho_init: np.ndarray | None, solver) -> PetsProfile:
        feos, si = self._feos, self._si
        beta_V = np.asarray(beta_V, dtype=float)
        n = beta_V.size
        pore = feos.Pore1D(feos.Geometry.Cartesian, 2.0 * (n * dz - 2.0) * self._sigma, feos.ExternalPotential.HardWall(1.0), n)
        hard = ~(beta_V < HARD_WALL_BETA_V)
        V = np.where(hard, HARD_WALL_BETA_V, beta_V)[None, :]
        bulk = self._state(rho_bulk, T)
        density = None
        if rho_init is not None:
            start = np.where(hard, 1e-30, np.maximum(np.asarray(rho_init, dtype=float), 1e-30))
            density = start[None, :] / self._per_molar
        profile = pore.initialize(bulk, density=density, external_potential=V).solve(solver)
        rho = np.asarray(profile.density * self._per_molar, dtype=float)[0]
        rho = np.where(np.isinf(beta_V), 0.0, rho)
        omega = np.asarray(profile.grand_potential_density * self._sigma**3 / (si.KB * T * self._eps_k), dtype=float)
        if not (np.isfinite(rho).all() and np.isfinite(omega).all()):
            raise RuntimeError("FeOs returned a non-finite profile")
        return PetsProfile(rho, float(omega.sum() * dz))

    def capillary_coexistence(self, T: float, beta_V_slit: np.ndarray, width: float, dz: float, points: int = 41,
                              window: float = 2.0):
        """beta mu at capillary coexistence of a slit (``interfaces.CapillaryCoexistence``), or NotFound.

        The adsorption branch is continued up in mu from FeOs's empty pore, the desorption branch down
        from a liquid-filled one, over beta mu_sat +- ``window`` times the complete-wetting Kelvin shift
        2 beta gamma / (H (rho_l - rho_v)); the crossing of their grand potentials is located exactly as
        the analysis does (``interfaces.capillary_coexistence``: Hermite with dOmega/dmu = -N).
        """
        from ..analysis.interfaces import Branch, capillary_coexistence

        co = self.coexistence(T)
        kelvin = 2.0 * self.surface_tension(T).beta_gamma / (co.rho_liquid - co.rho_vapour) / width
        mus = co.beta_mu + window * kelvin * np.linspace(-1.0, 1.0, points)
        with np.errstate(over="ignore"):  # liquid, thinned by the wall's repulsion (a flat liquid against it makes FeOs fail)
            filled = co.rho_liquid * np.exp(-np.clip(beta_V_slit, 0.0, HARD_WALL_BETA_V))
        ads = self._branch(beta_V_slit, T, mus, None, dz, width)
        des = self._branch(beta_V_slit, T, mus[::-1], filled, dz, width)
        des = Branch(des.beta_mu[::-1], des.mean_density[::-1], des.beta_omega[::-1], des.profiles[::-1], des.failures)
        return capillary_coexistence(ads, des, width)

    def _branch(self, beta_V: np.ndarray, T: float, mus: np.ndarray, rho_start: np.ndarray | None, dz: float, width: float):
        from ..analysis.interfaces import continued_branch

        def solve_at(beta_mu: float, rho_init):
            solution = self.solve(beta_V, T, beta_mu, dz, rho_init)
            return solution.rho, solution.beta_omega

        return continued_branch(mus, rho_start, width, dz, solve_at, FEOS_ERRORS)

    # --- supercritical: Widom lines (definitions of analysis.supercritical) ----------------------
    def s0_isotherm_maximum(self, T: float, rho_max: float = 0.9):
        """"S(0) isotherm": the maximum of S(0) = 1/(d beta p/d rho) along a supercritical isotherm."""
        from ..analysis.supercritical import LinePoint

        rho, slope = _grid_minimum(lambda r: self.dbeta_p_drho(r, T), 1e-3, rho_max)
        return LinePoint("S(0) isotherm", float(T), rho, self.beta_pressure(rho, T), 1.0 / slope)

    def density_at_pressure(self, p: float, T: float) -> float:
        state = self._feos.State(self._dft, T * self._eps_k, pressure=p * self._si.KB * self._eps_k / self._sigma**3)
        return float(state.density * self._per_molar)

    def chi_isobar_maximum(self, p: float, T_low: float, T_high: float):
        """"chi_T isobar": the maximum of chi_T = beta / (rho d beta p/d rho) along the isobar p (supercritical T)."""
        from ..analysis.supercritical import LinePoint

        def minus_chi(T):
            rho = self.density_at_pressure(p, T)
            return -1.0 / (T * rho * self.dbeta_p_drho(rho, T))

        T, value = _grid_minimum(minus_chi, T_low, T_high)
        return LinePoint("chi_T isobar", T, self.density_at_pressure(p, T), p / T, -value)

    def widom_line(self, reduced_temperatures: Sequence[float] = (1.02, 1.4), isotherms: int = 6,
                   reduced_pressures: Sequence[float] = (1.1, 1.5, 2.0)) -> list:
        """S(0) maxima on supercritical isotherms and chi_T maxima on isobars p = r p_c (``LinePoint``s)."""
        Tc, _, pc = self.critical_point()
        points = [self.s0_isotherm_maximum(float(T)) for T in Tc * np.linspace(*reduced_temperatures, isotherms)]
        return points + [self.chi_isobar_maximum(r * pc, Tc * (1 + 1e-3), Tc * 1.6) for r in reduced_pressures]


def _grid_minimum(f, lo: float, hi: float, points: int = 64) -> tuple[float, float]:
    """(x, f(x)) at the minimum of f on [lo, hi]: a grid, then Brent's method in the bracketing cells;
    ValueError when the minimum is at an end (no interior extremum)."""
    from scipy.optimize import minimize_scalar

    x = np.linspace(lo, hi, points)
    y = np.array([f(v) for v in x])
    i = int(np.argmin(y))
    if i in (0, points - 1):
        raise ValueError(f"no interior minimum in [{lo:.4g}, {hi:.4g}]")
    best = minimize_scalar(f, bounds=(x[i - 1], x[i + 1]), method="bounded", options={"xatol": 1e-10 * (hi - lo)})
    return (float(best.x), float(best.fun)) if best.fun <= y[i] else (float(x[i]), float(y[i]))


def pore_grid(block: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(z, inside) of the dataset's grid: hard walls at z = 0 and z = pore_width, ``padding`` empty bins beyond."""
    from ..cdft.functional import grid_points

    dz = float(block["dz"])
    inner = grid_points(float(block["pore_width"]), dz, "config key 'pets.pore_width'")
    pad = grid_points(float(block["padding"]), dz, "config key 'pets.padding'") if block["padding"] > 0 else 0
    z = (np.arange(inner + 2 * pad) - pad + 0.5) * dz
    return z, (z > 0) & (z < inner * dz)


def draw_state(fluid: PetsFluid, block: Mapping[str, Any], seed: int, k: int) -> tuple[float, float]:
    """Run k's (T, reservoir density), uniform in the configured ranges; below Tc a density inside the
    two-phase gap is redrawn (same stream), so every reservoir is a stable bulk state."""
    rng = np.random.default_rng([seed, k, 1])
    T = float(rng.uniform(*block["temperature_range"]))
    gap = fluid.two_phase_gap(T)
    for _ in range(1000):
        rho = float(rng.uniform(*block["density_range"]))
        if gap is None or not gap[0] < rho < gap[1]:
            return T, rho
    raise ValueError(f"density_range {block['density_range']} lies inside the two-phase region at T = {T:g}")


def pets_dataset(block: Mapping[str, Any], split_fractions: Sequence[float], seed: int, provenance: Mapping[str, Any],
                 fluid: PetsFluid | None = None):
    """FeOs's grand-canonical PeTS profiles in seeded random potentials between hard walls (known mu).

    ``block`` is the config's ``pets`` block. Run k: T and the reservoir density from ``draw_state``,
    beta V from the sampling stage's generator drawn from (seed, k) over the pore (in k_B T of the run,
    so every temperature sees equally strong potentials), beta mu = ln rho_b + beta mu_res of the
    reservoir. V_ext and mu are stored in epsilon (V_ext = T beta V, mu = T beta mu). With
    ``noise_samples`` M > 0 each bin is a histogram count ~ Poisson(rho A dz M) (A = noise_area) and
    rho_stderr = sqrt(max(count, 1)) / (A dz M) (zero inside the hard walls, where rho = 0 is exact).
    With ``widom.fraction`` > 0 that share of the runs (drawn per run) carries a Widom-like beta mu: the
    reservoir's exact beta mu plus Gaussian noise of ``widom.stderr``, as the LJ campaign's test-particle
    insertion gives a share of its runs. A run whose FeOs solve fails keeps status failed with FeOs's reason.
    """
    from ..dataset import BETA_MU_WIDOM, BETA_MU_WIDOM_STDERR, RUN, STATUS_FAILED, STATUS_OK, make_profile_dataset, split_runs
    from ..external import RandomPotentialSettings, random_potential

    fluid = fluid or PetsFluid()
    runs, dz, width = int(block["runs"]), float(block["dz"]), float(block["pore_width"])
    z, inside = pore_grid(block)
    settings = RandomPotentialSettings(cap=float(block["potential_cap"]))
    samples, area = int(block["noise_samples"]), float(block["noise_area"])
    n = z.size
    rho = np.zeros((runs, n))
    beta_V = np.full((runs, n), np.inf)
    T, beta_mu = np.zeros(runs), np.full(runs, np.nan)
    status = np.full(runs, STATUS_OK, dtype=np.int8)
    reasons = [""] * runs
    for k in range(runs):
        T[k], rho_b = draw_state(fluid, block, seed, k)
        beta_V[k, inside] = random_potential((seed, k), width, settings).beta_v(z[inside])
        try:
            beta_mu[k] = fluid.beta_mu(rho_b, T[k])
            rho[k] = fluid.solve_at_density(beta_V[k], T[k], rho_b, dz).rho
        except FEOS_ERRORS as exc:
            rho[k], status[k], reasons[k] = np.nan, STATUS_FAILED, f"FeOs (T = {T[k]:.4g}, rho_b = {rho_b:.4g}): {exc}"
    rho_stderr = None
    if samples > 0:
        scale = area * dz * samples
        counts = np.random.default_rng([seed, 2]).poisson(np.nan_to_num(rho) * scale).astype(float)
        ok = status == STATUS_OK
        rho = np.where(ok[:, None], counts / scale, np.nan)
        rho_stderr = np.where(np.isfinite(beta_V) & ok[:, None], np.sqrt(np.maximum(counts, 1.0)) / scale, 0.0)
    ds = make_profile_dataset(
        z,
        rho,
        T[:, None] * beta_V,
        T=T,
        mu=T * beta_mu,
        N=area * np.nansum(rho, axis=1) * dz,
        split=split_runs(np.arange(runs), split_fractions, seed, ok=status == STATUS_OK),
        area=np.full(runs, area),
        status=status,
        failure_reason=reasons,
        rho_stderr=rho_stderr,
        system="pets",
        site="PeTS",
        dimension=3,
        length_unit="sigma",
        energy_unit="epsilon",
        temperature_unit="epsilon/k_B",
        k_B=1.0,
        provenance=provenance,
    )
    widom = block.get("widom", {})
    if widom.get("fraction", 0.0) > 0:
        rng = np.random.default_rng([seed, 3])
        measured = (rng.random(runs) < widom["fraction"]) & (status == STATUS_OK)
        stderr = float(widom["stderr"])
        ds[BETA_MU_WIDOM] = ((RUN,), np.where(measured, beta_mu + stderr * rng.standard_normal(runs), np.nan),
                             {"units": "1", "long_name": "Widom-like beta mu: FeOs's exact beta mu plus Gaussian noise of beta_mu_widom_stderr, NaN where not drawn"})
        ds[BETA_MU_WIDOM_STDERR] = ((RUN,), np.where(measured, stderr, np.nan), {"units": "1", "long_name": "standard error of beta_mu_widom"})
    return ds
