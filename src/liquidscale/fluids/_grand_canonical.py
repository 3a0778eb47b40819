"""The loop shared by the exact-functional dataset generators: grand-canonical profiles in seeded random potentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..cdft.functional import Functional, grid_points
from ..cdft.solver import ConvergenceError, solve


def grand_canonical_dataset(
    functional: Functional,
    block: Mapping[str, Any],
    T: np.ndarray,
    beta_mu: np.ndarray,
    split_fractions: Sequence[float],
    seed: int,
    provenance: Mapping[str, Any],
    start: Callable[[int, np.ndarray], np.ndarray | None] = lambda k, V: None,
    **dataset_attrs: Any,
):
    """Profile dataset (known mu, k_B = 1) of ``functional`` solved at run k's ``T[k]``, ``beta_mu[k]``.

    Run k's potential is the sampling stage's generator drawn from (seed, k), in units of k_B T_k
    (``block``: box_length, dz, runs, potential_cap, hard_walls), so every temperature sees equally
    strong potentials; ``start(k, V_ext)`` may give the initial profile (which branch a run lands on).
    A run whose minimisation fails is kept with status failed and the solver's reason.
    """
    from ..dataset import STATUS_FAILED, STATUS_OK, make_profile_dataset, split_runs
    from ..external import RandomPotentialSettings, random_potential

    length, dz, runs = float(block["box_length"]), float(block["dz"]), int(block["runs"])
    n = grid_points(length, dz, "config key 'box_length'")
    z = (np.arange(n) + 0.5) * dz
    walls = {} if block["hard_walls"] else {"p_hard_wall": 0.0, "p_slit": 0.0}
    potential_settings = RandomPotentialSettings(cap=float(block["potential_cap"]), **walls)
    rho = np.zeros((runs, n))
    V_ext = np.zeros((runs, n))
    status = np.full(runs, STATUS_OK, dtype=np.int8)
    reasons = [""] * runs
    for k in range(runs):
        V_ext[k] = random_potential((seed, k), length, potential_settings).beta_v(z) * T[k]
        try:
            rho[k] = solve(functional, V_ext[k], float(T[k]), mu=float(beta_mu[k] * T[k]), rho_init=start(k, V_ext[k])).rho
        except ConvergenceError as exc:
            rho[k], status[k], reasons[k] = np.nan, STATUS_FAILED, str(exc)
    return make_profile_dataset(
        z,
        rho,
        V_ext,
        T=np.asarray(T, dtype=float),
        mu=beta_mu * T,
        N=rho.sum(axis=1) * dz,
        split=split_runs(np.arange(runs), split_fractions, seed, ok=status == STATUS_OK),
        status=status,
        failure_reason=reasons,
        k_B=1.0,
        provenance=provenance,
        **dataset_attrs,
    )
