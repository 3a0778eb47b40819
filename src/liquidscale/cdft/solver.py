"""Self-consistent planar density profiles: the Euler-Lagrange equation solved by mixed Picard iteration.

    rho(z) = exp(beta mu - beta V_ext(z) + c1[rho](z))

is iterated in log space (so the density stays positive and strong walls are harmless) with Anderson
acceleration and an adaptive step: the step grows while the residual falls and halves, with the
history cleared, when it rises or the functional leaves its domain (e.g. a local packing fraction
above one). Grand canonical: mu fixed. Canonical: the mean density fixed, mu follows from the
normalisation. A profile is only ever returned converged; otherwise ConvergenceError says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UserError
from .functional import Functional


class ConvergenceError(UserError):
    """The iteration did not reach the tolerance; ``residuals`` holds max|delta rho| per iteration."""

    def __init__(self, message: str, residuals: list[float]):
        tail = ", ".join(f"{r:.3g}" for r in residuals[-8:])
        super().__init__(f"{message} after {len(residuals)} iterations; last residuals max|delta rho|: [{tail}]")
        self.residuals = residuals


@dataclass(frozen=True)
class Solution:
    """A converged profile: rho on the grid, beta mu and mu (energy units), and the residual history."""

    rho: np.ndarray
    beta_mu: float
    mu: float
    iterations: int
    residuals: list[float] = field(repr=False)


@dataclass(frozen=True)
class SolverSettings:
    """Tolerance on max|delta rho| (density units), iteration cap, initial/maximal Picard step, Anderson
    history length, the max|delta ln rho| below which it starts and the relative singular-value cutoff of its
    least-squares fit, and the cap on one step's change of ln rho.

    A long history with a cutoff (measured: a near-unstable learned functional 2067 -> 130 iterations,
    hard rods 10-90 either way) keeps ill-conditioned problems fast; without the cutoff a long history is
    fragile (noise in nearly parallel residual differences is amplified)."""

    tol: float = 1e-9
    max_iter: int = 5000
    step: float = 0.05
    max_step: float = 0.5
    anderson: int = 20
    anderson_start: float = 0.5
    anderson_rcond: float = 1e-10
    max_log_change: float = 0.5


def solve(
    functional: Functional,
    V_ext: np.ndarray,
    T: float,
    *,
    mu: float | None = None,
    mean_density: float | None = None,
    k_B: float = 1.0,
    rho_init: np.ndarray | None = None,
    symmetric: bool = False,
    settings: SolverSettings = SolverSettings(),
) -> Solution:
    """Solve for rho(z) in ``V_ext`` at temperature ``T``: give exactly one of ``mu`` or ``mean_density``.

    ``symmetric`` imposes rho(z) = rho(L - z) (needs a mirror-symmetric V_ext); it suppresses
    symmetry-broken solutions and halves the error of a symmetric problem. The map then uses the mirror
    average of c1: a learned c1 is mirror-symmetric only approximately (training mirrors the data, the
    network does not impose it), and its antisymmetric part, which no symmetric profile can satisfy, would
    otherwise stall the residual at its size (measured: ~1e-3 for a PeTS functional's free interface).
    For symmetric profiles this is exactly the mirror-averaged functional, with the same free energy.
    """
    if (mu is None) == (mean_density is None):
        raise UserError("solve needs exactly one of mu (grand canonical) or mean_density (canonical)")
    beta = 1.0 / (k_B * T)
    beta_V = torch.as_tensor(beta * np.asarray(V_ext, dtype=float), dtype=torch.float64)
    free = torch.isfinite(beta_V)
    if not free.any():
        raise UserError("V_ext is +inf everywhere: there is no room for particles")
    if symmetric and not torch.allclose(beta_V, beta_V.flip(0), rtol=1e-9, atol=1e-9):
        raise UserError("symmetric=True needs a mirror-symmetric V_ext (V(z) = V(L - z))")
    fixed_point = _FixedPoint(functional, beta_V, free, T, None if mu is None else beta * mu, mean_density, symmetric)
    u = fixed_point.initial_log_density(rho_init)
    u, beta_mu, residuals = _iterate(fixed_point, u, symmetric, settings)
    rho = fixed_point.density(u).numpy()
    return Solution(rho=rho, beta_mu=beta_mu, mu=beta_mu / beta, iterations=len(residuals), residuals=residuals)


class _FixedPoint:
    """The Euler-Lagrange map on ln rho of the free (finite-V) grid points."""

    def __init__(self, functional: Functional, beta_V, free, T: float, beta_mu: float | None, mean_density: float | None,
                 mirror_average: bool = False):
        self.functional, self.beta_V, self.free, self.T = functional, beta_V, free, T
        self.beta_mu, self.mean_density, self.mirror_average = beta_mu, mean_density, mirror_average

    def density(self, u: torch.Tensor) -> torch.Tensor:
        rho = torch.zeros_like(self.beta_V)
        rho[self.free] = torch.exp(u)
        return rho

    def initial_log_density(self, rho_init: np.ndarray | None) -> torch.Tensor:
        """ln of a starting profile: the given one, uniform (canonical) or a dilute Boltzmann profile (grand canonical)."""
        if rho_init is not None:
            rho = torch.as_tensor(np.asarray(rho_init, dtype=float))[self.free]
            return torch.log(rho.clamp_min(1e-300))
        if self.mean_density is not None:  # uniform on the free points: never denser than it must be
            free = int(self.free.sum())
            return torch.full((free,), float(np.log(self.mean_density * len(self.beta_V) / free)), dtype=torch.float64)
        bolt = torch.exp(-(self.beta_V[self.free] - self.beta_V[self.free].min()).clamp_max(700.0))
        dilute = min(float(np.exp(min(self.beta_mu, 700.0))), 0.5 / self.functional.interaction_range)
        return torch.log(bolt * dilute)

    def __call__(self, u: torch.Tensor) -> tuple[torch.Tensor, float]:
        """New ln rho on the free points and the beta mu it implies (fixed, or from the normalisation)."""
        with torch.no_grad():
            c1 = self.functional.c1(self.density(u), self.T)
        if self.mirror_average:
            c1 = 0.5 * (c1 + c1.flip(0))
        if not torch.isfinite(c1).all():  # outside the functional's domain, even if only inside a wall
            return torch.full_like(u, float("nan")), float("nan")
        log_bolt = c1[self.free] - self.beta_V[self.free]
        if self.beta_mu is not None:
            return self.beta_mu + log_bolt, self.beta_mu
        # mean over the whole box: sum(exp(beta mu + log_bolt)) / n_total = mean_density
        n_total = len(self.beta_V)
        shift = torch.logsumexp(log_bolt, 0) - np.log(n_total)
        beta_mu = float(np.log(self.mean_density) - shift)
        return log_bolt + beta_mu, beta_mu


def _iterate(fixed_point: _FixedPoint, u: torch.Tensor, symmetric: bool, s: SolverSettings):
    """Damped Picard steps in ln rho (each point's change capped), Anderson once the residual is small.

    An Anderson trial that leaves the functional's domain or doubles the residual is replaced by a plain
    Picard step; a Picard trial outside the domain is retried with half the step, one that raises the
    residual halves the next step.
    """
    g, beta_mu = fixed_point(u)
    if not torch.isfinite(g).all():
        raise ConvergenceError("the initial profile is outside the functional's domain", [float("nan")])
    step = s.step
    history_u: list[torch.Tensor] = []
    history_r: list[torch.Tensor] = []
    residuals: list[float] = []
    delta = _max_density_change(u, g)
    for _ in range(s.max_iter):
        residuals.append(delta)
        if delta < s.tol:
            return (_symmetrise(fixed_point, g) if symmetric else g), beta_mu, residuals
        r = g - u
        depth = s.anderson if float(r.abs().max()) < s.anderson_start else 0
        while True:
            trial = _bounded(u, _anderson_step(u, r, history_u, history_r, step, depth, s.anderson_rcond), fixed_point, symmetric, s)
            g_trial, beta_mu_trial = fixed_point(trial)
            finite = bool(torch.isfinite(g_trial).all())
            delta_trial = _max_density_change(trial, g_trial) if finite else float("inf")
            if depth and delta_trial > 2 * delta:
                # the Anderson extrapolation overshot: fall back to a plain Picard step
                depth = 0
                continue
            if not finite:
                # left the functional's domain (e.g. a local packing fraction >= 1): shorter step
                step /= 2
                if step < 1e-12:
                    raise ConvergenceError("the profile keeps leaving the functional's domain", residuals)
                continue
            break
        step = step / 2 if delta_trial > 1.5 * delta else min(step * 1.05, s.max_step)
        u, g, beta_mu, delta = trial, g_trial, beta_mu_trial, delta_trial
    raise ConvergenceError("the density profile did not converge", residuals)


def _max_density_change(u: torch.Tensor, g: torch.Tensor) -> float:
    return float((torch.exp(g) - torch.exp(u)).abs().max())


def _bounded(u, trial, fixed_point: _FixedPoint, symmetric: bool, s: SolverSettings) -> torch.Tensor:
    """The trial with each point's change of ln rho capped (and mirror-symmetrised if asked)."""
    trial = u + (trial - u).clamp(-s.max_log_change, s.max_log_change)
    return _symmetrise(fixed_point, trial) if symmetric else trial


def _anderson_step(u, r, history_u: list, history_r: list, step: float, depth: int, rcond: float) -> torch.Tensor:
    """Anderson (Pulay) mixing of the last ``depth`` iterates; plain damped Picard when depth is 0."""
    if depth == 0:
        history_u.clear(), history_r.clear()
        return u + step * r
    if not history_u or history_u[-1] is not u:
        history_u.append(u)
        history_r.append(r)
    if len(history_u) > depth + 1:
        history_u.pop(0), history_r.pop(0)
    if len(history_u) < 2:
        return u + step * r
    dU = torch.stack([b - a for a, b in zip(history_u[:-1], history_u[1:])], 1)
    dR = torch.stack([b - a for a, b in zip(history_r[:-1], history_r[1:])], 1)
    gamma = torch.linalg.lstsq(dR, r.unsqueeze(1), rcond=rcond, driver="gelsd").solution.squeeze(1)
    return u + step * r - (dU + step * dR) @ gamma


def _symmetrise(fixed_point: _FixedPoint, u: torch.Tensor) -> torch.Tensor:
    full = torch.zeros_like(fixed_point.beta_V)
    full[fixed_point.free] = u
    return ((full + full.flip(0)) / 2)[fixed_point.free]
