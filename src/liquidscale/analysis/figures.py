"""Figures of one system's analysis, drawn from its tables (PNG and SVG, written atomically).

Water and CO2 are drawn in K, kg/m^3 and MPa beside the experimental saturation data; lj and
hard_rods in reduced units. A missing result is said in the panel's title, never drawn over data;
densities beyond the analysed range (the training coverage) are shaded, points flagged beyond
coverage in a table are drawn hollow or as grey crosses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from . import units as lab

FIGURES = ("phase_diagram", "pressure_temperature", "isotherms", "pores", "profiles")


def _save(fig, out_dir: Path, name: str) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for ext in ("png", "svg"):
        with atomic_path(out_dir / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=130)
    plt.close(fig)


def _read(out_dir: Path, name: str):
    import pandas as pd

    path = out_dir / name
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _note(ax, text: str) -> None:
    """Append to the panel's title what is missing or unsure, where it cannot hide data."""
    import textwrap

    ax.set_title("\n".join(t for t in (ax.get_title(), textwrap.fill(text, 80)) if t), fontsize=8)


def _outside(table) -> "np.ndarray":
    """Rows a table flags beyond the training coverage ('coverage unknown' is said once per figure instead)."""
    if table.empty or "coverage" not in table:
        return np.zeros(len(table), bool)
    return ~table["coverage"].isin(["inside", "coverage unknown"]).to_numpy()


def _coverage_unknown(out_dir: Path, ax) -> None:
    crit = _read(out_dir, "critical_point.csv")
    if "coverage" in crit and crit["coverage"].iloc[0] == "coverage unknown":
        _note(ax, "coverage unknown: the model records no training coverage")


def _shade_beyond_density_max(out_dir: Path, ax, system: str, axes: "_Axes") -> None:
    """Shade rho > density_max(T) (from eos.nc): the functional was not analysed, or not trained, there."""
    import xarray as xr

    if not (out_dir / "eos.nc").is_file():
        return
    with xr.open_dataset(out_dir / "eos.nc") as eos:
        if "density_max" not in eos:
            return
        T, rho_max = eos["T"].values, eos["density_max"].values
    x = lab.kg_per_m3(rho_max, system) if axes.lab else rho_max
    ax.fill_betweenx(T, x, 1.15 * np.max(x), color="0.85", hatch="//", edgecolor="0.7", lw=0, label="beyond the analysed density (coverage)")


class _Axes:
    """Density and pressure columns and labels: lab units for water/CO2, internal otherwise."""

    def __init__(self, system: str, units: Mapping[str, Any]):
        self.lab = lab.has_lab_units(system)
        length, energy, dim = units["length_unit"], units["energy_unit"], units["dimension"]
        self.rho_label = "density [kg/m³]" if self.lab else f"density [{length}^-{dim}]"
        self.p_label = "pressure [MPa]" if self.lab else f"pressure [{energy} {length}^-{dim}]"
        self.T_label = f"temperature [{units['temperature_unit'] or 'reduced'}]"

    def rho(self, column: str) -> str:
        return f"{column}_kg_m3" if self.lab else column

    def p(self, column: str) -> str:
        return f"{column}_MPa" if self.lab else column


def phase_diagram(out_dir: Path, system: str, axes: _Axes) -> None:
    import matplotlib.pyplot as plt

    binodal, crit = _read(out_dir, "binodal.csv"), _read(out_dir, "critical_point.csv")
    widom, fw = _read(out_dir, "widom.csv"), _read(out_dir, "fisher_widom.csv")
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    ax.set_title(f"{system}: phase diagram from the functional")
    _shade_beyond_density_max(out_dir, ax, system, axes)
    if not binodal.empty:
        ax.plot(binodal[axes.rho("rho_vapour")], binodal["T"], "C0-", label="binodal (equal mu, p)")
        ax.plot(binodal[axes.rho("rho_liquid")], binodal["T"], "C0-")
        ax.plot(binodal[axes.rho("spinodal_vapour")], binodal["T"], "C0--", lw=1, label="spinodal (d mu/d rho = 0)")
        ax.plot(binodal[axes.rho("spinodal_liquid")], binodal["T"], "C0--", lw=1)
    if not crit.empty and crit["status"].iloc[0] == "found":
        ax.plot(crit[axes.rho("rho")], crit["T"], "C3*", ms=12, label="critical point")
    else:
        status = crit["status"].iloc[0] if not crit.empty else "not found"
        _note(ax, f"critical point {status}: {crit['reason'].iloc[0]}" if not crit.empty else "no critical point")
    for i, (definition, group) in enumerate(widom.groupby("definition") if not widom.empty else []):
        outside = _outside(group)
        ax.plot(group[axes.rho("rho")], group["T"], marker="o^sv"[i % 4], ls=":", ms=4, color=f"C{i + 4}", label=f"Widom: max {definition}",
                markevery=list(np.flatnonzero(~outside)))
        ax.plot(group[axes.rho("rho")][outside], group["T"][outside], marker="o^sv"[i % 4], ls="none", ms=4, mfc="none", color=f"C{i + 4}")
    if not fw.empty and (fw["status"] == "found").any():
        found = fw[fw["status"] == "found"]
        ax.plot(found[axes.rho("rho")], found["T"], "k-.", marker="x", label="Fisher-Widom line")
    _coverage_unknown(out_dir, ax)
    if system in lab.REFERENCE_FILES:
        table, _ = lab.experimental_saturation(system)
        ax.plot(table["rho_vapour_kg_m3"], table["T_K"], "0.5", ls="none", marker=".", label="experiment (saturation)")
        ax.plot(table["rho_liquid_kg_m3"], table["T_K"], "0.5", ls="none", marker=".")
    ax.set_xlabel(axes.rho_label)
    ax.set_ylabel(axes.T_label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # beside the axes: never over a curve
    _save(fig, out_dir, "phase_diagram")


def pressure_temperature(out_dir: Path, system: str, axes: _Axes) -> None:
    import matplotlib.pyplot as plt

    binodal, crit, widom = _read(out_dir, "binodal.csv"), _read(out_dir, "critical_point.csv"), _read(out_dir, "widom.csv")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if not binodal.empty:
        ax.plot(binodal["T"], binodal[axes.p("p")], "C0-", label="saturation pressure")
    else:
        _note(ax, "no liquid-vapour coexistence")
    if not crit.empty and crit["status"].iloc[0] == "found":
        ax.plot(crit["T"], crit[axes.p("p")], "C3*", ms=12, label="critical point")
    elif not crit.empty:
        _note(ax, f"critical point {crit['status'].iloc[0]}")
    _coverage_unknown(out_dir, ax)
    for i, (definition, group) in enumerate(widom.groupby("definition") if not widom.empty else []):
        ax.plot(group["T"], group[axes.p("p")], marker="o^sv"[i % 4], ls=":", ms=4, color=f"C{i + 4}", label=f"Widom: max {definition}")
    if system in lab.REFERENCE_FILES:
        table, _ = lab.experimental_saturation(system)
        ax.plot(table["T_K"], table["p_sat_MPa"], "0.5", ls="none", marker=".", label="experiment")
    ax.set_xlabel(axes.T_label)
    ax.set_ylabel(axes.p_label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, out_dir, "pressure_temperature")


def isotherms(out_dir: Path, system: str, axes: _Axes, count: int = 6) -> None:
    import matplotlib.pyplot as plt
    import xarray as xr

    fig, ax = plt.subplots(figsize=(5.5, 4))
    if not (out_dir / "eos.nc").is_file():
        _note(ax, "no equation-of-state table")
        _save(fig, out_dir, "isotherms")
        return
    with xr.open_dataset(out_dir / "eos.nc") as eos:
        pick = np.unique(np.linspace(0, eos.sizes["T"] - 1, count).round().astype(int))
        rho = eos["rho"].values
        x = lab.kg_per_m3(rho, system) if axes.lab else rho
        for i in pick:
            p = eos["p"].values[i]
            y = lab.megapascal(p) if axes.lab else p
            ax.plot(x, y, lw=1, label=f"T = {eos['T'].values[i]:.4g}")
    binodal = _read(out_dir, "binodal.csv")
    if not binodal.empty:
        ax.plot(binodal[axes.rho("rho_vapour")], binodal[axes.p("p")], "k-", lw=1.5, label="binodal")
        ax.plot(binodal[axes.rho("rho_liquid")], binodal[axes.p("p")], "k-", lw=1.5)
        top = binodal[axes.p("p")].max()
        ax.set_ylim(-1.5 * abs(top), 3 * abs(top))
    _note(ax, "each isotherm drawn up to its analysed density_max (training coverage)")
    _coverage_unknown(out_dir, ax)
    ax.set_xlabel(axes.rho_label)
    ax.set_ylabel(axes.p_label)
    ax.legend(fontsize=7)
    _save(fig, out_dir, "isotherms")


def pores(out_dir: Path, system: str) -> None:
    import matplotlib.pyplot as plt

    table, branches = _read(out_dir, "pores.csv"), _read(out_dir, "pore_isotherms.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    if branches.empty:
        _note(left, str(table["reason"].iloc[0]) if not table.empty else "no pore results")
    else:
        mu_sat = table["beta_mu_sat"].iloc[0]
        for i, (H, group) in enumerate(branches.groupby("H")):
            for name, style in (("adsorption", "-"), ("desorption", "--")):
                b = group[group["branch"] == name]
                left.plot(b["beta_mu"] - mu_sat, b["mean_density"], style, color=f"C{i}", label=f"H = {H:g} ({name[:3]}.)")
        outside = _outside(branches)
        if outside.any():
            left.plot(branches["beta_mu"][outside] - mu_sat, branches["mean_density"][outside], "x", color="0.4", ms=5,
                      label="profile denser than its training data")
        left.axvline(0.0, color="0.5", lw=0.8)
        left.set_xlabel("beta (mu - mu_sat)")
        left.set_ylabel("mean density N / H")
        left.legend(fontsize=6)
    found = table[table["status"] == "found"] if not table.empty else table
    if found.empty:
        _note(right, "no capillary coexistence found" + (f": {table['reason'].iloc[0]}" if not table.empty else ""))
    else:
        outside = _outside(found)
        right.plot(found["H"], found["shift_times_H"], "C0-")
        right.plot(found["H"][~outside], found["shift_times_H"][~outside], "C0o", label="beta (mu_sat - mu_cc) H")
        if outside.any():
            right.plot(found["H"][outside], found["shift_times_H"][outside], "C0o", mfc="none", label="... beyond training coverage")
        kelvin = found["kelvin_shift_times_H"].iloc[0]
        if np.isfinite(kelvin):
            right.axhline(kelvin, color="C3", ls="--", label="Kelvin: 2 beta (gamma_wv - gamma_wl) / (rho_l - rho_v)")
        right.set_xlabel("pore width H")
        right.legend(fontsize=7)
    _save(fig, out_dir, "pores")


def profiles(out_dir: Path, system: str, axes: _Axes) -> None:
    import matplotlib.pyplot as plt
    import xarray as xr

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    path = out_dir / "profiles.nc"
    if path.is_file():
        with xr.open_dataset(path) as ds:
            beyond = ds["beyond_training_density"].values if "beyond_training_density" in ds else np.zeros(ds.sizes["run"], bool)
            for i, run in enumerate(ds["run"].values):
                note = " (denser than any training bin)" if beyond[i] else ""
                left.plot(ds["z"], ds["rho_simulated"].values[i], color=f"C{i}", lw=1, label=f"run {run}: simulated")
                left.plot(ds["z"], ds["rho_functional"].values[i], color=f"C{i}", ls="--", lw=1, label=f"run {run}: functional{note}")
        left.set_xlabel("z")
        left.set_ylabel("rho(z)")
        left.legend(fontsize=6)
    else:
        _note(left, "no test profiles solved")
    path = out_dir / "interface.nc"
    if path.is_file():
        interface = _read(out_dir, "interface.csv")
        beyond = bool(_outside(interface).any())
        with xr.open_dataset(path) as ds:
            right.plot(ds["z"], ds["rho"], "C0-", label="free interface (functional)" + (" - beyond training coverage" if beyond else ""))
            for key in ("rho_vapour_bulk", "rho_liquid_bulk"):
                right.axhline(ds.attrs[key], color="C3", ls=":", lw=1)
        right.set_xlabel("z")
        right.set_ylabel("rho(z)")
        right.legend(fontsize=7, title="dotted: bulk binodal", title_fontsize=7)
    else:
        _note(right, "no free interface (no binodal)")
    _save(fig, out_dir, "profiles")


def make_figures(out_dir: Path, system: str, units: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    axes = _Axes(system, units)
    phase_diagram(out_dir, system, axes)
    pressure_temperature(out_dir, system, axes)
    isotherms(out_dir, system, axes)
    pores(out_dir, system)
    profiles(out_dir, system, axes)
