"""Figures of one system's analysis, drawn from its tables (PNG and SVG, written atomically).

Water and CO2 are drawn in K, kg/m³, MPa and nm beside the experimental saturation data (grey dots);
lj, pets and hard_rods in reduced units (``liquidscale.plotting.AxisUnits``). A missing result is said
in the panel's title or above the figure, never drawn over data, and a panel with nothing to draw is
left out; legends sit beside the axes. Densities beyond the analysed range (the training coverage) are
shaded, points flagged beyond coverage in a table are drawn hollow or as grey crosses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import EXPERIMENT_STYLE, AxisUnits, legend_beside, new_figure, note, save
from . import units as lab

FIGURES = ("phase_diagram", "pressure_temperature", "isotherms", "pores", "profiles")


def _read(out_dir: Path, name: str):
    import pandas as pd

    path = out_dir / name
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _reason(table, fallback: str) -> str:
    """The table's first stated reason, or ``fallback`` where it states none."""
    if not table.empty and "reason" in table and isinstance(table["reason"].iloc[0], str) and table["reason"].iloc[0]:
        return table["reason"].iloc[0]
    return fallback


def _outside(table) -> "np.ndarray":
    """Rows a table flags beyond the training coverage ('coverage unknown' is said once per figure instead)."""
    if table.empty or "coverage" not in table:
        return np.zeros(len(table), bool)
    return ~table["coverage"].isin(["inside", "coverage unknown"]).to_numpy()


def _coverage_unknown(out_dir: Path, ax) -> None:
    crit = _read(out_dir, "critical_point.csv")
    if "coverage" in crit and crit["coverage"].iloc[0] == "coverage unknown":
        note(ax, "coverage unknown: the model records no training coverage")


def _critical_found(crit) -> bool:
    return not crit.empty and crit["status"].iloc[0] == "found"


def _shade_beyond_density_max(out_dir: Path, ax, axes: AxisUnits) -> None:
    """Shade rho > density_max(T) (from eos.nc): the functional was not analysed, or not trained, there."""
    import xarray as xr

    if not (out_dir / "eos.nc").is_file():
        return
    with xr.open_dataset(out_dir / "eos.nc") as eos:
        if "density_max" not in eos:
            return
        T, x = eos["T"].values, axes.rho(eos["density_max"].values)
    ax.fill_betweenx(T, x, 1.15 * np.max(x), color="0.85", hatch="//", edgecolor="0.7", lw=0, label="beyond the analysed density (coverage)")


def _widom_lines(ax, widom, x_of, y_of) -> None:
    """One dotted line per Widom definition; points beyond coverage hollow."""
    for i, (definition, group) in enumerate(widom.groupby("definition") if not widom.empty else []):
        outside = _outside(group)
        x, y = x_of(group), y_of(group)
        ax.plot(x, y, marker="o^sv"[i % 4], ls=":", ms=4, color=f"C{i + 4}", label=f"Widom: max {definition}", markevery=list(np.flatnonzero(~outside)))
        if outside.any():
            ax.plot(x[outside], y[outside], marker="o^sv"[i % 4], ls="none", ms=4, mfc="none", color=f"C{i + 4}")


def _critical_note(crit) -> str:
    return f"critical point {crit['status'].iloc[0]}: {_reason(crit, 'no reason recorded')}" if not crit.empty else "no critical point table"


def phase_diagram(out_dir: Path, axes: AxisUnits):
    system = axes.system
    binodal, crit = _read(out_dir, "binodal.csv"), _read(out_dir, "critical_point.csv")
    widom, fw = _read(out_dir, "widom.csv"), _read(out_dir, "fisher_widom.csv")
    fw_found = not fw.empty and (fw["status"] == "found").any()
    if binodal.empty and not _critical_found(crit) and widom.empty and not fw_found and system not in lab.REFERENCE_FILES:
        return new_figure(0, [f"{system}: no phase diagram to draw: {_critical_note(crit)}"])[0]
    fig, (ax,) = new_figure(1, panel_size=(5.5, 4.2), legend_width=3.0)
    ax.set_title(f"{system}: phase diagram from the functional", fontsize=10)
    _shade_beyond_density_max(out_dir, ax, axes)
    if not binodal.empty:
        ax.plot(axes.rho(binodal["rho_vapour"]), binodal["T"], "C0-", label="binodal (equal mu, p)")
        ax.plot(axes.rho(binodal["rho_liquid"]), binodal["T"], "C0-")
        ax.plot(axes.rho(binodal["spinodal_vapour"]), binodal["T"], "C0--", lw=1, label="spinodal (d mu/d rho = 0)")
        ax.plot(axes.rho(binodal["spinodal_liquid"]), binodal["T"], "C0--", lw=1)
    if _critical_found(crit):
        ax.plot(axes.rho(crit["rho"]), crit["T"], "C3*", ms=12, label="critical point")
    else:
        note(ax, _critical_note(crit))
    _widom_lines(ax, widom, lambda g: axes.rho(g["rho"]), lambda g: g["T"].to_numpy())
    if fw_found:
        found = fw[fw["status"] == "found"]
        ax.plot(axes.rho(found["rho"]), found["T"], "C1-.", marker="x", label="Fisher-Widom line")
    _coverage_unknown(out_dir, ax)
    if system in lab.REFERENCE_FILES:
        table, _ = lab.experimental_saturation(system)
        ax.plot(table["rho_vapour_kg_m3"], table["T_K"], **EXPERIMENT_STYLE, label="experiment (saturation)")
        ax.plot(table["rho_liquid_kg_m3"], table["T_K"], **EXPERIMENT_STYLE)
    ax.set_xlabel(axes.rho_label)
    ax.set_ylabel(axes.T_label)
    legend_beside(ax)
    return fig


def pressure_temperature(out_dir: Path, axes: AxisUnits):
    system = axes.system
    binodal, crit, widom = _read(out_dir, "binodal.csv"), _read(out_dir, "critical_point.csv"), _read(out_dir, "widom.csv")
    if binodal.empty and not _critical_found(crit) and widom.empty and system not in lab.REFERENCE_FILES:
        return new_figure(0, [f"{system}: no saturation pressure or Widom line to draw: {_critical_note(crit)}"])[0]
    fig, (ax,) = new_figure(1, panel_size=(5.0, 4.0), legend_width=2.6)
    ax.set_title(f"{system}: pressure-temperature projection", fontsize=10)
    if not binodal.empty:
        ax.plot(binodal["T"], axes.p(binodal["p"]), "C0-", label="saturation pressure (functional)")
    else:
        note(ax, f"no liquid-vapour coexistence: {_reason(crit, 'no binodal')}")
    if _critical_found(crit):
        ax.plot(crit["T"], axes.p(crit["p"]), "C3*", ms=12, label="critical point")
    elif not crit.empty and not binodal.empty:
        note(ax, f"critical point {crit['status'].iloc[0]}")
    _coverage_unknown(out_dir, ax)
    _widom_lines(ax, widom, lambda g: g["T"].to_numpy(), lambda g: axes.p(g["p"]))
    if system in lab.REFERENCE_FILES:
        table, _ = lab.experimental_saturation(system)
        ax.plot(table["T_K"], table["p_sat_MPa"], **EXPERIMENT_STYLE, label="experiment (saturation)")
    ax.set_xlabel(axes.T_label)
    ax.set_ylabel(axes.p_label)
    legend_beside(ax)
    return fig


def isotherms(out_dir: Path, axes: AxisUnits, count: int = 6):
    import xarray as xr

    if not (out_dir / "eos.nc").is_file():
        fig, _ = new_figure(0, [f"{axes.system}: no isotherms, the equation-of-state table eos.nc was not written"])
        return fig
    fig, (ax,) = new_figure(1, panel_size=(5.0, 4.0))
    ax.set_title(f"{axes.system}: isotherms of the functional's bulk equation of state", fontsize=10)
    with xr.open_dataset(out_dir / "eos.nc") as eos:
        pick = np.unique(np.linspace(0, eos.sizes["T"] - 1, count).round().astype(int))
        x = axes.rho(eos["rho"].values)
        for i in pick:
            ax.plot(x, axes.p(eos["p"].values[i]), lw=1, label=axes.temperature(eos["T"].values[i]))
    binodal = _read(out_dir, "binodal.csv")
    if not binodal.empty:
        y = axes.p(binodal["p"])
        ax.plot(axes.rho(binodal["rho_vapour"]), y, "k-", lw=1.5, label="binodal")
        ax.plot(axes.rho(binodal["rho_liquid"]), y, "k-", lw=1.5)
        ax.set_ylim(-1.5 * abs(y.max()), 3 * abs(y.max()))
    note(ax, "each isotherm drawn up to its analysed density_max (training coverage)")
    _coverage_unknown(out_dir, ax)
    ax.set_xlabel(axes.rho_label)
    ax.set_ylabel(axes.p_label)
    legend_beside(ax)
    return fig


def pores(out_dir: Path, axes: AxisUnits):
    from matplotlib.ticker import MaxNLocator

    table, branches = _read(out_dir, "pores.csv"), _read(out_dir, "pore_isotherms.csv")
    found = table[table["status"] == "found"] if not table.empty else table
    if branches.empty:
        missing = [f"{axes.system}: no pore isotherms and no capillary coexistence: {_reason(table, 'no pore results')}"]
    else:
        missing = [f"{axes.system}: no capillary coexistence found: {_reason(table, 'no reason recorded')}"] if found.empty else []
    fig, panels = new_figure(int(not branches.empty) + int(not found.empty), missing)
    panels = iter(panels)
    if not branches.empty:
        left = next(panels)
        left.set_title("slit-pore isotherms: adsorption and desorption", fontsize=9)
        mu_sat = table["beta_mu_sat"].iloc[0]
        for i, (H, group) in enumerate(branches.groupby("H")):
            for name, style in (("adsorption", "-"), ("desorption", "--")):
                b = group[group["branch"] == name]
                left.plot(b["beta_mu"] - mu_sat, axes.rho(b["mean_density"]), style, color=f"C{i}",
                          label=f"H = {float(axes.length(H)):.3g} {axes.length_unit} ({name[:3]}.)")
        outside = _outside(branches)
        if outside.any():
            left.plot(branches["beta_mu"][outside] - mu_sat, axes.rho(branches["mean_density"][outside]), "x", color="0.4", ms=5,
                      label="profile denser than its training data")
        left.axvline(0.0, color="0.5", lw=0.8)
        left.xaxis.set_major_locator(MaxNLocator(5))
        left.set_xlabel("chemical potential β(μ − μ_sat) (dimensionless)")
        left.set_ylabel("mean " + axes.rho_label + " in the pore, N/H")
        legend_beside(left)
    if not found.empty:
        right = next(panels)
        right.set_title("capillary coexistence", fontsize=9)
        outside = _outside(found)
        H, shift = axes.length(found["H"]), axes.length(found["shift_times_H"])
        right.plot(H, shift, "C0-")
        right.plot(H[~outside], shift[~outside], "C0o", label="functional: β(μ_sat − μ_cc) H")
        if outside.any():
            right.plot(H[outside], shift[outside], "C0o", mfc="none", label="... beyond training coverage")
        kelvin = float(axes.length(found["kelvin_shift_times_H"].iloc[0]))
        if np.isfinite(kelvin):
            right.axhline(kelvin, color="k", ls="--", lw=1.2, label="Kelvin: 2β(γ_wv − γ_wl)/(ρ_l − ρ_v)")
        right.set_xlabel(axes.length_label("pore width", "H"))
        right.set_ylabel(axes.length_label("", "β(μ_sat − μ_cc) H"))
        legend_beside(right)
    return fig


def profiles(out_dir: Path, axes: AxisUnits):
    import xarray as xr

    heldout, interface_nc = out_dir / "profiles.nc", out_dir / "interface.nc"
    interface = _read(out_dir, "interface.csv")
    missing = []
    if not heldout.is_file():
        missing.append(f"{axes.system}: no held-out profiles: none solved, or the analysis had no profile dataset (summary.json 'profiles')")
    if not interface_nc.is_file():
        missing.append(f"{axes.system}: no free interface: {_reason(interface, 'no binodal')}")
    fig, panels = new_figure(int(heldout.is_file()) + int(interface_nc.is_file()), missing)
    panels = iter(panels)
    if heldout.is_file():
        left = next(panels)
        left.set_title("held-out runs: simulated vs functional (same N)", fontsize=9)
        with xr.open_dataset(heldout) as ds:
            beyond = ds["beyond_training_density"].values if "beyond_training_density" in ds else np.zeros(ds.sizes["run"], bool)
            z = axes.length(ds["z"].values)
            for i, run in enumerate(ds["run"].values):
                flag = " (denser than any training bin)" if beyond[i] else ""
                left.plot(z, axes.rho(ds["rho_simulated"].values[i]), color=f"C{i}", lw=1.6, alpha=0.45, label=f"run {run}: simulated")
                left.plot(z, axes.rho(ds["rho_functional"].values[i]), color=f"C{i}", ls="--", lw=1, label=f"run {run}: functional{flag}")
        left.set_xlabel(axes.length_label("position", "z"))
        left.set_ylabel(axes.rho_label)
        legend_beside(left)
    if interface_nc.is_file():
        right = next(panels)
        beyond = bool(_outside(interface).any())
        right.set_title("free liquid-vapour interface (functional)" + ("\nbeyond training coverage" if beyond else ""), fontsize=9)
        with xr.open_dataset(interface_nc) as ds:
            right.plot(axes.length(ds["z"].values), axes.rho(ds["rho"].values), "C0-", label="interface profile")
            for key, name in (("rho_vapour_bulk", "bulk binodal: vapour"), ("rho_liquid_bulk", "bulk binodal: liquid")):
                right.axhline(float(axes.rho(ds.attrs[key])), color="k", ls=":", lw=1, label=name)
        right.set_xlabel(axes.length_label("position", "z"))
        right.set_ylabel(axes.rho_label)
        legend_beside(right)
    return fig


BUILDERS = {"phase_diagram": phase_diagram, "pressure_temperature": pressure_temperature, "isotherms": isotherms, "pores": pores, "profiles": profiles}


def make_figures(out_dir: Path, system: str, units: Mapping[str, Any]) -> None:
    """Every figure of FIGURES as ``{name}.png`` and ``{name}.svg`` in ``out_dir``."""
    out_dir = Path(out_dir)
    axes = AxisUnits(system, units)
    for name in FIGURES:
        save(BUILDERS[name](out_dir, axes), out_dir / name, formats=("png", "svg"))
