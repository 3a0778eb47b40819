"""What every figure of the workflow shares: axis labels with units, notes for missing results, legends
beside the axes, atomic saving.

Conventions (tests/test_figures.py checks them): every axis names its quantity and unit: water and CO2
in the units people quote (K, kg/m³, MPa, nm), the reduced-unit fluids (lj, pets, hard_rods: lengths in
sigma) labelled "reduced"; a result that is missing is said in the panel's title or above the figure,
and a panel with nothing to draw is not drawn (no empty boxes); legends sit beside their axes, outside
the data area, so they never hide a curve; reference and experimental curves are black or grey,
dashed or dotted, results coloured.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path

SUPERSCRIPT = {1: "", 2: "²", 3: "³"}
INVERSE = {1: "⁻¹", 2: "⁻²", 3: "⁻³"}
REFERENCE_STYLE = {"color": "k", "ls": "--", "lw": 1.2}  # FeOs, exact or simulated reference curves
EXPERIMENT_STYLE = {"color": "0.5", "ls": "none", "marker": "."}  # experimental points


class AxisUnits:
    """Axis labels and unit conversions of one system's figures, from the units its data carry (internal: Å, eV, K).

    Water and CO2: temperature in K, density in kg/m³, pressure in MPa, lengths in nm. Fluids whose lengths
    are in sigma: reduced units, said so on the axis. Anything else: its internal units in brackets.
    """

    def __init__(self, system: str, units: Mapping[str, Any]):
        from .analysis import units as lab

        self.system = system
        self.lab = lab.has_lab_units(system)
        length, energy, dim = units["length_unit"], units["energy_unit"], int(units["dimension"])
        self.reduced = not self.lab and length == "sigma"
        if self.lab:
            self.T_unit, self.length_unit, self.rho_unit = "K", "nm", "kg/m³"
            self.T_label, self.rho_label, self.p_label = "temperature T [K]", "density ρ [kg/m³]", "pressure p [MPa]"
        elif self.reduced:
            volume = "σ" + SUPERSCRIPT.get(dim, f"^{dim}")
            athermal = "k" in energy and "T" in energy  # hard rods: energies in k_B T, T only a label
            self.T_unit, self.length_unit, self.rho_unit = "", "σ", f"σ{INVERSE.get(dim, f'^-{dim}')} (reduced)"
            self.T_label = "temperature (reduced; energies in k_BT)" if athermal else "temperature k_BT/ε (reduced)"
            self.rho_label = f"density ρ{volume} (reduced)"
            self.p_label = f"pressure βp{volume} (reduced)" if athermal else f"pressure p{volume}/ε (reduced)"
        else:
            self.T_unit, self.length_unit, self.rho_unit = units.get("temperature_unit", ""), length, f"{length}^-{dim}"
            self.T_label = f"temperature T [{self.T_unit}]"
            self.rho_label = f"density ρ [{length}^-{dim}]"
            self.p_label = f"pressure p [{energy} {length}^-{dim}]"

    def length_label(self, quantity: str, symbol: str) -> str:
        """E.g. 'position z [nm]' or 'position z/σ (reduced)'; ``quantity`` may be empty."""
        scaled = f"{symbol}/σ (reduced)" if self.reduced else f"{symbol} [{self.length_unit}]"
        return f"{quantity} {scaled}".strip()

    def temperature(self, T: float) -> str:
        """A temperature for a legend entry, with its unit."""
        return f"T = {T:.4g} {self.T_unit}".rstrip()

    def rho(self, values):
        """Number density of the density site (internal units) -> plotted units."""
        from .analysis import units as lab

        return lab.kg_per_m3(np.asarray(values, dtype=float), self.system) if self.lab else np.asarray(values, dtype=float)

    def p(self, values):
        from .analysis import units as lab

        return lab.megapascal(np.asarray(values, dtype=float)) if self.lab else np.asarray(values, dtype=float)

    def length(self, values):
        """Å -> nm for water and CO2; unchanged otherwise."""
        return np.asarray(values, dtype=float) / 10.0 if self.lab else np.asarray(values, dtype=float)


def new_figure(panels: int, missing: Sequence[str] = (), panel_size: tuple[float, float] = (4.6, 3.6), legend_width: float = 2.2):
    """A figure with one axes per panel that has data; each missing result is said above them, never as an empty box.

    ``legend_width`` (inches per panel) leaves room for the legend beside each axes. With no panel at all the
    figure holds only the notes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(panels, 1) * (panel_size[0] + legend_width)
    notes = [textwrap.fill(text, int(14 * width)) for text in missing]  # ~14 characters of 8-point text per inch
    lines = sum(text.count("\n") + 1 for text in notes)
    fig = plt.figure(figsize=(width, (panel_size[1] if panels else 0.3) + 0.18 * lines), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0]) if panels else []
    if notes:
        fig.suptitle("\n".join(notes), fontsize=8, color="0.25")
    return fig, axes


def note(ax, text: str) -> None:
    """Append to the panel's title what is missing or unsure, where it cannot hide data."""
    ax.set_title("\n".join(t for t in (ax.get_title(), textwrap.fill(text, 70)) if t), fontsize=8)


def legend_beside(ax, **kwargs) -> None:
    """The axes' legend to the right of its data area: it never hides a curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7, **kwargs)


def integer_ticks(axis) -> None:
    """Iterations and epochs are counted: no fractional ticks."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def save(fig, path: str | Path, formats: Sequence[str] = ("png",), dpi: int = 130) -> None:
    """Write ``path`` with each suffix of ``formats`` atomically, then close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    for ext in formats:
        with atomic_path(path.with_suffix(f".{ext}")) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
