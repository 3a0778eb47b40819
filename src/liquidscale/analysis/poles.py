"""Poles of the structure factor S(k) = 1 / (1 - rho c_hat(k)) in the complex k plane.

A pole k = a1 + i a0 (a0 > 0) gives a term exp(-a0 r) cos(a1 r - theta) in the decay of h(r) (times
1/r in 3D). The pole with the smallest a0 dominates at large r and sets the correlation length
xi = 1 / a0. Purely imaginary poles (a1 = 0) give monotonic decay, complex pairs +-a1 + i a0 damped
oscillations; where the leading one changes kind is the Fisher-Widom line (Evans et al., Mol. Phys.
80, 755 (1993)).

For a planar dcf c_bar(z) of finite support, c_hat(k) = dz sum_j c_bar(z_j) cos(k z_j) is entire, so
D(k) = 1 - rho c_hat(k) is evaluated exactly anywhere. Imaginary poles are real roots of
D(i a0) = 1 - rho dz sum c_bar cosh(a0 z); complex ones are counted in rectangles by the argument
principle, the rectangles bisected until each holds one zero, and each zero polished by Newton.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

Analytic = Callable[[np.ndarray], np.ndarray]  # complex k -> complex value


@dataclass(frozen=True)
class Poles:
    imaginary: np.ndarray  # decay rates a0 of poles k = i a0, ascending
    complex: np.ndarray  # (a1, a0) rows with a1 > 0, ascending in a0
    unstable_at: float = np.nan  # a real k where 1 - rho c_hat(k) <= 0: the uniform fluid is unstable there

    @property
    def stable(self) -> bool:
        return not np.isfinite(self.unstable_at)

    @property
    def leading_imaginary(self) -> float:
        return float(self.imaginary[0]) if self.imaginary.size else np.inf

    @property
    def leading_complex(self) -> tuple[float, float]:
        return (float(self.complex[0, 0]), float(self.complex[0, 1])) if self.complex.size else (np.nan, np.inf)

    @property
    def correlation_length(self) -> float:
        """xi = 1 / a0 of the leading pole; NaN for an unstable fluid or when no pole is in the searched box."""
        a0 = min(self.leading_imaginary, self.leading_complex[1])
        return 1.0 / a0 if self.stable and np.isfinite(a0) and a0 > 0 else np.nan

    @property
    def oscillatory(self) -> bool:
        """The leading pole is a complex pair (damped oscillations), not purely imaginary."""
        return self.leading_complex[1] < self.leading_imaginary


def planar_denominator(z: np.ndarray, c_bar: np.ndarray, rho: float, dz: float) -> tuple[Analytic, Analytic]:
    """D(k) = 1 - rho c_hat(k) and D'(k) for an even, finite-support planar dcf sampled at offsets z."""
    weights = rho * dz * np.asarray(c_bar, dtype=float)
    z = np.asarray(z, dtype=float)

    def D(k):
        k = np.asarray(k, dtype=complex)
        return 1.0 - np.cos(np.multiply.outer(k, z)) @ weights

    def dD(k):
        k = np.asarray(k, dtype=complex)
        return np.sin(np.multiply.outer(k, z)) @ (weights * z)

    return D, dD


def imaginary_poles(D: Analytic, a0_max: float, samples: int = 2000) -> np.ndarray:
    """Roots a0 in (0, a0_max] of the real function D(i a0)."""
    a0 = np.linspace(0.0, a0_max, samples + 1)[1:]
    values = D(1j * a0).real
    change = np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)
    real_D = lambda x: float(D(np.array([1j * x])).real[0])  # noqa: E731
    return np.array([brentq(real_D, a0[i], a0[i + 1], xtol=1e-14, rtol=1e-13) for i in change])


def _edge_phase(D: Analytic, start: complex, end: complex, samples: int = 64, rounds: int = 40) -> float:
    """Change of arg D along a straight edge; segments whose phase step exceeds pi/4 are bisected locally
    (a zero close to the edge needs many points only near itself)."""
    t = np.linspace(0.0, 1.0, samples + 1)
    values = D(start + (end - start) * t)
    for _ in range(rounds):
        steps = np.angle(values[1:] / values[:-1])
        coarse = np.flatnonzero(np.abs(steps) >= np.pi / 4)
        if coarse.size == 0:
            break
        t_new = 0.5 * (t[coarse] + t[coarse + 1])
        t = np.insert(t, coarse + 1, t_new)
        values = np.insert(values, coarse + 1, D(start + (end - start) * t_new))
    return float(np.angle(values[1:] / values[:-1]).sum())


def _winding(D: Analytic, corners: tuple[float, float, float, float]) -> int:
    """Zeros of D inside the rectangle [a1_lo, a1_hi] x [a0_lo, a0_hi] (argument principle).

    A zero exactly on the contour makes the phase undefined; the rectangle is then shrunk by a
    tiny irrational fraction, which moves the contour off it.
    """
    for attempt in range(4):
        a1_lo, a1_hi, a0_lo, a0_hi = corners
        path = [complex(a1_lo, a0_lo), complex(a1_hi, a0_lo), complex(a1_hi, a0_hi), complex(a1_lo, a0_hi), complex(a1_lo, a0_lo)]
        with np.errstate(divide="ignore", invalid="ignore"):
            total = sum(_edge_phase(D, start, end) for start, end in zip(path[:-1], path[1:]))
        if np.isfinite(total):
            return int(round(total / (2 * np.pi)))
        shrink = 1e-7 * np.sqrt(2.0) * (attempt + 1)
        corners = (a1_lo + shrink * (a1_hi - a1_lo), a1_hi - shrink * (a1_hi - a1_lo), a0_lo + shrink * (a0_hi - a0_lo), a0_hi - shrink * (a0_hi - a0_lo))
    raise ArithmeticError(f"D(k) is not finite on the contour of {corners}")


def _newton(D: Analytic, dD: Analytic, k: complex, iterations: int = 60) -> complex | None:
    for _ in range(iterations):
        with np.errstate(all="ignore"):
            step = complex(D(np.array([k]))[0] / dD(np.array([k]))[0])
        if not np.isfinite(step):
            return None
        k -= step
        if abs(step) < 1e-13 * max(1.0, abs(k)):
            return k
    return None


def complex_poles(D: Analytic, dD: Analytic, a1_max: float, a0_max: float, max_depth: int = 24) -> np.ndarray:
    """Zeros k = a1 + i a0 of D with 0 < a1 < a1_max, 0 < a0 < a0_max, as (a1, a0) rows by ascending a0.

    The left edge sits at a1 = 1e-3 a1_max, off the imaginary axis where the imaginary poles are (they
    are found separately; complex poles with a smaller a1, wavelengths beyond 6000 / a1_max, are not
    resolved), and the bottom edge on the real axis, where D = 1/S(k) > 0 for a stable fluid.
    """
    found: list[complex] = []
    stack = [((1e-3 * a1_max, a1_max, 0.0, a0_max), 0)]
    while stack:
        box, depth = stack.pop()
        count = _winding(D, box)
        if count <= 0:
            continue
        a1_lo, a1_hi, a0_lo, a0_hi = box
        if count == 1:
            root = _newton(D, dD, complex(0.5 * (a1_lo + a1_hi), 0.5 * (a0_lo + a0_hi)))
            if root is not None and a1_lo <= root.real <= a1_hi and a0_lo <= root.imag <= a0_hi:
                found.append(root)
                continue
        if depth >= max_depth:
            found.append(complex(0.5 * (a1_lo + a1_hi), 0.5 * (a0_lo + a0_hi)))
            continue
        if (a1_hi - a1_lo) >= (a0_hi - a0_lo):
            mid = 0.5 * (a1_lo + a1_hi)
            halves = [(a1_lo, mid, a0_lo, a0_hi), (mid, a1_hi, a0_lo, a0_hi)]
        else:
            mid = 0.5 * (a0_lo + a0_hi)
            halves = [(a1_lo, a1_hi, a0_lo, mid), (a1_lo, a1_hi, mid, a0_hi)]
        stack.extend((half, depth + 1) for half in halves)
    roots = np.array(sorted(found, key=lambda k: k.imag))
    return np.column_stack([roots.real, roots.imag]) if roots.size else np.zeros((0, 2))


def find_poles(D: Analytic, dD: Analytic, a1_max: float, a0_max: float, samples: int = 4000) -> Poles:
    """All poles in the box, unless S(k) diverges on the real axis (a mechanically or structurally
    unstable uniform fluid, e.g. inside the spinodal): then only that wavenumber is reported."""
    k = np.linspace(0.0, a1_max, samples + 1)
    on_axis = D(k).real
    if np.any(on_axis <= 0.0):
        return Poles(np.zeros(0), np.zeros((0, 2)), float(k[np.argmax(on_axis <= 0.0)]))
    return Poles(imaginary_poles(D, a0_max), complex_poles(D, dD, a1_max, a0_max))
