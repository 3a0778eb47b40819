"""The parts of one system's analysis, each writing its tables and returning its summary entry.

A part that cannot run says why (``reason``) and writes its table with that reason, so the figures,
the report and a reader always see what is missing rather than a silently absent file. Every table
has a ``coverage`` column (``AnalysisRange.flag``): 'inside', 'coverage unknown', or which limit of the
functional's training coverage a value passes (e.g. a pore profile denser than any training bin).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from . import units as lab
from .bulk import Coexistence, Isotherm, NotFound, PhaseDiagram, coexistence
from .coverage import AnalysisRange
from .supercritical import fisher_widom_point, isobar_lines, s0_isotherm_line, xi_isotherm_line


def _csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)


def _with_lab_units(row: dict[str, Any], system: str, densities: list[str], pressures: list[str]) -> dict[str, Any]:
    if lab.has_lab_units(system):
        for key in densities:
            row[f"{key}_kg_m3"] = float(lab.kg_per_m3(row[key], system))
        for key in pressures:
            row[f"{key}_MPa"] = float(lab.megapascal(row[key]))
    return row


INTERFACE_ROUTE = ("rho_vapour_interface", "rho_liquid_interface", "p_interface")


def interface_coexistence(functional, excess, diagram: PhaseDiagram, settings, domain: AnalysisRange, k_B: float) -> list[dict[str, float]]:
    """Per binodal point up to ``interface.binodal_reduced_temperature`` Tc: the plateau densities of the free
    interface the functional solves there, and the vapour pressure of the vapour plateau from the stable
    vapour branch (the route of Sammüller et al.). Equal mu and p of uniform states needs the pressure of the
    liquid integrated through the unstable region, where the training data hold no uniform profile; the
    interface needs only inhomogeneous states of the kind the functional learned. NaN where not solved."""
    from ..cdft.solver import ConvergenceError, SolverSettings
    from .interfaces import free_interface

    limit = settings.interface.get("binodal_reduced_temperature", 0.0)
    crit = diagram.critical
    box = round(settings.interface["box_ranges"] * functional.interaction_range / functional.dz) * functional.dz
    rows = []
    for c in diagram.binodal:
        row = dict.fromkeys(INTERFACE_ROUTE, np.nan)
        if crit is not None and c.T <= limit * crit.T:
            try:
                slab = free_interface(functional, c, box, SolverSettings(tol=1e-8 * domain.limit(c.T), max_iter=20000))
            except ConvergenceError:
                rows.append(row)
                continue
            iso = Isotherm.from_functional(excess, c.T, domain.limit(c.T), settings.chebyshev_degree)
            row.update(rho_vapour_interface=slab.rho_vapour, rho_liquid_interface=slab.rho_liquid,
                       p_interface=float(iso.beta_p(slab.rho_vapour)) * k_B * c.T)
        rows.append(row)
    return rows


def write_binodal(out_dir: Path, system: str, diagram: PhaseDiagram, k_B: float, domain: AnalysisRange,
                  interface_route: list[dict[str, float]] | None = None, networks: list[dict[str, Any]] | None = None) -> None:
    """binodal.csv (with each T's analysed density_max, and the interface route's columns where it was solved) and
    critical_point.csv, whose values are the loop's closing whenever it was located: trust them only where
    ``status`` is 'found'. An ensemble functional's ``networks`` (``run.network_critical_points``) add how many
    networks have a critical point and the standard deviation of their T and rho (NaN with fewer than two)."""
    rows = []
    for i, c in enumerate(diagram.binodal):
        kT = k_B * c.T
        row = {**asdict(c), "mu": c.beta_mu * kT, "p": c.beta_p * kT, "density_max": domain.limit(c.T),
               "coverage": domain.flag(c.T, density=c.rho_liquid), **(interface_route[i] if interface_route else dict.fromkeys(INTERFACE_ROUTE, np.nan))}
        rows.append(_with_lab_units(row, system, ["rho_vapour", "rho_liquid", "spinodal_vapour", "spinodal_liquid", "rho_vapour_interface",
                                                  "rho_liquid_interface"], ["p", "p_interface"]))
    columns = list(rows[0]) if rows else ["T", "rho_vapour", "rho_liquid", "spinodal_vapour", "spinodal_liquid", "beta_mu", "beta_p", "mu", "p",
                                          "density_max", "coverage", *INTERFACE_ROUTE]
    _csv(out_dir / "binodal.csv", rows, columns)
    crit = diagram.critical_estimate
    row = {"status": diagram.status, "reason": diagram.reason, "T": np.nan, "rho": np.nan, "beta_p": np.nan, "p": np.nan, "coverage": domain.flag()}
    if crit is not None:
        row.update(T=crit.T, rho=crit.rho, beta_p=crit.beta_p, p=crit.beta_p * k_B * crit.T, coverage=domain.flag(crit.T, density=crit.rho))
    located = [n for n in networks or [] if "T" in n]
    spread = (lambda key: float(np.std([n[key] for n in located], ddof=1)) if len(located) > 1 else np.nan)
    row.update(networks=len(networks) if networks else 1, networks_with_critical_point=len(located) if networks else np.nan,
               T_network_std=spread("T"), rho_network_std=spread("rho"))
    row = _with_lab_units(row, system, ["rho", "rho_network_std"], ["p"])
    _csv(out_dir / "critical_point.csv", [row], list(row))


def _analysed(T: np.ndarray, domain: AnalysisRange) -> tuple[np.ndarray, np.ndarray]:
    """(temperatures inside the analysed range, those beyond it): a functional says nothing past its coverage."""
    inside = (T >= domain.T_low * (1 - 1e-12)) & (T <= domain.T_high * (1 + 1e-12))
    return T[inside], T[~inside]


def pole_box(functional, poles: Mapping[str, Any]) -> tuple[float, float]:
    """Search box of the pole solver in 1/length: multiples of 1/interaction_range, capped at the grid's Nyquist."""
    a1_max = min(poles["max_wavenumber"] / functional.interaction_range, np.pi / functional.dz)
    return a1_max, poles["max_decay_rate"] / functional.interaction_range


WIDOM_COLUMNS = ["definition", "T", "rho", "beta_p", "p", "value", "coverage"]
FISHER_WIDOM_COLUMNS = ["status", "reason", "T", "rho", "beta_p", "p", "coverage"]


def supercritical(functional, excess, diagram: PhaseDiagram, settings, domain: AnalysisRange, k_B: float, out_dir: Path,
                  system: str) -> dict[str, Any]:
    """Widom lines (each labelled) and the Fisher-Widom line; both need the critical point.

    The configured reduced temperatures may reach past the analysed range: those isotherms are
    refused (counted in the summary; a 'refused' row in fisher_widom.csv), never extrapolated to.
    """
    widom_rows: list[dict[str, Any]] = []
    fw_rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    crit = diagram.critical
    degree = settings.chebyshev_degree
    if crit is None:
        summary["reason"] = f"no critical point: {diagram.reason}"
    else:
        w, fw, poles = settings.widom, settings.fisher_widom, settings.poles
        a1_max, a0_max = pole_box(functional, poles)
        fractions = np.linspace(0.02, 0.95, poles["densities"])
        T_iso, refused_iso = _analysed(crit.T * np.linspace(*w["reduced_temperatures"], w["isotherms"]), domain)
        isotherms = [Isotherm.from_functional(excess, float(T), domain.limit(float(T)), degree) for T in T_iso]
        points = s0_isotherm_line(isotherms, crit.T)
        points += xi_isotherm_line(functional, isotherms, crit.T, fractions, a1_max, a0_max)
        T_bar, refused_bar = _analysed(crit.T * np.linspace(1.0 + 1e-3, w["reduced_temperatures"][1] * 1.1, w["isobar_temperatures"]), domain)
        p_kT = [crit.beta_p * crit.T * r for r in w["reduced_pressures"]]
        if T_bar.size >= 3:
            points += isobar_lines(excess, p_kT, T_bar, domain.limit, k_B, with_cp=domain.T_high > domain.T_low)
        for pt in points:
            widom_rows.append({**asdict(pt), "p": pt.beta_p * k_B * pt.T, "coverage": domain.flag(pt.T, density=pt.rho)})
        summary["widom_points"] = {d: sum(p.definition == d for p in points) for d in sorted({p.definition for p in points})}
        summary["refused_beyond_analysed_temperatures"] = {"widom_isotherms": refused_iso.tolist(), "isobar_temperatures": int(refused_bar.size)}
        if not points:
            summary["reason"] = "no response maximum inside the analysed temperature and density ranges"
        T_fw, refused_fw = _analysed(crit.T * np.linspace(*fw["reduced_temperatures"], fw["temperatures"]), domain)
        for T in T_fw:
            iso = Isotherm.from_functional(excess, float(T), domain.limit(float(T)), degree)
            try:
                pt = fisher_widom_point(functional, iso, fractions * iso.rho_max, a1_max, a0_max)
                fw_rows.append({"status": "found", "reason": "", "T": pt.T, "rho": pt.rho, "beta_p": pt.beta_p, "p": pt.beta_p * k_B * pt.T,
                                "coverage": domain.flag(pt.T, density=pt.rho)})
            except NotFound as exc:
                fw_rows.append({"status": "not found", "reason": str(exc), "T": float(T), "rho": np.nan, "beta_p": np.nan, "p": np.nan,
                                "coverage": domain.flag(float(T))})
        for T in refused_fw:
            fw_rows.append({"status": "refused", "reason": f"T = {T:g} lies outside the analysed (covered) temperatures "
                            f"[{domain.T_low:g}, {domain.T_high:g}]", "T": float(T), "rho": np.nan, "beta_p": np.nan, "p": np.nan,
                            "coverage": domain.flag(float(T))})
        summary["refused_beyond_analysed_temperatures"]["fisher_widom"] = refused_fw.tolist()
        summary["fisher_widom_found"] = sum(r["status"] == "found" for r in fw_rows)
    widom_rows = [_with_lab_units(r, system, ["rho"], ["p"]) for r in widom_rows]
    fw_rows = [_with_lab_units(r, system, ["rho"], ["p"]) for r in sorted(fw_rows, key=lambda r: r["T"])]
    _csv(out_dir / "widom.csv", widom_rows, list(widom_rows[0]) if widom_rows else WIDOM_COLUMNS)
    _csv(out_dir / "fisher_widom.csv", fw_rows, list(fw_rows[0]) if fw_rows else FISHER_WIDOM_COLUMNS)
    return summary


def _state_temperature(diagram: PhaseDiagram, reduced: float) -> float | None:
    """reduced * Tc, or the middle of the binodal when Tc is unknown; None without a binodal."""
    if not diagram.binodal:
        return None
    if diagram.critical is not None:
        return reduced * diagram.critical.T
    return diagram.binodal[len(diagram.binodal) // 2].T


def _coexistence_at(excess, T: float, rho_max: float, degree: int) -> Coexistence:
    return coexistence(Isotherm.from_functional(excess, T, rho_max, degree))


def interface(functional, excess, diagram: PhaseDiagram, settings, domain: AnalysisRange, out_dir: Path, system: str, k_B: float,
              units: Mapping[str, Any]) -> dict[str, Any]:
    """Free planar interface at ``interface.reduced_temperature`` Tc: plateaus vs bulk, surface tension; a slab
    denser than the band's densest training bin is flagged in ``coverage``."""
    import xarray as xr

    from ..cdft.solver import ConvergenceError, SolverSettings
    from .interfaces import free_interface

    T = _state_temperature(diagram, settings.interface["reduced_temperature"])
    columns = ["status", "reason", "T", "rho_vapour_bulk", "rho_liquid_bulk", "rho_vapour_slab", "rho_liquid_slab", "beta_gamma", "gamma", "coverage"]
    if T is None:
        row = {"status": "not found", "reason": f"no binodal: {diagram.reason}", "coverage": domain.flag()}
        _csv(out_dir / "interface.csv", [row], columns)
        return {"reason": row["reason"]}
    rho_max = domain.limit(T)
    try:
        co = _coexistence_at(excess, T, rho_max, settings.chebyshev_degree)
        box = settings.interface["box_ranges"] * functional.interaction_range
        box = round(box / functional.dz) * functional.dz
        slab = free_interface(functional, co, box, SolverSettings(tol=1e-8 * rho_max, max_iter=20000))
    except (NotFound, ConvergenceError) as exc:
        row = {"status": "not found", "reason": str(exc), "T": T, "coverage": domain.flag(T)}
        _csv(out_dir / "interface.csv", [row], columns)
        return {"reason": row["reason"]}
    row = {"status": "found", "reason": "", "T": T, "rho_vapour_bulk": co.rho_vapour, "rho_liquid_bulk": co.rho_liquid,
           "rho_vapour_slab": slab.rho_vapour, "rho_liquid_slab": slab.rho_liquid, "beta_gamma": slab.beta_gamma,
           "gamma": slab.beta_gamma * k_B * T, "coverage": domain.flag(T, density=co.rho_liquid, peak=float(slab.rho.max()))}
    if lab.has_lab_units(system):
        row["gamma_mN_m"] = float(lab.megapascal(row["gamma"]) * 1e6 * 1e-10 * 1e3)  # eV/Å^2 -> N/m -> mN/m
    _csv(out_dir / "interface.csv", [row], list(row))
    density_unit = f"{units['length_unit']}^-{units['dimension']}"
    ds = xr.Dataset({"rho": (("z",), slab.rho, {"units": density_unit, "long_name": "free liquid-vapour interface density profile"})},
                    coords={"z": ("z", slab.z, {"units": units["length_unit"], "long_name": "position along the surface normal"})},
                    attrs={"T": T, "rho_vapour_bulk": co.rho_vapour, "rho_liquid_bulk": co.rho_liquid})
    with atomic_path(out_dir / "interface.nc") as tmp:
        ds.to_netcdf(tmp)
    return {"T": T, "beta_gamma": slab.beta_gamma, "coverage": row["coverage"], "rho_vapour_relative_difference": slab.rho_vapour / co.rho_vapour - 1,
            "rho_liquid_relative_difference": slab.rho_liquid / co.rho_liquid - 1}


def pores(functional, excess, diagram: PhaseDiagram, settings, domain: AnalysisRange, k_B: float, out_dir: Path, system: str,
          interface_summary: Mapping[str, Any]) -> dict[str, Any]:
    """Slit-pore branches and capillary coexistence per width, compared with the Kelvin equation.

    A pore profile denser than the band's densest training bin is an extrapolation: flagged per
    point in pore_isotherms.csv and per width (any point of its branches) in pores.csv.

    The Kelvin value uses the wall-tension difference from the widest pore at saturation (Young:
    gamma cos(theta)), so it also holds for partial wetting; cos(theta) follows with the free
    interface's gamma. Each width's chemical-potential window is centred on its Kelvin estimate.
    """
    from ..cdft.solver import ConvergenceError, SolverSettings
    from .interfaces import Branch, Wall, capillary_coexistence, kelvin_shift_times_width, pore_branch, slit_potential, wall_tension_difference

    p = settings.pores
    columns = ["status", "reason", "T", "H", "beta_mu_sat", "beta_mu_cc", "shift_times_H", "kelvin_shift_times_H", "mean_density_gas",
               "mean_density_liquid", "coverage"]
    isotherm_columns = ["H", "branch", "beta_mu", "mean_density", "beta_omega", "coverage"]
    T = _state_temperature(diagram, p["reduced_temperature"])
    wall_sigma = float(p["wall_sigma"][system])
    wall = Wall(float(p["wall_strength"]), wall_sigma)
    widths = sorted(round(w * wall_sigma / functional.dz) * functional.dz for w in p["widths"])
    reason = None if T is not None else f"no binodal: {diagram.reason}"
    if reason is None:
        solver = SolverSettings(tol=1e-7 * domain.limit(T), max_iter=20000)
        try:
            co = _coexistence_at(excess, T, domain.limit(T), settings.chebyshev_degree)
            beta_dgamma = wall_tension_difference(functional, slit_potential(functional.dz, functional.interaction_range, wall, widths[-1])[1], widths[-1], T, co, k_B, solver)
        except (NotFound, ConvergenceError) as exc:
            reason = f"no Kelvin reference: {exc}"
    if reason is not None:
        _csv(out_dir / "pores.csv", [{"status": "not found", "reason": reason, "T": T, "coverage": domain.flag(T)}], columns)
        _csv(out_dir / "pore_isotherms.csv", [], isotherm_columns)
        return {"reason": reason}
    kelvin = kelvin_shift_times_width(beta_dgamma, co)
    beta_gamma = interface_summary.get("beta_gamma")
    rows, isotherm_rows = [], []
    for H in widths:
        centre, half = co.beta_mu - kelvin / H, p["mu_window"] * abs(kelvin) / H + 1e-3
        mus = centre + half * np.linspace(-1.0, 1.0, p["chemical_potentials"])
        z, beta_V = slit_potential(functional.dz, functional.interaction_range, wall, H)
        ads = pore_branch(functional, beta_V, H, T, mus, None, k_B, solver)
        filled = np.where(np.isfinite(beta_V), co.rho_liquid, 0.0)
        des_rev = pore_branch(functional, beta_V, H, T, mus[::-1], filled, k_B, solver)
        des = Branch(des_rev.beta_mu[::-1], des_rev.mean_density[::-1], des_rev.beta_omega[::-1], des_rev.profiles[::-1], des_rev.failures)
        flags = []
        for name, branch in (("adsorption", ads), ("desorption", des)):
            for m, n, o, rho in zip(branch.beta_mu, branch.mean_density, branch.beta_omega, branch.profiles):
                flags.append(domain.flag(T, peak=None if rho is None else float(rho.max())))
                isotherm_rows.append({"H": H, "branch": name, "beta_mu": m, "mean_density": n, "beta_omega": o, "coverage": flags[-1]})
        beyond = [f for f in flags if f != domain.flag(T)]
        base = {"T": T, "H": H, "beta_mu_sat": co.beta_mu, "kelvin_shift_times_H": kelvin, "coverage": beyond[0] if beyond else domain.flag(T)}
        try:
            cc = capillary_coexistence(ads, des, H)
            rows.append({"status": "found", "reason": "", **base, "beta_mu_cc": cc.beta_mu, "shift_times_H": (co.beta_mu - cc.beta_mu) * H,
                         "mean_density_gas": cc.mean_density_gas, "mean_density_liquid": cc.mean_density_liquid})
        except NotFound as exc:
            failures = "; ".join((ads.failures + des.failures)[:2])
            rows.append({"status": "not found", "reason": str(exc) + (f" (solver: {failures})" if failures else ""), **base})
    _csv(out_dir / "pores.csv", rows, columns)
    _csv(out_dir / "pore_isotherms.csv", isotherm_rows, isotherm_columns)
    return {"T": T, "wall": asdict(wall), "found": sum(r["status"] == "found" for r in rows), "kelvin_shift_times_H": kelvin,
            "beta_wall_tension_difference": beta_dgamma, "cos_contact_angle": beta_dgamma / beta_gamma if beta_gamma else None}


def experiment(out_dir: Path, system: str, diagram: PhaseDiagram, k_B: float) -> dict[str, Any] | None:
    """Model minus experiment for Tc, rho_c, p_c and the liquid density at the experimental temperatures."""
    if system not in lab.REFERENCE_FILES:
        return None
    table, header = lab.experimental_saturation(system)
    exp_crit = lab.experimental_critical_point(header)
    rows = []
    crit = diagram.critical
    model = {"Tc": crit.T if crit else np.nan,
             "rho_c": float(lab.kg_per_m3(crit.rho, system)) if crit else np.nan,
             "pc": float(lab.megapascal(crit.beta_p * k_B * crit.T)) if crit else np.nan}
    for key, unit in (("Tc", "K"), ("rho_c", "kg/m3"), ("pc", "MPa")):
        rows.append({"quantity": key, "unit": unit, "T_K": np.nan, "model": model[key], "experiment": exp_crit[key]})
    if diagram.binodal:
        T_model = np.array([c.T for c in diagram.binodal])
        rho_l = lab.kg_per_m3(np.array([c.rho_liquid for c in diagram.binodal]), system)
        for T, rho_exp in zip(table["T_K"], table["rho_liquid_kg_m3"]):
            if T_model[0] <= T <= T_model[-1]:
                rows.append({"quantity": "rho_liquid", "unit": "kg/m3", "T_K": T, "model": float(np.interp(T, T_model, rho_l)), "experiment": rho_exp})
    for row in rows:
        row["difference"] = row["model"] - row["experiment"]
        row["relative_difference"] = row["difference"] / row["experiment"]
    _csv(out_dir / "experiment.csv", rows, ["quantity", "unit", "T_K", "model", "experiment", "difference", "relative_difference"])
    return {"source": header, "compared": len(rows)}


def example_profiles(functional, ds, settings, out_dir: Path, k_B: float, rho_max: float, training_density_max: float) -> dict[str, Any]:
    """A few test-split runs predicted canonically in their own V_ext (from the simulated and from a uniform
    start, the lower free energy kept: ``cdft.heldout.canonical_prediction``), beside the simulated profile;
    a solution denser than any training bin is flagged (the functional extrapolates there, e.g. a collapse
    into a spike)."""
    import xarray as xr

    from .. import dataset as pds
    from ..cdft.heldout import canonical_prediction
    from ..cdft.solver import ConvergenceError, SolverSettings

    if abs(pds.grid_spacing(ds) - functional.dz) > 1e-9 * functional.dz:
        return {"solved": 0, "failures": [{"reason": f"profile grid dz = {pds.grid_spacing(ds):g} differs from the functional's dz = {functional.dz:g}"}]}
    test = pds.ok_runs(ds, "test")
    n = min(settings.example_profiles, test.sizes[pds.RUN])
    sim, fn, pot, runs, starts, differences, failures = [], [], [], [], [], [], []
    for k in range(n):
        run = test.isel({pds.RUN: k})
        rho = np.asarray(run[pds.RHO].values, dtype=float)
        V = np.asarray(run[pds.V_EXT].values, dtype=float)
        T = float(run[pds.TEMPERATURE].values)
        try:
            prediction = canonical_prediction(functional, V, T, float(rho.mean()), rho, k_B, SolverSettings(tol=1e-7 * rho_max, max_iter=20000))
        except ConvergenceError as exc:
            failures.append({"run": int(run[pds.RUN].values), "reason": str(exc)})
            continue
        sim.append(rho), fn.append(prediction.rho), pot.append(V), runs.append(int(run[pds.RUN].values))
        starts.append(prediction.start), differences.append(np.nan if prediction.max_abs_difference is None else prediction.max_abs_difference)
    beyond = [bool(rho.max() > training_density_max) for rho in fn]
    if runs:
        out = xr.Dataset(
            {"rho_simulated": (("run", "z"), np.array(sim), {"units": ds[pds.RHO].attrs["units"], "long_name": "simulated density"}),
             "rho_functional": (("run", "z"), np.array(fn), {"units": ds[pds.RHO].attrs["units"], "long_name": "functional's self-consistent density (same N, lower F of two starts)"}),
             "V_ext": (("run", "z"), np.array(pot), {"units": ds[pds.V_EXT].attrs["units"], "long_name": "external potential"}),
             "start": ("run", np.array(starts, dtype=object), {"long_name": "start of the kept solution (simulated or uniform)"}),
             "max_abs_difference_between_starts": ("run", np.array(differences), {"units": ds[pds.RHO].attrs["units"],
                                                                                   "long_name": "max |rho difference| between the two starts' solutions (NaN: one failed)"}),
             "beyond_training_density": ("run", np.array(beyond),
                                         {"long_name": "solution denser than any training bin", "training_density_max": training_density_max})},
            coords={"run": ("run", runs), "z": ds[pds.Z]},
            attrs={"failures": json.dumps(failures)},
        )
        with atomic_path(out_dir / "profiles.nc") as tmp:
            out.to_netcdf(tmp)
    return {"solved": len(runs), "starts": dict(zip(runs, starts)), "beyond_training_density": [run for run, flag in zip(runs, beyond) if flag],
            "failures": failures}
