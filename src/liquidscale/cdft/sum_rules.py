"""Exact sum rules that test whether a functional is a consistent c1 = -beta dF_exc/drho.

A learned c1 gets translation invariance (Noether) and the chain rule between c2 and the bulk EOS
for free from its architecture; it does not get these two, which hold only if c1 is the derivative of
one free-energy functional:

* the wall sum rule: the force the fluid exerts on a wall, integral rho(z) d(beta V)/dz dz over one
  wall face, equals the bulk pressure from the functional's own bulk thermodynamics (the mechanical
  and the thermodynamic route to the pressure agree);
* path independence: beta F_exc[rho_b] - beta F_exc[rho_a] by functional line integration of -c1 does
  not depend on the path between the two profiles.

Written for any ``Functional`` so that every fluid (hard rods, PeTS, LJ) and every learned functional
can be put through them; both are exact for an exact functional up to quadrature and grid error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..external import ExternalPotential
from . import thermo
from .functional import Functional
from .solver import SolverSettings, solve


@dataclass(frozen=True)
class WallSumRule:
    """The two routes to the pressure at one face of a soft wall slab in contact with bulk fluid.

    ``beta_p_wall``: -integral rho d(beta V)/dz over the face (from the wall's middle to the bulk's middle),
    the force per area the fluid exerts on the wall. ``beta_p_bulk`` and ``beta_p_inside``: the
    functional's own bulk pressure (``thermo.bulk_beta_pressure``) at its bulk densities at beta mu
    (``rho_bulk``) and at beta mu - wall height (``rho_inside``, the fluid a finite wall lets in).
    Exact: beta_p_wall = beta_p_bulk - beta_p_inside.
    """

    beta_p_wall: float
    beta_p_bulk: float
    rho_bulk: float
    beta_p_inside: float
    rho_inside: float

    @property
    def mismatch(self) -> float:
        """beta_p_wall - (beta_p_bulk - beta_p_inside): zero for a functional that is a true derivative."""
        return self.beta_p_wall - (self.beta_p_bulk - self.beta_p_inside)


def wall_sum_rule(
    functional: Functional,
    T: float,
    beta_mu: float,
    *,
    wall_height: float = 30.0,
    wall_softness: float | None = None,
    plateau: float | None = None,
    k_B: float = 1.0,
    settings: SolverSettings = SolverSettings(),
) -> WallSumRule:
    """Solve the functional (grand canonical, ``beta_mu``) in a periodic box holding one soft wall slab and compare
    the force on one face with the bulk pressure.

    The wall is a logistic slab of height ``wall_height`` kT and edge width ``wall_softness`` (default
    5 grid spacings: much steeper than the fluid's structure, yet smooth on the grid so that the
    derivative of the sampled V is the force); the plateaus inside the wall and in the bulk are
    ``plateau`` long (default four interaction ranges), so that the structure at one face has decayed
    before the next and each face feels a semi-infinite fluid (dense fluids need longer plateaus).
    A high wall leaves ``beta_p_inside`` ~ 0 (the hard-wall limit); a low one keeps a learned functional
    inside the densities it was trained on.
    """
    dz = functional.dz
    softness = 5.0 * dz if wall_softness is None else float(wall_softness)
    plateau = 4.0 * functional.interaction_range if plateau is None else float(plateau)
    edge = 20.0 * softness  # the logistic edge has decayed to exp(-20) there
    half_points = math.ceil((plateau + 2.0 * edge) / dz)
    n = 2 * half_points
    length = n * dz
    z = (np.arange(n) + 0.5) * dz
    wall_middle = n // 2  # bulk middle: index 0, half a box away
    wall_half_width = 0.5 * plateau + edge
    wall = ExternalPotential(length, ({"kind": "soft_wall", "center": z[wall_middle], "half_width": wall_half_width, "amplitude": float(wall_height), "softness": softness},))
    beta_v, beta_force = wall.beta_v_and_derivative(z)
    kT = k_B * T
    rho = solve(functional, kT * beta_v, T, mu=beta_mu * kT, k_B=k_B, settings=settings).rho
    face = slice(wall_middle, n)  # from the wall's middle out to the bulk's middle
    beta_p_wall = float(-(rho[face] * beta_force[face]).sum() * dz)
    rho_bulk, rho_inside = (_bulk_density(functional, T, mu * kT, k_B, settings) for mu in (beta_mu, beta_mu - wall_height))
    beta_p_bulk, beta_p_inside = (float(p) for p in thermo.bulk_beta_pressure(functional, np.array([rho_bulk, rho_inside]), T))
    return WallSumRule(beta_p_wall, beta_p_bulk, rho_bulk, beta_p_inside, rho_inside)


def _bulk_density(functional: Functional, T: float, mu: float, k_B: float, settings: SolverSettings) -> float:
    """The functional's homogeneous density at chemical potential ``mu``: a grand-canonical solve in a bulk box."""
    rho = solve(functional, np.zeros(thermo.bulk_points(functional)), T, mu=mu, k_B=k_B, settings=settings).rho
    return float(rho.mean())


def path_independence(functional: Functional, rho_a, rho_b, T: float, points: int = thermo.QUADRATURE_POINTS) -> tuple[float, float]:
    """beta F_exc[rho_b] - beta F_exc[rho_a] along two paths: (the straight path rho_a + s (rho_b - rho_a),
    the scaling paths from zero to each profile).

    For c1 = -beta dF_exc/drho both are the same number; their difference measures how far c1 is from
    being a functional derivative (Gauss-Legendre in s on both paths).
    """
    rho_a = torch.as_tensor(np.asarray(rho_a, dtype=float))
    rho_b = torch.as_tensor(np.asarray(rho_b, dtype=float))
    x, w = np.polynomial.legendre.leggauss(points)
    s, w = torch.as_tensor(0.5 * (x + 1.0)), torch.as_tensor(0.5 * w)
    step = rho_b - rho_a
    with torch.no_grad():
        c1 = functional.c1(rho_a[None, :] + s[:, None] * step[None, :], T)
    along_straight_path = float(-(w[:, None] * step[None, :] * c1).sum() * functional.dz)
    via_scaling_paths = thermo.excess_free_energy(functional, rho_b, T, points) - thermo.excess_free_energy(functional, rho_a, T, points)
    return along_straight_path, via_scaling_paths
