"""How the concurrent-learning loop converged: per iteration the held-out errors and DP-GEN's fractions.

Read it like DP-GEN's record: the accurate fraction should rise towards 1 and the candidate and
failed fractions fall as iterations add the selected clusters; the held-out force RMSE should stay
flat or fall even though later test sets include harder, explored configurations. The bulk force RMSE
(core atoms of the fixed held-out bulk environments) is the one error measured on the same frames in
every iteration, and the one that says how well the models know the liquid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_path, read_json

COLUMNS = (
    "iteration", "train_frames", "test_frames", "bulk_frames", "energy_rmse_per_atom", "force_rmse", "bulk_force_rmse",
    "accurate", "candidate", "failed", "selected", "converged",
)


def history(iterations: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per iteration folder (``metrics.json`` and ``selection.json``)."""
    rows = []
    for k, folder in enumerate(iterations):
        metrics = read_json(folder / "metrics.json")
        selection = read_json(folder / "selection.json")
        rows.append(
            {
                "iteration": k,
                "train_frames": metrics["frames"]["train"],
                "test_frames": metrics["frames"]["test"],
                "bulk_frames": metrics["frames"]["bulk"],
                **metrics["held_out_mean"],
                "bulk_force_rmse": metrics["bulk_mean"]["force_rmse"],
                **{key: selection[key] for key in ("accurate", "candidate", "failed", "selected", "converged")},
            }
        )
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows), columns=list(COLUMNS)).to_csv(tmp, index=False)


def plot(rows: Sequence[Mapping[str, Any]], path: Path, system: str) -> None:
    from ..plotting import save

    save(figure(rows, system), path)


def figure(rows: Sequence[Mapping[str, Any]], system: str):
    """Held-out and bulk force RMSE and the accurate / candidate / failed fractions against iteration."""
    from ..plotting import integer_ticks, legend_beside, new_figure

    it = [r["iteration"] for r in rows]
    fig, (rmse, fractions) = new_figure(2, panel_size=(3.8, 3.0), legend_width=1.2)
    fig.suptitle(f"{system}: concurrent learning")
    rmse.plot(it, [r["force_rmse"] for r in rows], "C0o-", label="held-out labels")
    rmse.plot(it, [r["bulk_force_rmse"] for r in rows], "C4s--", label="held-out bulk\n(core atoms)")
    rmse.set(xlabel="iteration", ylabel="force RMSE [eV/Å]\n(ensemble mean)")
    rmse.legend(fontsize="small")
    for key, colour in (("accurate", "C2"), ("candidate", "C1"), ("failed", "C3")):
        fractions.plot(it, [r[key] for r in rows], "o-", color=colour, label=key)
    fractions.set(xlabel="iteration", ylabel="fraction of explored frames\n(dimensionless)", ylim=(-0.02, 1.02))
    for ax in (rmse, fractions):
        integer_ticks(ax.xaxis)
    legend_beside(fractions)
    return fig


def versions() -> dict[str, str]:
    """Versions of the packages that made and evaluate the models."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    found = {"liquidscale": __version__}
    for package in ("deepmd-kit", "torch", "dpdata", "ase"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
