"""Bulk thermodynamics from a functional's bulk excess chemical potential.

Everything derives from one smooth function per temperature, beta mu_ex(rho) = -c1_b(rho), the
one-body direct correlation of a constant profile. It is represented by a Chebyshev series on
[0, rho_max] so that beta mu, its derivatives and the excess free energy
beta f_ex(rho) = integral_0^rho beta mu_ex are exact operations on the series (spectral accuracy for
a smooth functional, cheap enough for nested root finding), and

    beta mu = ln rho + beta mu_ex,     beta p = rho + rho beta mu_ex - beta f_ex.

Coexistence is equal mu and p in two phases; the spinodal is d mu / d rho = 0; the critical point is
the temperature where the van der Waals loop (two turning points of mu) vanishes. Every solver
returns a result or a reason why there is none; none invents a transition: a loop needs both
turning points inside the analysed density range (away from its edge, where a learned functional
stops knowing), and the analysed range may depend on temperature (``DensityLimit``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.polynomial import Chebyshev
from scipy.optimize import brentq

# beta mu_ex(rho, T) for an array of bulk densities at one temperature (= -c1 of constant profiles).
BulkExcess = Callable[[np.ndarray, float], np.ndarray]

# A turning point of mu within this fraction of density_max below it is at the edge of what is
# analysed: mu turning down there is the functional leaving its data, not a van der Waals loop.
EDGE_MARGIN = 0.02


@dataclass(frozen=True)
class DensityLimit:
    """The highest analysed bulk density as a function of T: linear between knots, capped, constant beyond the ends.

    Continuous in T, so a critical-point search that follows it stays a continuous root problem.
    """

    knots_T: tuple[float, ...]
    knots_rho: tuple[float, ...]
    cap: float = math.inf

    @classmethod
    def constant(cls, rho_max: float) -> "DensityLimit":
        return cls((0.0,), (float(rho_max),))

    def __call__(self, T: float) -> float:
        return min(self.cap, float(np.interp(T, self.knots_T, self.knots_rho)))

    def lowest(self, T_a: float, T_b: float) -> float:
        """min over [T_a, T_b]: at an end or a knot, since the limit is piecewise linear."""
        inside = [self(t) for t in self.knots_T if T_a < t < T_b]
        return min([self(T_a), self(T_b), *inside])


def functional_excess(functional) -> BulkExcess:
    """beta mu_ex(rho, T) = -c1_b of a ``cdft.functional.Functional`` (constant profiles, one batch)."""
    from ..cdft.thermo import bulk_c1

    def excess(rho: np.ndarray, T: float) -> np.ndarray:
        return -bulk_c1(functional, rho, T)

    return excess


class NotFound(Exception):
    """A thermodynamic object does not exist in the searched range, or the EOS is too rough to say."""


@dataclass(frozen=True)
class Isotherm:
    """The bulk equation of state at one temperature (internal units; beta = 1 / k_B T)."""

    T: float
    mu_ex: Chebyshev  # beta mu_ex(rho)
    fit_error: float  # max |series - functional| at points between the nodes

    @classmethod
    def from_functional(cls, excess: BulkExcess, T: float, rho_max: float, degree: int = 96) -> "Isotherm":
        """Interpolate beta mu_ex at Chebyshev points (DCT); the error is measured at the midpoints."""
        from scipy.fft import dct

        nodes = np.cos(np.pi * np.arange(degree + 1) / degree)
        mids = np.cos(np.pi * (np.arange(degree) + 0.5) / degree)
        rho = 0.5 * rho_max * (np.concatenate([nodes, mids]) + 1.0)
        values = np.asarray(excess(rho, T), dtype=float)
        if not np.all(np.isfinite(values)):
            bad = rho[~np.isfinite(values)]
            raise NotFound(f"beta mu_ex is not finite at rho = {bad.min():.4g} (T = {T:g}); lower density_max")
        coef = dct(values[: degree + 1], type=1) / degree
        coef[[0, -1]] /= 2.0
        series = Chebyshev(coef, domain=[0.0, rho_max])
        error = float(np.max(np.abs(series(rho[degree + 1 :]) - values[degree + 1 :])))
        return cls(float(T), series, error)

    @property
    def rho_max(self) -> float:
        return float(self.mu_ex.domain[1])

    @cached_property
    def _dmu_ex(self) -> Chebyshev:
        return self.mu_ex.deriv()

    @cached_property
    def _p_ex(self) -> Chebyshev:
        """beta p - rho = rho beta mu_ex - beta f_ex, one series so a pressure is one evaluation."""
        x = Chebyshev.identity(domain=self.mu_ex.domain)
        return x * self.mu_ex - self.mu_ex.integ(lbnd=0.0)

    def beta_mu(self, rho):
        return np.log(rho) + self.mu_ex(rho)

    def dbeta_mu(self, rho):
        return 1.0 / rho + self._dmu_ex(rho)

    def beta_f_ex(self, rho):
        return self.mu_ex.integ(lbnd=0.0)(rho)

    def beta_p(self, rho):
        return rho + self._p_ex(rho)

    def dbeta_p(self, rho):
        """d(beta p)/d rho = rho d(beta mu)/d rho = 1/S(0): positive where the fluid is stable."""
        return 1.0 + rho * self._dmu_ex(rho)

    def _interior_roots(self, series: Chebyshev, samples: int = 4001) -> np.ndarray:
        """Sign changes on a fine grid, polished by bracketing (cheaper and sturdier than companion eigenvalues)."""
        x = np.linspace(0.0, self.rho_max, samples)[1:-1]
        y = series(x)
        change = np.flatnonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0)
        return np.array([brentq(series, x[i], x[i + 1], xtol=1e-15, rtol=1e-15) for i in change])

    def spinodal(self) -> np.ndarray:
        """Densities where d mu / d rho = 0 (turning points of mu, limits of metastability)."""
        x = Chebyshev.identity(domain=self.mu_ex.domain)
        return self._interior_roots(1.0 + x * self._dmu_ex)

    @property
    def rho_inner(self) -> float:
        """The top of the density range where a turning point counts as interior (EDGE_MARGIN below rho_max)."""
        return (1.0 - EDGE_MARGIN) * self.rho_max

    def min_dbeta_p(self, rho_high: float | None = None) -> tuple[float, float]:
        """(min over 0 <= rho <= rho_high (default rho_max) of d(beta p)/d rho, the density where it is taken)."""
        rho_high = self.rho_max if rho_high is None else rho_high
        x = Chebyshev.identity(domain=self.mu_ex.domain)
        slope = 1.0 + x * self._dmu_ex
        stationary = self._interior_roots(slope.deriv())
        candidates = np.concatenate([[0.0, rho_high], stationary[stationary < rho_high]])
        values = slope(candidates)
        i = int(np.argmin(values))
        return float(values[i]), float(candidates[i])

    def loop(self) -> tuple[float, float] | None:
        """The (vapour, liquid) spinodal of a van der Waals loop with both turning points below rho_inner, or None."""
        turning = self.spinodal()
        if turning.size >= 2 and turning[1] < self.rho_inner:
            return float(turning[0]), float(turning[1])
        return None

    def turns_down_at_edge(self) -> bool:
        """d(beta p)/d rho < 0 at rho_max without an interior loop: the range ends where mu bends over, not a transition."""
        return self.loop() is None and float(self.dbeta_p(self.rho_max)) < 0.0


@dataclass(frozen=True)
class Coexistence:
    T: float
    rho_vapour: float
    rho_liquid: float
    beta_mu: float
    beta_p: float
    spinodal_vapour: float
    spinodal_liquid: float


def coexistence(iso: Isotherm) -> Coexistence:
    """Equal beta mu and beta p in a vapour and a liquid on either side of a single van der Waals loop.

    The chemical potential is the unknown: for each mu the vapour and liquid densities follow by
    inverting the two stable, monotonic branches, and p_l(mu) - p_v(mu) increases with mu (its
    derivative is rho_l - rho_v), so a bracketing root finder cannot fall onto rho_v = rho_l.
    A turning point beyond ``rho_inner`` (mu bending over at the edge of the range) ends the liquid branch.
    """
    turning = iso.spinodal()
    interior = turning[turning < iso.rho_inner]
    if interior.size < 2:
        edge = " (mu turns down only at the edge of the analysed range: not a loop)" if turning.size else ""
        raise NotFound(f"no van der Waals loop at T = {iso.T:g} inside 0 < rho < {iso.rho_inner:.4g}{edge}")
    if interior.size != 2:
        raise NotFound(
            f"mu(rho) has {interior.size} turning points at T = {iso.T:g} (at rho = {np.array2string(interior, precision=4)}): "
            "not a single van der Waals loop, the functional is too rough to define one coexistence"
        )
    s_v, s_l = (float(r) for r in interior)
    liquid_end = float(turning[2]) if turning.size > 2 else iso.rho_max
    mu_top, mu_bottom = float(iso.beta_mu(s_v)), float(iso.beta_mu(s_l))
    mu_end = float(iso.beta_mu(liquid_end))

    def rho_vapour(mu: float) -> float:
        # ln rho + mu_ex(rho) = mu; mu_ex -> mu_ex(0) at rho -> 0, so the root lies above exp(mu - mu_ex(0) - 50).
        low = min(mu - float(iso.mu_ex(0.0)) - 50.0, math.log(s_v) - 1.0)
        return math.exp(_increasing_root(lambda x: float(iso.beta_mu(math.exp(x))) - mu, low, math.log(s_v)))

    def rho_liquid(mu: float) -> float:
        return _increasing_root(lambda r: float(iso.beta_mu(r)) - mu, s_l, liquid_end)

    def pressure_gap(mu: float) -> float:
        return float(iso.beta_p(rho_liquid(mu)) - iso.beta_p(rho_vapour(mu)))

    upper = min(mu_top, mu_end)
    if pressure_gap(upper) < 0.0:
        raise NotFound(f"the coexisting liquid at T = {iso.T:g} lies above the analysed density range (rho <= {liquid_end:.4g})")
    mu = brentq(pressure_gap, mu_bottom, upper, xtol=1e-14, rtol=1e-14)
    rho_v, rho_l = rho_vapour(mu), rho_liquid(mu)
    return Coexistence(iso.T, rho_v, rho_l, mu, float(iso.beta_p(rho_l)), s_v, s_l)


def _increasing_root(f: Callable[[float], float], a: float, b: float) -> float:
    """Root of an increasing f on [a, b]; an end where f is zero up to rounding is the root."""
    if f(a) >= 0.0:
        return a
    if f(b) <= 0.0:
        return b
    return brentq(f, a, b, xtol=1e-15, rtol=1e-15)


@dataclass(frozen=True)
class CriticalPoint:
    T: float
    rho: float
    beta_p: float


def critical_point(excess: BulkExcess, T_loop: float, T_stable: float, rho_max: float, degree: int = 96) -> CriticalPoint:
    """The temperature between ``T_loop`` (a loop inside the range) and ``T_stable`` (none) where the loop closes.

    The density range is one for the whole bracket (the caller passes the lowest limit across it), so
    min over 0 <= rho <= rho_inner of d(beta p)/d rho depends on T only through the functional:
    negative below Tc, positive above, continuous through it, a root brentq can follow (a range
    moving with T would add the interpolation's node noise). Its root is Tc and the minimiser rho_c,
    which must be interior: a minimum at the range's edge means the loop left the range, not that it closed.
    """

    def depth(T: float) -> tuple[float, float]:
        iso = Isotherm.from_functional(excess, T, rho_max, degree)
        return iso.min_dbeta_p(iso.rho_inner)

    rho_inner = (1.0 - EDGE_MARGIN) * rho_max
    if depth(T_loop)[0] >= 0.0:
        raise NotFound(f"the loop at T = {T_loop:g} does not fit below rho = {rho_inner:.4g}, the analysed range across [{T_loop:g}, {T_stable:g}]")
    if depth(T_stable)[0] <= 0.0:
        raise NotFound(f"between T = {T_loop:g} and {T_stable:g} d(beta p)/d rho < 0 reaches the edge of the analysed density range "
                       f"(rho = {rho_inner:.4g}): the loop's closing is not resolved inside it")
    Tc = brentq(lambda T: depth(T)[0], T_loop, T_stable, xtol=1e-12 * abs(T_stable), rtol=1e-12)
    rho_c = depth(Tc)[1]
    if rho_c >= rho_inner * (1.0 - 1e-9):
        raise NotFound(f"the loop leaves the analysed density range (rho = {rho_inner:.4g}) near T = {Tc:g} instead of closing")
    iso = Isotherm.from_functional(excess, Tc, rho_max, degree)
    return CriticalPoint(float(Tc), rho_c, float(iso.beta_p(rho_c)))


@dataclass
class PhaseDiagram:
    """What the bulk analysis found; ``reason`` says why a missing part is missing.

    ``critical`` is set only when ``status`` is 'found'; ``critical_estimate`` is where the loop
    closes even when the binodal below it is incomplete ('incomplete').
    """

    isotherms: list[Isotherm]
    binodal: list[Coexistence]
    critical: CriticalPoint | None
    reason: str  # empty when a transition and its critical point were found
    status: str = "found"  # 'found', 'not found' (no transition, or Tc beyond the analysed T) or 'incomplete'
    critical_estimate: CriticalPoint | None = None

    def __post_init__(self) -> None:
        if self.critical_estimate is None:
            self.critical_estimate = self.critical  # a found critical point is its own estimate


def binodal_temperatures(T_low: float, Tc: float, n: int) -> np.ndarray:
    """n temperatures from T_low towards Tc, crowding quadratically near Tc where the binodal bends fastest."""
    s = np.arange(n) / n
    return Tc - (Tc - T_low) * (1.0 - s) ** 2


def phase_diagram(excess: BulkExcess, temperatures: Sequence[float], rho_max: float | DensityLimit, n_binodal: int = 32,
                  degree: int = 96) -> PhaseDiagram:
    """Scan the isotherms (each up to ``rho_max(T)``), locate the critical point, trace the binodal from the lowest T towards Tc.

    'found' needs the loop to close between two analysed isotherms and the binodal traced from the
    lowest analysed T up to Tc. Along the trace each coexistence is checked against the previous one
    (the liquid density must not rise and the vapour density must not fall on heating); a break ends
    the trace with its reason.
    """
    limit = rho_max if isinstance(rho_max, DensityLimit) else DensityLimit.constant(rho_max)
    temperatures = np.sort(np.asarray(temperatures, dtype=float))
    isotherms = [Isotherm.from_functional(excess, T, limit(T), degree) for T in temperatures]
    loops = np.array([iso.loop() is not None for iso in isotherms])
    span = f"[{temperatures[0]:g}, {temperatures[-1]:g}]"
    if not loops.any():
        edge = [iso.T for iso in isotherms if iso.turns_down_at_edge()]
        note = f"; d(beta p)/d rho < 0 only at the edge of the density range at T = {edge[0]:g} to {edge[-1]:g}, not a loop" if edge else ""
        return PhaseDiagram(isotherms, [], None, f"no liquid-vapour transition: no van der Waals loop inside the analysed density "
                            f"range at any T in {span}{note}", "not found")
    first = int(np.argmax(loops))
    estimate, status, reason = None, "not found", ""
    if loops[-1]:
        reason = f"critical point above the analysed (covered) temperatures: a van der Waals loop persists at T = {temperatures[-1]:g}"
        T_trace = np.unique(np.linspace(temperatures[first], temperatures[-1], n_binodal))  # one point for a one-temperature functional
    else:
        closes = first + int(np.argmin(loops[first:]))
        T_loop, T_stable = float(temperatures[closes - 1]), float(temperatures[closes])
        try:
            estimate = critical_point(excess, T_loop, T_stable, limit.lowest(T_loop, T_stable), degree)
        except NotFound as exc:
            reason = f"no critical point: {exc}"
            T_trace = np.unique(np.linspace(temperatures[first], T_loop, n_binodal))
        else:
            status = "found"
            if loops[closes:].any():
                status, reason = "incomplete", "the loop disappears and reappears on heating: the functional is too rough for one critical point"
            T_trace = binodal_temperatures(float(temperatures[first]), estimate.T, n_binodal)
    if first > 0:
        reason = reason or f"binodal incomplete: no van der Waals loop inside the analysed density range below T = {temperatures[first]:g}"
    binodal: list[Coexistence] = []
    for T in T_trace:
        try:
            point = coexistence(Isotherm.from_functional(excess, float(T), limit(float(T)), degree))
        except NotFound as exc:
            reason = reason or f"binodal trace stopped: {exc}"
            break
        if binodal and (point.rho_liquid > binodal[-1].rho_liquid * (1 + 1e-9) or point.rho_vapour < binodal[-1].rho_vapour * (1 - 1e-9)):
            reason = reason or f"binodal trace stopped at T = {T:g}: coexisting densities move apart on heating (rough functional)"
            break
        binodal.append(point)
    if status == "found" and reason:
        status = "incomplete"
    return PhaseDiagram(isotherms, binodal, estimate if status == "found" else None, reason, status, estimate)
