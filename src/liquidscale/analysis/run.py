"""The analysis of one system: from a trained functional to tables, a summary and figures.

Each part that cannot be computed (no transition, rough functional, solver failure) is recorded with
its reason in ``summary.json`` and in the tables' ``status``/``reason`` columns instead of stopping the
run or inventing a number. Everything is computed inside the functional's training coverage
(``coverage.analysis_range``); each table's ``coverage`` column (eos.nc: ``covered``) says whether a
value lies inside it, beyond it, or that the model records none. Output files (all under the output folder):

    eos.nc                  beta mu, beta p, p, S(0) on a (T, rho) grid (NaN beyond each isotherm's density_max)
    binodal.csv             coexisting densities, spinodal, mu and p along T (+ K, kg/m^3, MPa)
    critical_point.csv      Tc, rho_c, p_c or the reason there is none
    widom.csv               Widom lines, one row per point, labelled by definition
    fisher_widom.csv        Fisher-Widom line (T, rho) or the reason per temperature
    interface.csv / .nc     free liquid-vapour interface: plateau vs bulk densities, surface tension
    pores.csv / pore_isotherms.csv   capillary coexistence per width, Kelvin comparison, both branches
    experiment.csv          (water, co2) differences from the experimental saturation data
    profiles.nc             example test profiles: simulated vs functional
    summary.json            what was found, what was not and why, timings, provenance
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import atomic_path, write_json
from .bulk import NotFound, PhaseDiagram, functional_excess, phase_diagram
from .coverage import AnalysisRange, analysis_range


@dataclass(frozen=True)
class AnalysisSettings:
    """The validated ``analysis`` config section (meanings and defaults: workflow/schemas/config.schema.yaml)."""

    isotherms: int
    binodal_points: int
    chebyshev_degree: int
    eos_densities: int
    density_max: Mapping[str, float | None]
    temperature_range: Mapping[str, list[float] | None]
    widom: Mapping[str, Any]
    poles: Mapping[str, Any]
    fisher_widom: Mapping[str, Any]
    interface: Mapping[str, Any]
    pores: Mapping[str, Any]
    example_profiles: int

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "AnalysisSettings":
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})


def _timed(timings: dict[str, float], name: str, start: float) -> None:
    timings[name] = round(time.perf_counter() - start, 3)


def write_eos(path: Path, diagram: PhaseDiagram, rho: np.ndarray, k_B: float, units: Mapping[str, str], provenance: Mapping[str, Any],
              domain: AnalysisRange) -> None:
    """The EOS on one (T, rho) grid; beyond an isotherm's own density_max nothing is known, so NaN there."""
    import json

    import xarray as xr

    T = np.array([iso.T for iso in diagram.isotherms])
    analysed = np.array([rho <= iso.rho_max * (1 + 1e-12) for iso in diagram.isotherms])

    def table(quantity: str) -> np.ndarray:
        return np.where(analysed, np.array([getattr(iso, quantity)(np.minimum(rho, iso.rho_max)) for iso in diagram.isotherms]), np.nan)

    beta_mu, beta_p, slope = table("beta_mu"), table("beta_p"), table("dbeta_p")
    covered = np.array([[domain.flag(t, density=r) == "inside" for r in rho] for t in T]) & analysed
    energy, length, dim = units["energy_unit"], units["length_unit"], units["dimension"]
    ds = xr.Dataset(
        {
            "beta_mu": (("T", "rho"), beta_mu, {"units": "1", "long_name": "beta mu (thermal wavelength absorbed)"}),
            "beta_p": (("T", "rho"), beta_p, {"units": f"{length}^-{dim}", "long_name": "beta p"}),
            "mu": (("T", "rho"), beta_mu * k_B * T[:, None], {"units": energy, "long_name": "chemical potential"}),
            "p": (("T", "rho"), beta_p * k_B * T[:, None], {"units": f"{energy} {length}^-{dim}", "long_name": "pressure"}),
            "S0": (("T", "rho"), 1.0 / slope, {"units": "1", "long_name": "S(0) = 1 / (d beta p / d rho); negative inside the spinodal"}),
            "fit_error": (("T",), [iso.fit_error for iso in diagram.isotherms], {"units": "1", "long_name": "max Chebyshev interpolation error of beta mu_ex"}),
            "density_max": (("T",), [iso.rho_max for iso in diagram.isotherms], {"units": f"{length}^-{dim}", "long_name": "highest analysed density (training coverage, narrowed by the config)"}),
            "covered": (("T", "rho"), covered, {"long_name": "inside the functional's training coverage (false everywhere when the model records none)"}),
        },
        coords={
            "T": ("T", T, {"units": units["temperature_unit"], "long_name": "temperature"}),
            "rho": ("rho", rho, {"units": f"{length}^-{dim}", "long_name": "number density of the density site"}),
        },
        attrs={"provenance": json.dumps(dict(provenance), sort_keys=True, default=str), "k_B": k_B,
               "coverage": domain.summary()["status"], "coverage_notes": "; ".join(domain.notes)},
    )
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)


def network_critical_points(networks, temperatures: np.ndarray, domain: AnalysisRange, settings: AnalysisSettings) -> list[dict[str, Any]]:
    """The critical point of each network of an ensemble functional, located as the ensemble's is (same isotherms and
    density range): their spread is what one training leaves undetermined. A network without one gives its reason."""
    records = []
    for network in networks:
        diagram = phase_diagram(functional_excess(network), temperatures, domain.limit, 2, settings.chebyshev_degree)
        crit = diagram.critical_estimate
        records.append({"T": crit.T, "rho": crit.rho} if crit is not None else {"reason": diagram.reason})
    return records


def run_analysis(functional, metadata: Mapping[str, Any], settings: AnalysisSettings, out_dir: Path, provenance: Mapping[str, Any],
                 profiles=None) -> dict[str, Any]:
    """Everything for one system; returns the summary written to ``summary.json``."""
    from . import pipeline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system = metadata["system"]
    k_B = float(metadata["k_B"])
    units = {k: metadata[k] for k in ("length_unit", "energy_unit", "temperature_unit", "dimension")}
    domain = analysis_range(metadata, settings.density_max, settings.temperature_range)
    T_low, T_high = domain.T_low, domain.T_high
    temperatures = np.linspace(T_low, T_high, settings.isotherms) if T_high > T_low else np.array([T_low])
    rho_max = max(domain.limit(float(T)) for T in temperatures)
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"system": system, "units": units, "k_B": k_B, "density_max": rho_max,
                                "temperature_range": [T_low, T_high], "coverage": domain.summary(), "provenance": dict(provenance)}

    start = time.perf_counter()
    excess = functional_excess(functional)
    try:
        diagram = phase_diagram(excess, temperatures, domain.limit, settings.binodal_points, settings.chebyshev_degree)
    except NotFound as exc:
        raise UserError(f"{system}: the bulk equation of state cannot be analysed: {exc}") from None
    _timed(timings, "bulk_and_binodal", start)
    summary["bulk"] = {"status": diagram.status, "reason": diagram.reason, "binodal_points": len(diagram.binodal),
                       "critical_point": asdict(diagram.critical) if diagram.critical else None,
                       "max_fit_error": max(iso.fit_error for iso in diagram.isotherms)}
    networks = getattr(functional, "members", None)
    if networks is not None:
        start = time.perf_counter()
        summary["bulk"]["critical_point_of_each_network"] = network_critical_points(networks, temperatures, domain, settings)
        _timed(timings, "critical_point_of_each_network", start)
    rho_grid = rho_max * np.arange(1, settings.eos_densities + 1) / settings.eos_densities
    write_eos(out_dir / "eos.nc", diagram, rho_grid, k_B, units, provenance, domain)
    start = time.perf_counter()
    pipeline.write_binodal(out_dir, system, diagram, k_B, domain, pipeline.interface_coexistence(functional, excess, diagram, settings, domain, k_B),
                           summary["bulk"].get("critical_point_of_each_network"))
    _timed(timings, "binodal_by_free_interfaces", start)

    start = time.perf_counter()
    summary["supercritical"] = pipeline.supercritical(functional, excess, diagram, settings, domain, k_B, out_dir, system)
    _timed(timings, "widom_and_fisher_widom", start)

    start = time.perf_counter()
    summary["interface"] = pipeline.interface(functional, excess, diagram, settings, domain, out_dir, system, k_B, units)
    _timed(timings, "free_interface", start)

    start = time.perf_counter()
    summary["pores"] = pipeline.pores(functional, excess, diagram, settings, domain, k_B, out_dir, system, summary["interface"])
    _timed(timings, "pores", start)

    summary["experiment"] = pipeline.experiment(out_dir, system, diagram, k_B)
    if profiles is not None:
        start = time.perf_counter()
        summary["profiles"] = pipeline.example_profiles(functional, profiles, settings, out_dir, k_B, rho_max, metadata.get("training_density_max", np.inf))
        _timed(timings, "example_profiles", start)
    start = time.perf_counter()
    from .figures import make_figures

    make_figures(out_dir, system, units)
    _timed(timings, "figures", start)
    summary["timings_s"] = timings
    write_json(out_dir / "summary.json", summary)
    return summary


__all__ = ["AnalysisSettings", "NotFound", "run_analysis"]
