"""Figures of the cdft stage: the training curve and held-out profiles (simulated vs the functional's prediction).

The held-out figure shows what ``metrics.json``'s ``test_profiles`` summarise: per test run, the
functional solved canonically in the run's own potential at the run's number of particles, beside the
simulated (or reference-fluid) profile it never saw in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..plotting import AxisUnits, integer_ticks, legend_beside, new_figure, note

HELDOUT_PANELS = 4  # at most this many held-out runs are drawn, spread over the test runs' temperatures


def training_curve(histories: Sequence[np.ndarray], system: str):
    """Train and validation mean squared c1 error (c1 is dimensionless) against epoch, one pair of curves per
    network of the functional (an ensemble has several); each network's kept epoch marked."""
    fig, (ax,) = new_figure(1, panel_size=(4.6, 3.4), legend_width=1.6)
    several = len(histories) > 1
    for k, history in enumerate(histories):
        first = k == 0
        ax.semilogy(history[:, 0], history[:, 1], "C0-", lw=1.0 if several else 1.5, label="train runs" if first else None)
        ax.semilogy(history[:, 0], history[:, 2], "C1-", lw=1.0 if several else 1.5, label="validation runs" if first else None)
        best = int(np.argmin(history[:, 2]))
        kept = "kept epoch of each network" if several else f"kept: epoch {int(history[best, 0])}"
        ax.semilogy(history[best, 0], history[best, 2], "C1o", mfc="none", ms=8, label=kept if first else None)
    title = f"{system}: training of the c1 functional" + (f" ({len(histories)} networks, mean c1)" if several else "")
    ax.set_title(title, fontsize=10)
    ax.set(xlabel="epoch", ylabel="mean squared c1 error (dimensionless)")
    integer_ticks(ax.xaxis)
    legend_beside(ax)
    return fig


def pick_runs(temperatures: Sequence[float], count: int = HELDOUT_PANELS) -> list[int]:
    """Indices of up to ``count`` runs spread over the temperatures (the coldest, the hottest and between)."""
    order = np.argsort(np.asarray(temperatures, dtype=float), kind="stable")
    return sorted({int(order[i]) for i in np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int)}) if len(order) else []


def heldout_profiles(z: np.ndarray, runs: Sequence[Mapping[str, Any]], units: Mapping[str, Any], system: str, failures: Sequence[str] = ()):
    """One panel per held-out run: simulated rho(z) (grey, solid) and the functional's canonical prediction (coloured, dashed).

    Each entry of ``runs``: run, T, rho_simulated, rho_predicted, max_abs_drho, beyond_training_density.
    """
    axes = AxisUnits(system, units)
    reasons = "; ".join(failures)
    if len(reasons) > 300:  # the whole reasons are in metrics.json; the figure says where they start, at a word
        reasons = reasons[: reasons.rfind(" ", 0, 300)] + " … (metrics.json has the rest)"
    missing = [f"{system}: {len(failures)} held-out solve(s) did not converge: {reasons}"] if failures else []
    if not runs:
        missing.insert(0, f"{system}: no held-out profile to draw")
    fig, panels = new_figure(len(runs), missing, panel_size=(3.4, 3.0), legend_width=0.5)
    x = axes.length(z)
    for ax, run in zip(panels, runs):
        ax.plot(x, axes.rho(run["rho_simulated"]), color="0.35", lw=1.4, label="simulated (held out)")
        ax.plot(x, axes.rho(run["rho_predicted"]), "C0--", lw=1.2, label="functional (same N)")
        error = float(axes.rho(run["max_abs_drho"]))
        ax.set_title(f"run {run['run']}, {axes.temperature(run['T'])}\nmax |Δρ| = {error:.3g} {axes.rho_unit}", fontsize=8)
        if run["beyond_training_density"]:
            note(ax, "prediction denser than any training bin")
        ax.set_xlabel(axes.length_label("position", "z"))
        ax.set_ylabel(axes.rho_label)
    if panels:
        fig.suptitle(f"{system}: held-out profiles, simulated vs the functional's prediction" + ("\n" + "\n".join(missing) if missing else ""), fontsize=9)
        legend_beside(panels[-1])
    return fig
