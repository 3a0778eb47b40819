"""Verification rung 4: the functional's binodal beside the same potential's direct slab coexistence.

Both describe one potential: the functional learned from its MD, the slabs simulate it directly, so their
coexisting densities must agree to within ``tolerance`` (relative). The functional's headline route is the free
interface (plateaus of a slab the functional solves, as in the analysis' binodal); at a temperature outside the
interface route's solved temperatures the bulk route (equal mu and p) is used, and named. A temperature without
direct coexistence, or outside the functional's binodal, keeps its row with the reason: nothing is compared that
one side does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io import atomic_path
from .slab import STATUS_OK

TABLE = "functional_vs_direct.csv"
FIGURE = "functional_vs_direct.png"
COLUMNS = ["T", "phase", "direct", "direct_stderr", "functional", "route", "coverage", "relative_difference", "pull", "tolerance",
           "within_tolerance", "status", "reason"]
PHASES = ("liquid", "vapour")
COMPARED, MISSING = "compared", "missing"  # a row's status


def functional_density(binodal: pd.DataFrame, T: float, phase: str) -> tuple[float, str, str] | None:
    """(density, route, coverage) of the functional's coexisting ``phase`` at ``T``: the interface route linear in
    T between the temperatures it was solved at, else the bulk route's; None outside both."""
    for route, column in (("interface", f"rho_{phase}_interface"), ("bulk", f"rho_{phase}")):
        known = binodal.dropna(subset=[column]).sort_values("T")
        if len(known) and known["T"].iloc[0] <= T <= known["T"].iloc[-1]:
            nearest = known.iloc[int(np.argmin(np.abs(known["T"].to_numpy() - T)))]
            return float(np.interp(T, known["T"], known[column])), route, str(nearest["coverage"])
    return None


def no_binodal_reason(binodal: pd.DataFrame, critical: pd.DataFrame) -> str:
    """Why the functional has no coexisting density at a temperature: its own reason when it found no transition."""
    if binodal.empty:
        reason = critical["reason"].iloc[0] if len(critical) and isinstance(critical["reason"].iloc[0], str) else "no binodal"
        return f"the functional has no binodal: {reason}"
    return f"outside the functional's binodal (T {binodal['T'].min():.6g} to {binodal['T'].max():.6g})"


def compare(binodal: pd.DataFrame, critical: pd.DataFrame, direct: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """One row per (slab temperature, phase): the direct density with its block error beside the functional's."""
    rows = []
    for slab in direct.itertuples():
        for phase in PHASES:
            row = {"T": slab.T, "phase": phase, "tolerance": tolerance}
            if slab.status != STATUS_OK:
                rows.append(row | {"status": MISSING, "reason": f"direct MD: {slab.status} ({slab.reason})"})
                continue
            row |= {"direct": getattr(slab, f"rho_{phase}"), "direct_stderr": getattr(slab, f"rho_{phase}_stderr")}
            found = functional_density(binodal, slab.T, phase)
            if found is None:
                rows.append(row | {"status": MISSING, "reason": no_binodal_reason(binodal, critical)})
                continue
            density, route, coverage = found
            difference = density - row["direct"]
            rows.append(row | {"functional": density, "route": route, "coverage": coverage, "relative_difference": difference / row["direct"],
                               "pull": difference / row["direct_stderr"] if row["direct_stderr"] > 0 else np.nan,
                               "within_tolerance": bool(abs(difference) <= tolerance * row["direct"]), "status": COMPARED, "reason": ""})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_comparison(analysis: Path, coexistence: Path, tolerance: float, out: Path) -> pd.DataFrame:
    """``functional_vs_direct.csv`` and its figure from an analysis folder and a coexistence folder."""
    from .figures import functional_vs_direct_figure

    for folder, names, target in ((analysis, ("binodal.csv", "critical_point.csv", "summary.json"), "analysis"), (coexistence, ("coexistence.csv",), "coexistence")):
        for name in names:
            if not (folder / name).is_file():
                raise UserError(f"{folder / name}: not found; run `snakemake {target}` for this system first")
    binodal = pd.read_csv(analysis / "binodal.csv")
    critical = pd.read_csv(analysis / "critical_point.csv")
    summary = json.loads((analysis / "summary.json").read_text())
    table = compare(binodal, critical, pd.read_csv(coexistence / "coexistence.csv"), tolerance)
    out.mkdir(parents=True, exist_ok=True)
    functional_vs_direct_figure(summary["system"], summary["units"], binodal, table, out / FIGURE)
    with atomic_path(out / TABLE) as tmp:  # the table last: a crash never leaves it beside a missing figure
        table.to_csv(tmp, index=False)
    return table


def summary_line(table: pd.DataFrame) -> str:
    compared = table[table["status"] == COMPARED]
    if compared.empty:
        return f"nothing compared ({table['reason'].iloc[0] if len(table) else 'no slab temperatures'})"
    worst = compared.loc[compared["relative_difference"].abs().idxmax()]
    return (f"{int(compared['within_tolerance'].sum())} of {len(compared)} densities within {compared['tolerance'].iloc[0]:.0%}; worst "
            f"{worst['phase']} at T = {worst['T']:.6g}: {worst['relative_difference']:+.1%} ({worst['pull']:+.1f} standard errors)")
