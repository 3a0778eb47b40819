"""What every comparison of an analysis folder with a reference shares (``pets_reference``, ``lj_reference``).

Reading the analysis' CSVs (a file that is absent or empty is a reason, never an exception), rows of
(quantity, condition, T, functional, <reference column>, difference, relative difference, target,
whether it was met, status, reason), the table written atomically, and the functional's binodal,
critical point and surface tension drawn in colour on axes where the reference is already drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path


def read_table(analysis_dir: Path, name: str):
    """``analysis_dir/name`` as a DataFrame; None when absent, an empty frame when the file is empty."""
    import pandas as pd

    path = analysis_dir / name
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def found(table) -> bool:
    return table is not None and not table.empty and "status" in table and table["status"].iloc[0] == "found"


def network_spread(critical, column: str) -> str:
    """The condition of an ensemble functional's Tc or rho_c row: how far its networks' own values spread ('' for one network)."""
    if "networks" not in critical or not critical["networks"].iloc[0] > 1:
        return ""
    networks, located = int(critical["networks"].iloc[0]), int(critical["networks_with_critical_point"].iloc[0])
    return f"mean c1 of {networks} networks; {located} of them with a critical point, their std {critical[f'{column}_network_std'].iloc[0]:.2g}"


def reason_of(table, name: str) -> str:
    if table is None:
        return f"{name} not found in the analysis folder"
    if table.empty or "reason" not in table or not isinstance(table["reason"].iloc[0], str):
        return f"{name} is empty"
    return str(table["reason"].iloc[0])


def widom_missing_reason(widom, analysis_dir: Path) -> str:
    """Why there are no Widom-line rows: the analysis' own reason from summary.json, else what is missing."""
    import json

    reason = "widom.csv not found in the analysis folder" if widom is None else "no Widom points in widom.csv"
    summary = analysis_dir / "summary.json"
    if summary.is_file():
        reason = json.loads(summary.read_text()).get("supercritical", {}).get("reason") or reason
    return reason


def target_text(quantity: str, targets: Mapping[str, tuple[str, float]]) -> str:
    if quantity not in targets:
        return ""
    kind, bound = targets[quantity]
    return f"|relative difference| <= {bound:g}" if kind == "relative" else f"|difference| <= {bound:g}"


class Rows:
    """Comparison rows judged against targets; the reference's value goes in the column ``reference``.

    ``targets``: quantity -> (kind, bound), 'relative' compares |relative_difference|, 'absolute' |difference|.
    Keyword arguments of ``compared`` and ``missing`` are further columns of the row.
    """

    def __init__(self, targets: Mapping[str, tuple[str, float]], reference: str):
        self.targets, self.reference = targets, reference

    def compared(self, quantity: str, T: float, functional: float, reference: float, condition: str = "", **extra) -> dict[str, Any]:
        difference = functional - reference
        relative = difference / reference if reference != 0 else np.nan
        within = None
        if quantity in self.targets:
            kind, bound = self.targets[quantity]
            within = bool(abs(relative if kind == "relative" else difference) <= bound)
        return {"quantity": quantity, "condition": condition, "T": T, "functional": functional, self.reference: reference, "difference": difference,
                "relative_difference": relative, "target": target_text(quantity, self.targets), "within_target": within,
                "status": "compared", "reason": "", **extra}

    def missing(self, quantity: str, reason: str, T: float = np.nan, reference: float = np.nan, condition: str = "", **extra) -> dict[str, Any]:
        return {"quantity": quantity, "condition": condition, "T": T, "functional": np.nan, self.reference: reference, "difference": np.nan,
                "relative_difference": np.nan, "target": target_text(quantity, self.targets), "within_target": None,
                "status": "missing", "reason": reason, **extra}


def write_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: Path) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows), columns=list(columns)).to_csv(tmp, index=False)


def draw_functional_binodal(ax, analysis_dir: Path) -> str:
    """The functional's binodal (bulk route; open circles: free-interface plateaus) and critical point, in
    colour; returns the panel title, which says why a part is absent."""
    binodal, critical = read_table(analysis_dir, "binodal.csv"), read_table(analysis_dir, "critical_point.csv")
    title = "liquid-vapour binodal"
    if binodal is not None and not binodal.empty:
        ax.plot(binodal["rho_vapour"], binodal["T"], "C0.-", label="learned functional: bulk equal mu, p")
        ax.plot(binodal["rho_liquid"], binodal["T"], "C0.-")
        if "rho_vapour_interface" in binodal and binodal["rho_vapour_interface"].notna().any():
            for column, label in (("rho_vapour_interface", "learned functional: free-interface plateaus"), ("rho_liquid_interface", None)):
                ax.plot(binodal[column], binodal["T"], "o", color="C1", mfc="none", ms=5, label=label)
    else:
        title += "\n(learned functional: none, see critical_point.csv)"
    if found(critical):
        ax.plot(critical["rho"], critical["T"], "C3*", ms=12, label="functional critical point")
    elif critical is not None and not critical.empty:
        title += f"\n(functional's critical point: {critical['status'].iloc[0]}, see critical_point.csv)"
    return title


def draw_functional_surface_tension(ax, analysis_dir: Path) -> str:
    """The functional's free-interface surface tension, in colour; returns the panel title."""
    interface = read_table(analysis_dir, "interface.csv")
    title = "surface tension of the free interface"
    if found(interface):
        ax.plot(interface["T"], interface["gamma"], "C0o", ms=8, label="learned functional")
    else:
        title += "\n(learned functional: no interface, see interface.csv)"
    return title


def draw_functional_panels(binodal_ax, gamma_ax, analysis_dir: Path) -> None:
    """The functional's binodal and gamma(T) over the reference curves already drawn; reduced-unit axes, legends beside."""
    from ..plotting import legend_beside

    for ax, draw, ylabel in ((binodal_ax, draw_functional_binodal, "temperature k_BT/ε (reduced)"),
                             (gamma_ax, draw_functional_surface_tension, "surface tension γσ²/ε (reduced)")):
        title = draw(ax, analysis_dir)
        ax.set(xlabel="density ρσ³ (reduced)" if ax is binodal_ax else "temperature k_BT/ε (reduced)", ylabel=ylabel)
        ax.set_title(title, fontsize=9)
        legend_beside(ax)
