"""The learned Lennard-Jones functional beside the literature (issue 12, item 5).

The ``lj`` system samples the LJ fluid truncated and shifted at 2.5 sigma (LJTS); its analysis is
compared with the published simulation correlations of that fluid (``fluids.ljts``: Vrabec et al. 2006)
— column ``literature`` — and, as a second, smooth reference, with FeOs's PeTS equation of state
(Heier et al. 2018, fitted to LJTS data) — column ``feos_pets``, whose own distance from the literature is
measured in ``tests/test_ljts.py`` (binodal within 1.7 %, Tc +1.0 %, rho_c -3.1 %). Differences, targets
and ``within_target`` are against the literature; ``relative_difference_feos_pets`` against PeTS.

Every comparison is at the analysis' own state (its binodal temperatures, its interface temperature), so
an error in the learned Tc does not show as an error in the densities or gamma. Coexistence by the same
two routes as the PeTS rung (``pets_reference``): the free-interface plateaus (headline ``rho_vapour``,
``rho_liquid``, ``vapour_pressure``) and bulk equal mu and p (``*_bulk`` rows, judged by the same bounds),
at every binodal temperature up to 0.95 of the literature's Tc.

Targets (issue 12): liquid density 2 %, vapour density 10 % (T <= 0.95 Tc), Tc 1.5 %, rho_c 3 %, surface
tension 10 %. The vapour pressure is reported without a target (the issue sets none). No published Widom
or Fisher-Widom line of the LJTS fluid was found: the S(0)-isotherm and chi_T-isobar Widom rows are
compared with FeOs's PeTS only (status 'no literature value'), the Fisher-Widom points are listed with
nothing to compare (status 'no reference'). A result the analysis did not produce is a row with status
'missing' and the analysis' reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..fluids import ljts
from .reference_rows import (Rows, draw_functional_panels, found, network_spread, read_table, reason_of,
                             widom_missing_reason, write_rows)

COLUMNS = ["quantity", "condition", "T", "functional", "literature", "feos_pets", "difference", "relative_difference",
           "relative_difference_feos_pets", "target", "within_target", "status", "reason"]
TARGETS = {"rho_liquid": ("relative", 0.02), "rho_vapour": ("relative", 0.10), "Tc": ("relative", 0.015), "rho_c": ("relative", 0.03),
           "surface_tension": ("relative", 0.10)}
# the bulk route is judged by the same bounds as the headline interface route
BULK_ROUTE = {"rho_vapour_bulk": "rho_vapour", "rho_liquid_bulk": "rho_liquid", "vapour_pressure_bulk": "vapour_pressure"}
ALL_TARGETS = {**TARGETS, **{bulk: TARGETS[headline] for bulk, headline in BULK_ROUTE.items() if headline in TARGETS}}
BINODAL_MAX_REDUCED_T = 0.95
WIDOM_QUANTITIES = {"S(0) isotherm": "widom_S0_isotherm_rho", "chi_T isobar": "widom_chi_T_isobar_T"}
NO_WIDOM_LITERATURE = "no published Widom line of the LJTS 2.5 sigma fluid found; compared with FeOs PeTS only"
NO_FISHER_WIDOM_REFERENCE = "no published Fisher-Widom line of the LJTS 2.5 sigma fluid found, and FeOs's PeTS gives none here"


def _pets_value(pets, compute: Callable[[Any], float]) -> float:
    """FeOs PeTS's answer, NaN without FeOs or where it has none (e.g. above its Tc)."""
    if pets is None:
        return np.nan
    from ..fluids.pets import FEOS_ERRORS

    try:
        return float(compute(pets))
    except FEOS_ERRORS:
        return np.nan


def _relative(functional: float, reference: float) -> float:
    return (functional - reference) / reference if np.isfinite(reference) and reference != 0 else np.nan


class _LjRows(Rows):
    def __init__(self):
        super().__init__(ALL_TARGETS, "literature")

    def both(self, quantity: str, T: float, functional: float, literature: float, pets: float, condition: str = "") -> dict[str, Any]:
        return self.compared(quantity, T, functional, literature, condition, feos_pets=pets, relative_difference_feos_pets=_relative(functional, pets))

    def pets_only(self, quantity: str, T: float, functional: float, pets: float, reason: str, condition: str = "") -> dict[str, Any]:
        row = self.both(quantity, T, functional, np.nan, pets, condition)
        return {**row, "within_target": None, "status": "no literature value" if np.isfinite(pets) else "no reference", "reason": reason}

    def absent(self, quantity: str, reason: str, T: float = np.nan, literature: float = np.nan, pets: float = np.nan, condition: str = "") -> dict[str, Any]:
        return self.missing(quantity, reason, T, literature, condition, feos_pets=pets, relative_difference_feos_pets=np.nan)


def _literature(compute: Callable[[float], Any], T: float) -> float:
    """The correlation's value, NaN at or above its Tc."""
    try:
        return float(compute(T))
    except ValueError:
        return np.nan


def reference_comparison(analysis_dir: str | Path, pets=None) -> list[dict[str, Any]]:
    """Rows of ``COLUMNS``: the lj analysis outputs in ``analysis_dir`` against the LJTS literature and
    ``pets`` (a ``fluids.pets.PetsFluid``; None leaves the ``feos_pets`` column empty)."""
    analysis_dir = Path(analysis_dir)
    r = _LjRows()
    Tc, rho_c = ljts.critical_point()
    pets_Tc, pets_rho_c = (_pets_value(pets, lambda f: f.critical_point()[0]), _pets_value(pets, lambda f: f.critical_point()[1]))
    rows: list[dict[str, Any]] = []

    critical = read_table(analysis_dir, "critical_point.csv")
    if found(critical):
        rows.append(r.both("Tc", np.nan, float(critical["T"].iloc[0]), Tc, pets_Tc, network_spread(critical, "T")))
        rows.append(r.both("rho_c", np.nan, float(critical["rho"].iloc[0]), rho_c, pets_rho_c, network_spread(critical, "rho")))
    else:
        reason = reason_of(critical, "critical_point.csv")
        rows += [r.absent("Tc", reason, literature=Tc, pets=pets_Tc), r.absent("rho_c", reason, literature=rho_c, pets=pets_rho_c)]

    binodal = read_table(analysis_dir, "binodal.csv")
    compared = binodal[binodal["T"] <= BINODAL_MAX_REDUCED_T * Tc] if binodal is not None and not binodal.empty else None
    if compared is None or compared.empty:
        reason = reason_of(critical, "critical_point.csv") if binodal is not None else "binodal.csv not found in the analysis folder"
        rows += [r.absent(q, f"no binodal point at T <= {BINODAL_MAX_REDUCED_T:g} Tc (literature Tc = {Tc:g}): {reason}")
                 for q in (*BULK_ROUTE.values(), *BULK_ROUTE)]
    for _, b in (compared.iterrows() if compared is not None else ()):
        T = float(b["T"])
        lit = ljts.coexistence(T)
        pv = {"rho_vapour": _pets_value(pets, lambda f: f.coexistence(T).rho_vapour), "rho_liquid": _pets_value(pets, lambda f: f.coexistence(T).rho_liquid),
              "vapour_pressure": _pets_value(pets, lambda f: f.coexistence(T).p)}  # PetsFluid caches coexistence per T
        for headline, column, value in (("rho_vapour", "rho_vapour_interface", lit.rho_vapour), ("rho_liquid", "rho_liquid_interface", lit.rho_liquid),
                                        ("vapour_pressure", "p_interface", lit.p)):
            if column in b and np.isfinite(b[column]):
                rows.append(r.both(headline, T, float(b[column]), value, pv[headline], "free interface plateaus"))
            else:
                rows.append(r.absent(headline, "no free interface solved at this binodal temperature", T, value, pv[headline]))
        for bulk, headline in BULK_ROUTE.items():
            column = {"rho_vapour": "rho_vapour", "rho_liquid": "rho_liquid", "vapour_pressure": "p"}[headline]
            value = {"rho_vapour": lit.rho_vapour, "rho_liquid": lit.rho_liquid, "vapour_pressure": lit.p}[headline]
            rows.append(r.both(bulk, T, float(b[column]), value, pv[headline], "bulk equal mu and p"))

    interface = read_table(analysis_dir, "interface.csv")
    if found(interface):
        T = float(interface["T"].iloc[0])
        literature = _literature(ljts.surface_tension, T)
        pets_gamma = _pets_value(pets, lambda f: f.surface_tension(T).gamma)
        if np.isfinite(literature):
            rows.append(r.both("surface_tension", T, float(interface["gamma"].iloc[0]), literature, pets_gamma))
        else:
            rows.append(r.pets_only("surface_tension", T, float(interface["gamma"].iloc[0]), pets_gamma,
                                    f"the interface's T is at or above the literature Tc = {Tc:g}"))
    else:
        rows.append(r.absent("surface_tension", reason_of(interface, "interface.csv")))

    rows += _widom_rows(read_table(analysis_dir, "widom.csv"), pets, analysis_dir, r)
    rows += _fisher_widom_rows(read_table(analysis_dir, "fisher_widom.csv"), r)
    return rows


def _widom_rows(widom, pets, analysis_dir: Path, r: _LjRows) -> list[dict[str, Any]]:
    """S(0)-isotherm maxima in rho at the analysis' T, chi_T-isobar maxima in T at its p: FeOs PeTS only."""
    if widom is None or widom.empty:
        reason = widom_missing_reason(widom, analysis_dir)
        return [r.absent(quantity, reason) for quantity in WIDOM_QUANTITIES.values()]
    pets_Tc = _pets_value(pets, lambda f: f.critical_point()[0])
    rows = []
    for _, w in widom.iterrows():
        T, definition = float(w["T"]), w["definition"]
        quantity = WIDOM_QUANTITIES.get(definition)
        if quantity is None:  # xi and c_p lines: no counterpart computed here
            continue
        if definition == "S(0) isotherm":
            rows.append(r.pets_only(quantity, T, float(w["rho"]), _pets_value(pets, lambda f: f.s0_isotherm_maximum(T).rho), NO_WIDOM_LITERATURE))
        else:
            p = float(w["p"])
            value = _pets_value(pets, lambda f: f.chi_isobar_maximum(p, pets_Tc * (1 + 1e-3), pets_Tc * 1.6).T)
            rows.append(r.pets_only(quantity, T, T, value, NO_WIDOM_LITERATURE, f"p = {p:.6g}"))
    return rows


def _fisher_widom_rows(fisher_widom, r: _LjRows) -> list[dict[str, Any]]:
    """The functional's Fisher-Widom points, listed: there is no reference to compare them with."""
    if fisher_widom is None or fisher_widom.empty or "status" not in fisher_widom:
        return [r.absent("fisher_widom_rho", reason_of(fisher_widom, "fisher_widom.csv"))]
    points = fisher_widom[fisher_widom["status"] == "found"]
    if points.empty:
        return [r.absent("fisher_widom_rho", reason_of(fisher_widom, "fisher_widom.csv"))]
    return [r.pets_only("fisher_widom_rho", float(p["T"]), float(p["rho"]), np.nan, NO_FISHER_WIDOM_REFERENCE) for _, p in points.iterrows()]


def default_pets():
    """FeOs's PeTS fluid, or None where FeOs is not installed (the feos_pets column stays empty)."""
    try:
        from ..fluids.pets import PetsFluid

        return PetsFluid()
    except ImportError:
        return None


def write_reference_comparison(analysis_dir: str | Path, out_dir: str | Path, pets=None) -> list[dict[str, Any]]:
    """reference.csv and reference.png/.svg (binodal and surface tension: functional, literature, FeOs PeTS) in ``out_dir``."""
    from ..plotting import save

    pets = pets if pets is not None else default_pets()
    analysis_dir, out_dir = Path(analysis_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = reference_comparison(analysis_dir, pets)
    write_rows(rows, COLUMNS, out_dir / "reference.csv")
    save(comparison_figure(analysis_dir, pets), out_dir / "reference", formats=("png", "svg"))
    return rows


PETS_STYLE = {"color": "0.5", "ls": ":", "lw": 1.2}  # the second, smooth reference: grey dotted


def comparison_figure(analysis_dir: Path, pets=None):
    """Left: binodal (T vs rho) with critical points; right: gamma(T). Literature black dashed, FeOs PeTS grey
    dotted, the functional coloured."""
    from ..plotting import REFERENCE_STYLE, new_figure

    Tc, rho_c = ljts.critical_point()
    T_ref = Tc * np.concatenate([np.linspace(0.6, 0.97, 30), 1 - np.logspace(-1.5, -3.3, 10)])
    fig, (left, right) = new_figure(2, legend_width=2.8)
    left.plot(list(ljts.rho_vapour(T_ref)) + [rho_c] + list(ljts.rho_liquid(T_ref))[::-1], list(T_ref) + [Tc] + list(T_ref[::-1]),
              **REFERENCE_STYLE, label=f"LJTS literature ({ljts.SOURCE})")
    left.plot(rho_c, Tc, "ko", mfc="none", ms=8, label="literature critical point")
    if pets is not None:
        pets_Tc, pets_rho_c, _ = pets.critical_point()
        T_pets = pets_Tc * np.concatenate([np.linspace(0.6, 0.97, 30), 1 - np.logspace(-1.5, -3.3, 10)])
        coex = [pets.coexistence(float(T)) for T in T_pets]
        left.plot([c.rho_vapour for c in coex] + [pets_rho_c] + [c.rho_liquid for c in coex][::-1], list(T_pets) + [pets_Tc] + list(T_pets[::-1]),
                  **PETS_STYLE, label="FeOs PeTS EOS")
    T_gamma = Tc * np.linspace(0.6, 0.97, 20)
    right.plot(T_gamma, ljts.surface_tension(T_gamma), **REFERENCE_STYLE, label=f"LJTS literature ({ljts.SOURCE})")
    if pets is not None:
        right.plot(T_gamma, [pets.surface_tension(float(T)).gamma for T in T_gamma], **PETS_STYLE, label="FeOs PeTS")
    draw_functional_panels(left, right, analysis_dir)
    return fig
