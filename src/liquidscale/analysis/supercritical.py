"""Lines in the one-phase fluid: Widom lines (maxima of response functions) and the Fisher-Widom line.

Each Widom line is labelled by its definition, because they are different lines that merge only near
the critical point:

* ``S(0) isotherm``: maximum of S(0) = rho k_B T chi_T = 1 / (d beta p / d rho) along an isotherm;
* ``chi_T isobar``: maximum of the isothermal compressibility chi_T = beta / (rho d beta p / d rho) along an isobar;
* ``cp isobar``: maximum of the residual isobaric heat capacity along an isobar (needs T in the functional);
* ``xi isotherm``: maximum of the correlation length 1/a0 of the leading purely imaginary pole of S(k) along an isotherm.

The residual heat capacity per particle, in k_B, from Phi(rho, T) = beta f_ex (T-derivatives by
central differences of the bulk EOS at fixed rho):

    c_p^res = -(2 T Phi_T + T^2 Phi_TT) / rho + (beta p + T d_T beta p)^2 / (rho^2 d_rho beta p) - 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .bulk import BulkExcess, Isotherm, NotFound
from .poles import Poles, find_poles, planar_denominator


@dataclass(frozen=True)
class LinePoint:
    definition: str
    T: float
    rho: float
    beta_p: float
    value: float  # the maximised response (S(0), beta chi_T-like, c_p^res/k_B, xi) or NaN for FW


def _refine_maximum(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Interior grid maximum refined by the parabola through it and its neighbours; None at an edge."""
    finite = np.isfinite(y)
    if finite.sum() < 3:
        return None
    i = int(np.nanargmax(np.where(finite, y, -np.inf)))
    if i == 0 or i == len(x) - 1 or not finite[i - 1 : i + 2].all():
        return None
    coef = np.polyfit(x[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    if coef[0] >= 0:
        return float(x[i]), float(y[i])
    x_star = -coef[1] / (2 * coef[0])
    return float(x_star), float(np.polyval(coef, x_star))


def s0_isotherm_line(isotherms: Sequence[Isotherm], Tc: float) -> list[LinePoint]:
    """Maximum of S(0) along each supercritical isotherm (= minimum of d beta p / d rho)."""
    points = []
    for iso in isotherms:
        if iso.T <= Tc:
            continue
        slope, rho = iso.min_dbeta_p()
        if 0.0 < rho < iso.rho_max:
            points.append(LinePoint("S(0) isotherm", iso.T, rho, float(iso.beta_p(rho)), 1.0 / slope))
    return points


def density_on_isobar(iso: Isotherm, beta_p: float) -> float:
    """The density where beta p(rho) = beta_p on a supercritical isotherm (beta p increases monotonically)."""
    low = 1e-12 * iso.rho_max
    if iso.beta_p(iso.rho_max) < beta_p:
        raise NotFound(f"beta p = {beta_p:.4g} needs rho > density_max at T = {iso.T:g}")
    return brentq(lambda r: float(iso.beta_p(r)) - beta_p, low, iso.rho_max, xtol=1e-14, rtol=1e-13)


def residual_cp(excess: BulkExcess, rho: float, T: float, rho_max: float, h: float = 1e-3) -> float:
    """c_p^res / k_B at (rho, T) from three isotherms at T(1 - h), T, T(1 + h)."""
    isos = [Isotherm.from_functional(excess, T * (1 + s * h), rho_max) for s in (-1, 0, 1)]
    dT = T * h
    phi = np.array([float(i.beta_f_ex(rho)) for i in isos])
    bp = np.array([float(i.beta_p(rho)) for i in isos])
    phi_T, phi_TT = (phi[2] - phi[0]) / (2 * dT), (phi[2] - 2 * phi[1] + phi[0]) / dT**2
    bp_T = (bp[2] - bp[0]) / (2 * dT)
    slope = float(isos[1].dbeta_p(rho))
    return -(2 * T * phi_T + T**2 * phi_TT) / rho + (bp[1] + T * bp_T) ** 2 / (rho**2 * slope) - 1.0


def isobar_lines(excess: BulkExcess, pressures_kT: Sequence[float], temperatures: np.ndarray, density_max: Callable[[float], float],
                 k_B: float, with_cp: bool) -> list[LinePoint]:
    """Maxima of chi_T (and c_p^res) along isobars p = const; ``pressures_kT`` are p / k_B in internal units
    (p in energy per volume divided by k_B), so beta p = pressure_kT / T on each isotherm, analysed up to density_max(T)."""
    isotherms = [Isotherm.from_functional(excess, float(T), density_max(float(T))) for T in temperatures]
    points = []
    for p_kT in pressures_kT:
        rho = np.full(len(temperatures), np.nan)
        for j, iso in enumerate(isotherms):
            try:
                rho[j] = density_on_isobar(iso, p_kT / iso.T)
            except (NotFound, ValueError):
                continue
        chi = np.array([1.0 / (k_B * iso.T * r * float(iso.dbeta_p(r))) if np.isfinite(r) else np.nan for iso, r in zip(isotherms, rho)])
        responses = {"chi_T isobar": chi}
        if with_cp:
            responses["cp isobar"] = np.array(
                [residual_cp(excess, r, float(T), density_max(float(T))) if np.isfinite(r) else np.nan for T, r in zip(temperatures, rho)]
            )
        for definition, values in responses.items():
            best = _refine_maximum(np.asarray(temperatures, dtype=float), values)
            if best is None:
                continue
            T_star, value = best
            iso = Isotherm.from_functional(excess, T_star, density_max(T_star))
            r = density_on_isobar(iso, p_kT / T_star)
            points.append(LinePoint(definition, T_star, r, p_kT / T_star, value))
    return points


def bulk_poles(functional, rho: np.ndarray, T: float, a1_max: float, a0_max: float) -> list[Poles]:
    """Poles of S(k) at each bulk density, from the functional's planar c2 (autograd)."""
    from ..cdft.thermo import bulk_planar_c2

    poles = []
    for r in np.asarray(rho, dtype=float):
        z, c_bar = bulk_planar_c2(functional, float(r), T)
        poles.append(find_poles(*planar_denominator(z, c_bar, float(r), functional.dz), a1_max, a0_max))
    return poles


def xi_isotherm_line(functional, isotherms: Sequence[Isotherm], Tc: float, density_fractions: np.ndarray, a1_max: float,
                     a0_max: float) -> list[LinePoint]:
    """Maximum along each supercritical isotherm of xi = 1/a0 of the leading purely imaginary pole: the
    monotonic decay length that diverges at the critical point (complex poles whose a0 -> 0 signal a
    structural instability of the uniform fluid instead, and are reported by ``Poles.unstable_at``).
    Densities are ``density_fractions`` of each isotherm's own rho_max."""
    points = []
    for iso in isotherms:
        if iso.T <= Tc:
            continue
        rho_grid = np.asarray(density_fractions) * iso.rho_max
        poles = bulk_poles(functional, rho_grid, iso.T, a1_max, a0_max)
        xi = np.array([1.0 / p.leading_imaginary if p.stable and p.imaginary.size else np.nan for p in poles])
        best = _refine_maximum(rho_grid, xi)
        if best is not None:
            points.append(LinePoint("xi isotherm", iso.T, best[0], float(iso.beta_p(best[0])), best[1]))
    return points


def fisher_widom_point(functional, iso: Isotherm, rho_grid: np.ndarray, a1_max: float, a0_max: float, bisections: int = 8) -> LinePoint:
    """The density on an isotherm where the leading pole changes from purely imaginary to a complex pair.

    Only stable densities (d beta p / d rho > 0 and S(k) finite for real k) are searched; the crossover
    is bracketed on the grid and bisected.
    """
    stable = rho_grid[iso.dbeta_p(rho_grid) > 0]
    poles = bulk_poles(functional, stable, iso.T, a1_max, a0_max)
    kinds = [p.oscillatory if p.stable else None for p in poles]
    flips = [i for i in range(len(stable) - 1) if kinds[i] is False and kinds[i + 1] is True and iso.dbeta_p(0.5 * (stable[i] + stable[i + 1])) > 0]
    if not flips:
        raise NotFound(f"no monotonic-to-oscillatory crossover of the leading pole at T = {iso.T:g} for stable rho in the grid")
    low, high = stable[flips[-1]], stable[flips[-1] + 1]
    for _ in range(bisections):
        mid = 0.5 * (low + high)
        if bulk_poles(functional, np.array([mid]), iso.T, a1_max, a0_max)[0].oscillatory:
            high = mid
        else:
            low = mid
    rho = 0.5 * (low + high)
    return LinePoint("Fisher-Widom", iso.T, rho, float(iso.beta_p(rho)), np.nan)
