"""Held-out canonical solves that are predictions, not echoes of the starting guess.

A canonical solve from a uniform start can stay on the uniform fixed point even where it is unstable
(a potential-free box inside the spinodal: uniform is an exact, but maximal, stationary point). The
simulated profile is a second start; of the two solutions the one with the lower Helmholtz free
energy F = Omega + mu N is kept. At fixed N the equilibrium minimises F; Omega at each solution's own
mu is not comparable, since the two solutions' mu differ and Omega(mu) differs by (mu_1 - mu_2) N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .functional import Functional
from .solver import ConvergenceError, SolverSettings, solve
from .thermo import grand_potential

STARTS = ("simulated", "uniform")
# the simulated start is floored at this fraction of the mean density on free bins: an empty or
# negative (noisy) bin would otherwise start at ln rho = -690 and take ~1400 capped steps to fill
START_DENSITY_FLOOR = 1e-3


@dataclass(frozen=True)
class StartOutcome:
    """One start's converged profile and beta F (rho None, ``failure`` set where it did not converge)."""

    rho: np.ndarray | None
    beta_mu: float
    beta_F: float
    iterations: int
    failure: str = ""


@dataclass(frozen=True)
class CanonicalPrediction:
    """The kept solution (``start`` names the start it came from), every start's outcome, and how far apart the two solutions are."""

    rho: np.ndarray
    beta_mu: float
    start: str
    outcomes: dict[str, StartOutcome]
    max_abs_difference: float | None


def canonical_prediction(
    functional: Functional,
    V_ext: np.ndarray,
    T: float,
    mean_density: float,
    rho_simulated: np.ndarray,
    k_B: float = 1.0,
    settings: SolverSettings = SolverSettings(),
) -> CanonicalPrediction:
    """Solve at fixed mean density from the simulated profile and from a uniform one; keep the lower F.

    Raises ConvergenceError only when neither start converges.
    """
    V_ext = np.asarray(V_ext, dtype=float)
    free = np.isfinite(V_ext)
    uniform = np.where(free, mean_density * V_ext.size / free.sum(), 0.0)
    simulated = np.where(free, np.maximum(np.asarray(rho_simulated, dtype=float), START_DENSITY_FLOOR * mean_density), 0.0)
    outcomes = {name: _solve_from(functional, V_ext, T, mean_density, start, k_B, settings) for name, start in zip(STARTS, (simulated, uniform))}
    converged = {name: o for name, o in outcomes.items() if o.rho is not None}
    if not converged:
        raise ConvergenceError("neither start converged: " + "; ".join(f"{n}: {o.failure}" for n, o in outcomes.items()), [])
    start = min(converged, key=lambda name: converged[name].beta_F)
    difference = float(np.abs(converged["simulated"].rho - converged["uniform"].rho).max()) if len(converged) == 2 else None
    return CanonicalPrediction(converged[start].rho, converged[start].beta_mu, start, outcomes, difference)


def _solve_from(functional, V_ext, T, mean_density, rho_init, k_B, settings) -> StartOutcome:
    try:
        solution = solve(functional, V_ext, T, mean_density=mean_density, k_B=k_B, rho_init=rho_init, settings=settings)
    except ConvergenceError as exc:
        return StartOutcome(None, float("nan"), float("nan"), len(exc.residuals), str(exc))
    N = float(solution.rho.sum() * functional.dz)
    beta_F = grand_potential(functional, solution.rho, V_ext, T, solution.mu, k_B) + solution.beta_mu * N
    return StartOutcome(solution.rho, solution.beta_mu, beta_F, solution.iterations)
