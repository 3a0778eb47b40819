"""The coexistence step's figure: centred slab profiles, the coexisting densities beside a reference, the liquid's g(r)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..plotting import EXPERIMENT_STYLE, REFERENCE_STYLE, AxisUnits, legend_beside, new_figure, save
from .functional import COMPARED
from .rdf import OTHER_FUNCTIONAL, SAME_FUNCTIONAL
from .slab import STATUS_OK


def coexistence_figure(system: str, units: Mapping[str, object], table, profiles, rdf, peaks, path: Path) -> None:
    """Three panels (profiles, T against the coexisting densities, g(r) with the published first peaks of ``peaks``,
    rdf_peaks.csv); every temperature without coexistence is said above them with its reason, and the g(r) panel is
    left out when no temperature has a liquid plateau."""
    axes_units = AxisUnits(system, units)
    ok = table[table["status"] == STATUS_OK]
    missing = [f"{axes_units.temperature(row.T)}: {row.status} ({row.reason})" for row in table.itertuples() if row.status != STATUS_OK]
    sampled = profiles.dropna(subset=["rho"])
    if sampled.empty:  # every slab failed before production: the notes are the figure
        fig, _ = new_figure(0, missing)
        save(fig, path)
        return
    fig, axes = new_figure(3 if len(ok) else 1, missing)
    colours = {T: f"C{k}" for k, T in enumerate(table["T"])}
    ax = axes[0]
    for T, profile in sampled.groupby("T", sort=True):
        z, rho, error = axes_units.length(profile["z"]), axes_units.rho(profile["rho"]), axes_units.rho(profile["rho_stderr"])
        ax.plot(z, rho, color=colours[T], lw=1, label=axes_units.temperature(T))
        ax.fill_between(z, rho - error, rho + error, color=colours[T], alpha=0.25, lw=0)
    ax.set_xlabel(axes_units.length_label("distance from the slab centre", "z"))
    ax.set_ylabel(axes_units.rho_label)
    ax.set_title("slab profiles in the centre-of-mass frame", fontsize=8)
    legend_beside(ax)
    if not len(ok):
        save(fig, path)
        return
    ax = axes[1]
    for phase in ("vapour", "liquid"):
        ax.errorbar(axes_units.rho(ok[f"rho_{phase}"]), ok["T"], xerr=axes_units.rho(ok[f"rho_{phase}_stderr"]), ls="none", marker="o",
                    color="C0", ms=4, label="direct MD (slab plateaus)" if phase == "liquid" else None)
    _reference(ax, system, axes_units, table["T"])
    ax.set_xlabel(axes_units.rho_label)
    ax.set_ylabel(axes_units.T_label)
    ax.set_title("coexisting densities", fontsize=8)
    legend_beside(ax)
    ax = axes[2]
    for T, g in rdf[rdf["T"].isin(ok["T"])].groupby("T", sort=True):
        ax.plot(axes_units.length(g["r"]), g["g"], color=colours[T], lw=1, label=axes_units.temperature(T))
    ax.axhline(1.0, **{**REFERENCE_STYLE, "color": "0.5", "ls": ":"})
    _published_peaks(ax, axes_units, peaks[peaks["T"].isin(ok["T"])])
    ax.set_xlabel(axes_units.length_label("site-site distance", "r"))
    ax.set_ylabel("radial distribution g(r) (dimensionless)")
    ax.set_title("liquid plateau", fontsize=8)
    legend_beside(ax)
    save(fig, path)


def _reference(ax, system: str, axes_units: AxisUnits, temperatures) -> None:
    """Vrabec et al.'s LJTS binodal for lj, the experimental saturation densities for water and CO2."""
    if system == "lj":
        from ..fluids import ljts

        Tc, _ = ljts.critical_point()
        T = np.linspace(min(temperatures.min(), 0.7), min(max(temperatures.max(), 1.0), 0.98 * Tc), 100)
        ax.plot(ljts.rho_liquid(T), T, **REFERENCE_STYLE, label=f"LJTS, {ljts.SOURCE}")
        ax.plot(ljts.rho_vapour(T), T, **REFERENCE_STYLE)
    elif axes_units.lab:
        from ..analysis import units as lab

        table, _ = lab.experimental_saturation(system)
        ax.plot(table["rho_vapour_kg_m3"], table["T_K"], **EXPERIMENT_STYLE, label="experiment (saturation)")
        ax.plot(table["rho_liquid_kg_m3"], table["T_K"], **EXPERIMENT_STYLE)


# marker of a published first peak by its relation to the campaign's DFT labels (rdf.relation)
PEAK_MARKERS = {SAME_FUNCTIONAL: {"marker": "*", "ms": 9, "color": "k"}, OTHER_FUNCTIONAL: {"marker": "D", "ms": 5, "mfc": "none", "color": "k"},
                "experiment": {"marker": "s", "ms": 5, "mfc": "none", "color": "0.3"}}


def _published_peaks(ax, axes_units: AxisUnits, peaks) -> None:
    """Each published first peak beside the temperatures it matches, once per source: a marker with its error bars
    where the height is published, a dotted line at its position where only that is; the legend names the source,
    its relation to the campaign's functional and its temperature."""
    for row in peaks.dropna(subset=["published_r_peak"]).drop_duplicates("source").itertuples():
        T = f"{row.published_T_min:g} K" if row.published_T_min == row.published_T_max else f"{row.published_T_min:g}-{row.published_T_max:g} K"
        label = f"{row.label} ({row.relation}, {T})"
        style = PEAK_MARKERS.get(row.relation, {"marker": "^", "ms": 5, "mfc": "none", "color": "0.3"})
        if np.isfinite(row.published_g_peak):
            ax.errorbar(axes_units.length(row.published_r_peak), row.published_g_peak, xerr=axes_units.length(np.nan_to_num(row.published_r_peak_error)),
                        yerr=np.nan_to_num(row.published_g_peak_error), ls="none", label=label, **style)
        else:
            ax.axvline(axes_units.length(row.published_r_peak), color=style["color"], ls=":", lw=1, label=f"first peak at, {label}")


def functional_vs_direct_figure(system: str, units: Mapping[str, object], binodal, table, path: Path) -> None:
    """Verification rung 4 in one panel: the functional's binodal (interface route solid, bulk route dashed) and the
    direct slab densities with their block errors; every row not compared is said above it with its reason."""
    axes_units = AxisUnits(system, units)
    missing = sorted({f"{axes_units.temperature(row.T)}: {row.reason}" for row in table.itertuples() if row.status != COMPARED})
    direct = table[table["direct"].notna()]
    if binodal.empty and direct.empty:
        fig, _ = new_figure(0, missing)
        save(fig, path)
        return
    fig, (ax,) = new_figure(1, missing)
    for phase in ("vapour", "liquid"):
        labelled = phase == "liquid"  # one legend entry per curve kind
        ax.plot(axes_units.rho(binodal[f"rho_{phase}"]), binodal["T"], color="C1", ls="--", lw=1, label="functional, bulk route" if labelled else None)
        interface = binodal.dropna(subset=[f"rho_{phase}_interface"])
        ax.plot(axes_units.rho(interface[f"rho_{phase}_interface"]), interface["T"], color="C1", lw=1.5,
                label="functional, free interface" if labelled else None)
        points = direct[direct["phase"] == phase]
        ax.errorbar(axes_units.rho(points["direct"]), points["T"], xerr=axes_units.rho(points["direct_stderr"]), ls="none", marker="o", ms=4,
                    color="C0", label="direct MD of the same potential" if labelled else None)
    ax.set_xlabel(axes_units.rho_label)
    ax.set_ylabel(axes_units.T_label)
    ax.set_title("functional vs direct coexistence (rung 4)", fontsize=8)
    legend_beside(ax)
    save(fig, path)
