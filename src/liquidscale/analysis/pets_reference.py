"""The learned PeTS functional's analysis beside FeOs's own answers for the same fluid (verification rung 2).

Every comparison is made at the analysis' own state (its binodal temperatures, its interface and pore
temperature, its Widom-line isotherms and isobar pressures), so a small error in the learned Tc does
not masquerade as an error in mu or gamma. The slit pores are the analysis' pores: the same 9-3 walls
(``interfaces.Wall``, strength in k_B T at the pore T) on the same kind of hard-padded grid
(``interfaces.slit_potential``), solved by FeOs. A result the analysis did not produce is a row with
status 'missing' and the analysis' reason.

Coexistence by two routes, at every binodal temperature up to 0.95 Tc: the plateaus of the free planar
interface the functional solves there (the headline rows ``rho_vapour``, ``rho_liquid``,
``vapour_pressure``, the route of Sammüller et al.; the vapour pressure from the vapour plateau on the
stable vapour branch) and bulk equal mu and p (``*_bulk`` rows), whose liquid pressure integrates mu_ex
through the unstable region, where the training data hold no uniform profile. Measured on the full PeTS
campaign the bulk route's vapour density is 1.5 % low at 0.65 Tc, the interface route's 0.4 %.

Targets (mu hidden): noise-free profiles — coexistence densities 1 % at T <= 0.95 Tc, Tc 1 %, rho_c 2 %,
vapour pressure 3 %, surface tension 5 %, capillary-coexistence beta mu 0.05 absolute; MD-like noisy
profiles (``pets.noise_samples`` > 0) — 2 %, 1.5 %, 3 %, 5 %, 10 %, and 0.1 for beta mu_cc (not set by the
issue: twice the noise-free bound, said here). The Widom line is reported without a target.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .reference_rows import (Rows, draw_functional_panels, found, network_spread, read_table, reason_of,
                             widom_missing_reason, write_rows)

COLUMNS = ["quantity", "condition", "T", "functional", "feos", "difference", "relative_difference", "target", "within_target",
           "status", "reason"]
# quantity -> (kind, bound): 'relative' compares |relative_difference|, 'absolute' |difference|
EXACT_TARGETS = {"rho_vapour": ("relative", 0.01), "rho_liquid": ("relative", 0.01), "vapour_pressure": ("relative", 0.03),
                 "Tc": ("relative", 0.01), "rho_c": ("relative", 0.02), "surface_tension": ("relative", 0.05),
                 "beta_mu_cc": ("absolute", 0.05)}
NOISY_TARGETS = {"rho_vapour": ("relative", 0.02), "rho_liquid": ("relative", 0.02), "vapour_pressure": ("relative", 0.05),
                 "Tc": ("relative", 0.015), "rho_c": ("relative", 0.03), "surface_tension": ("relative", 0.10),
                 "beta_mu_cc": ("absolute", 0.1)}
# the bulk route is judged by the same bounds as the headline interface route
BULK_ROUTE = {"rho_vapour_bulk": "rho_vapour", "rho_liquid_bulk": "rho_liquid", "vapour_pressure_bulk": "vapour_pressure"}


def targets_for(pets_block: Mapping[str, Any]) -> dict[str, tuple[str, float]]:
    """The targets of a campaign: the noisy set when its profiles carry MD-like noise."""
    base = NOISY_TARGETS if int(pets_block.get("noise_samples", 0)) > 0 else EXACT_TARGETS
    return {**base, **{bulk: base[headline] for bulk, headline in BULK_ROUTE.items()}}
BINODAL_MAX_REDUCED_T = 0.95
# Widom-line definitions compared (analysis.supercritical): the S(0) maximum's density on the analysis'
# isotherm, the chi_T maximum's temperature on the analysis' isobar
WIDOM_QUANTITIES = {"S(0) isotherm": "widom_S0_isotherm_rho", "chi_T isobar": "widom_chi_T_isobar_T"}


def reference_comparison(analysis_dir: str | Path, fluid, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``COLUMNS``: the analysis outputs in ``analysis_dir`` against ``fluid`` (a ``PetsFluid``).

    ``settings`` is the analysis stage's settings (``stage_settings(config, 'pets', 'analysis')``):
    its ``analysis`` section gives the pores' walls, its ``system_settings`` (the pets block) the grid
    and, through its noise, the targets.
    """
    analysis_dir = Path(analysis_dir)
    r = Rows(targets_for(settings["system_settings"]), "feos")
    Tc, rho_c, pc = fluid.critical_point()
    rows: list[dict[str, Any]] = []

    critical = read_table(analysis_dir, "critical_point.csv")
    if found(critical):
        rows.append(r.compared("Tc", np.nan, float(critical["T"].iloc[0]), Tc, network_spread(critical, "T")))
        rows.append(r.compared("rho_c", np.nan, float(critical["rho"].iloc[0]), rho_c, network_spread(critical, "rho")))
    else:
        rows += [r.missing("Tc", reason_of(critical, "critical_point.csv"), reference=Tc), r.missing("rho_c", reason_of(critical, "critical_point.csv"), reference=rho_c)]

    binodal = read_table(analysis_dir, "binodal.csv")
    compared = binodal[binodal["T"] <= BINODAL_MAX_REDUCED_T * Tc] if binodal is not None and not binodal.empty else None
    if compared is None or compared.empty:
        reason = reason_of(critical, "critical_point.csv") if binodal is not None else "binodal.csv not found in the analysis folder"
        rows += [r.missing(q, f"no binodal point at T <= {BINODAL_MAX_REDUCED_T:g} Tc: {reason}") for q in (*BULK_ROUTE.values(), *BULK_ROUTE)]
    for _, b in (compared.iterrows() if compared is not None else ()):
        T = float(b["T"])
        co = fluid.coexistence(T)
        for headline, column, feos in (("rho_vapour", "rho_vapour_interface", co.rho_vapour), ("rho_liquid", "rho_liquid_interface", co.rho_liquid),
                                       ("vapour_pressure", "p_interface", co.p)):
            if column in b and np.isfinite(b[column]):
                rows.append(r.compared(headline, T, float(b[column]), feos, "free interface plateaus"))
            else:
                rows.append(r.missing(headline, "no free interface solved at this binodal temperature", T, feos))
        rows += [r.compared("rho_vapour_bulk", T, float(b["rho_vapour"]), co.rho_vapour, "bulk equal mu and p"),
                 r.compared("rho_liquid_bulk", T, float(b["rho_liquid"]), co.rho_liquid, "bulk equal mu and p"),
                 r.compared("vapour_pressure_bulk", T, float(b["p"]), co.p, "bulk equal mu and p")]

    interface = read_table(analysis_dir, "interface.csv")
    if found(interface):
        T = float(interface["T"].iloc[0])
        reference = fluid.surface_tension(T)
        rows.append(r.compared("surface_tension", T, float(interface["gamma"].iloc[0]), reference.gamma))
    else:
        rows.append(r.missing("surface_tension", reason_of(interface, "interface.csv")))

    rows += _pore_rows(read_table(analysis_dir, "pores.csv"), fluid, settings, r)
    rows += _widom_rows(read_table(analysis_dir, "widom.csv"), fluid, analysis_dir, r)
    return rows


def _pore_rows(pores, fluid, settings: Mapping[str, Any], r: Rows) -> list[dict[str, Any]]:
    """beta mu at capillary coexistence per width, FeOs in the analysis' own slit at the analysis' T."""
    from .interfaces import Wall, slit_potential
    from .bulk import NotFound

    if pores is None or pores.empty or "H" not in pores or pores["H"].isna().all():
        return [r.missing("beta_mu_cc", reason_of(pores, "pores.csv"))]
    p, block = settings["analysis"]["pores"], settings["system_settings"]
    dz = float(block["dz"])
    wall = Wall(float(p["wall_strength"]), float(p["wall_sigma"]["pets"]))
    rows = []
    for _, pore in pores.iterrows():
        T, H = float(pore["T"]), float(pore["H"])
        condition = f"H = {H:g}"
        try:
            feos = fluid.capillary_coexistence(T, slit_potential(dz, float(block["padding"]), wall, H)[1], H, dz).beta_mu
        except (NotFound, RuntimeError, ValueError) as exc:  # no FeOs transition, or no FeOs VLE at T
            feos = np.nan
            if pore["status"] == "found":
                rows.append(r.missing("beta_mu_cc", f"FeOs: {exc}", T, condition=condition))
                continue
        if pore["status"] == "found":
            rows.append(r.compared("beta_mu_cc", T, float(pore["beta_mu_cc"]), feos, condition))
        else:
            rows.append(r.missing("beta_mu_cc", str(pore["reason"]), T, feos, condition))
    return rows


def _widom_rows(widom, fluid, analysis_dir: Path, r: Rows) -> list[dict[str, Any]]:
    """S(0)-isotherm maxima compared in rho at the analysis' T, chi_T-isobar maxima in T at the analysis' p."""
    if widom is None or widom.empty:
        reason = widom_missing_reason(widom, analysis_dir)
        return [r.missing(quantity, reason) for quantity in WIDOM_QUANTITIES.values()]
    Tc = fluid.critical_point()[0]
    rows = []
    for _, w in widom.iterrows():
        T, definition = float(w["T"]), w["definition"]
        quantity = WIDOM_QUANTITIES.get(definition)
        if quantity is None:  # xi and c_p lines: no FeOs counterpart computed here
            continue
        condition = f"p = {float(w['p']):.6g}" if definition == "chi_T isobar" else ""
        try:
            if definition == "S(0) isotherm":
                rows.append(r.compared(quantity, T, float(w["rho"]), fluid.s0_isotherm_maximum(T).rho))
            else:
                rows.append(r.compared(quantity, T, T, fluid.chi_isobar_maximum(float(w["p"]), Tc * (1 + 1e-3), Tc * 1.6).T, condition))
        except (RuntimeError, ValueError) as exc:  # FeOs's response has no interior maximum there (e.g. T < FeOs's Tc)
            rows.append(r.missing(quantity, f"FeOs: {exc}", T, condition=condition))
    return rows


def write_reference_comparison(analysis_dir: str | Path, out_dir: str | Path, settings: Mapping[str, Any], fluid=None) -> list[dict[str, Any]]:
    """reference.csv and reference.png/.svg (binodal and surface tension, functional vs FeOs) in ``out_dir``."""
    from ..fluids.pets import PetsFluid

    fluid = fluid or PetsFluid()
    analysis_dir, out_dir = Path(analysis_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = reference_comparison(analysis_dir, fluid, settings)
    write_rows(rows, COLUMNS, out_dir / "reference.csv")
    reference_figure(analysis_dir, out_dir, fluid)
    return rows


def reference_figure(analysis_dir: Path, out_dir: Path, fluid) -> None:
    from ..plotting import save

    save(comparison_figure(analysis_dir, fluid), out_dir / "reference", formats=("png", "svg"))


def comparison_figure(analysis_dir: Path, fluid):
    """Left: binodal (T vs rho) with critical points; right: gamma(T). FeOs black dashed, the functional coloured."""
    from ..plotting import REFERENCE_STYLE, new_figure

    Tc, rho_c, _ = fluid.critical_point()
    T_ref = Tc * np.concatenate([np.linspace(0.6, 0.97, 30), 1 - np.logspace(-1.5, -3.3, 10)])
    coex = [fluid.coexistence(float(T)) for T in T_ref]
    fig, (left, right) = new_figure(2, legend_width=2.8)
    left.plot([c.rho_vapour for c in coex] + [rho_c] + [c.rho_liquid for c in coex][::-1], list(T_ref) + [Tc] + list(T_ref[::-1]),
              **REFERENCE_STYLE, label="FeOs PeTS (reference)")
    left.plot(rho_c, Tc, "ko", mfc="none", ms=8, label="FeOs critical point")
    T_gamma = Tc * np.linspace(0.6, 0.97, 20)
    right.plot(T_gamma, [fluid.surface_tension(float(T)).gamma for T in T_gamma], **REFERENCE_STYLE, label="FeOs PeTS (reference)")
    draw_functional_panels(left, right, analysis_dir)
    return fig
