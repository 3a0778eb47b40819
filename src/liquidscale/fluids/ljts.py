"""The LJTS fluid (Lennard-Jones truncated and shifted at 2.5 sigma): its published vapour-liquid coexistence.

The ``lj`` system samples exactly this fluid (``md.potential``, LAMMPS ``lj/cut`` with ``pair_modify shift
yes``, cutoff 2.5), so its learned phase diagram is compared with these literature values
(``analysis.lj_reference``). Reduced units (sigma = epsilon = k_B = 1): densities in sigma^-3, T in
epsilon/k_B, p in epsilon/sigma^3, gamma in epsilon/sigma^2.

* ``vrabec2006`` (the reference): J. Vrabec et al., Mol. Phys. 104 (2006), doi:10.1080/00268970600556774,
  correlations of their MD results: rho' and rho'' (eqs. 4, 5), the vapour pressure, the planar surface
  tension (eq. 15); Tc = 1.0779, rho_c = 0.3190.
* ``thol2015``: the ancillary equations of the LJTS equation of state of M. Thol et al., Int. J. Thermophys.
  36 (2015), doi:10.1007/s10765-014-1764-4 (Tc = 1.086, rho_c = 0.319, p_c = 0.101): a second, independent
  fit, used to check the transcription (the two agree to 0.4 % in rho', 2.6 % in rho'' and 2.2 % in p_sat
  at 0.7 <= T <= 1.0, ``tests/test_ljts.py``).

The coefficients live in ``data/reference/ljts_correlations.csv``, whose header says where they were
transcribed from (ls1-mardyn's post-processing tools; the papers were not read). No Widom or Fisher-Widom
line of this fluid was found in a stored source: none is given here.

The correlations are fits to simulations: near Tc they carry the fit's critical point, not a measured one,
and their range of validity is not stated in the transcription (the comparisons stop at 0.95 Tc).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CORRELATIONS = Path(__file__).resolve().parents[1] / "data" / "reference" / "ljts_correlations.csv"
CUTOFF = 2.5  # the potential's cutoff, sigma, the correlations are for
SOURCE = "Vrabec et al. 2006"


@dataclass(frozen=True)
class LjtsCoexistence:
    T: float
    rho_vapour: float
    rho_liquid: float
    p: float


@lru_cache(maxsize=1)
def coefficients() -> dict[tuple[str, str], dict[str, np.ndarray | float]]:
    """(source, property) -> {parameter: value} from the CSV; space-separated lists become arrays."""
    import pandas as pd

    table = pd.read_csv(CORRELATIONS, comment="#", dtype=str)
    out: dict[tuple[str, str], dict[str, np.ndarray | float]] = {}
    for row in table.itertuples(index=False):
        values = np.array([float(v) for v in row.value.split()])
        out.setdefault((row.source, row.property), {})[row.parameter] = values if values.size > 1 else float(values[0])
    return out


def critical_point(source: str = "vrabec2006") -> tuple[float, float]:
    """(Tc, rho_c) of a correlation."""
    c = coefficients()[(source, "critical_point")]
    return float(c["Tc"]), float(c["rho_c"])


def _below_tc(T, Tc: float) -> np.ndarray:
    T = np.asarray(T, dtype=float)
    if np.any(T >= Tc) or np.any(T <= 0):
        raise ValueError(f"the LJTS coexistence correlation is defined for 0 < T < Tc = {Tc:g}, not T = {T}")
    return T


def rho_liquid(T):
    """Saturated liquid density rho'(T) (Vrabec et al. 2006, eq. 4)."""
    Tc, rho_c = critical_point()
    c = coefficients()[("vrabec2006", "rho_liquid")]
    dt = Tc - _below_tc(T, Tc)
    return rho_c + c["a"] * dt ** (1 / 3) + c["b"] * dt + c["c"] * dt**1.5


def rho_vapour(T):
    """Saturated vapour density rho''(T) (Vrabec et al. 2006, eq. 5)."""
    Tc, rho_c = critical_point()
    c = coefficients()[("vrabec2006", "rho_vapour")]
    dt = Tc - _below_tc(T, Tc)
    return rho_c - c["a"] * dt ** (1 / 3) + c["b"] * dt + c["c"] * dt**1.5


def vapour_pressure(T):
    """Vapour pressure p_sat(T): ln p_sat = a - b/T + c/T^3 (Vrabec et al. 2006)."""
    Tc, _ = critical_point()
    c = coefficients()[("vrabec2006", "p_sat")]
    T = _below_tc(T, Tc)
    return np.exp(c["a"] - c["b"] / T + c["c"] / T**3)


def surface_tension(T):
    """Planar vapour-liquid surface tension gamma(T) = a (1 - T/Tc)^b (Vrabec et al. 2006, eq. 15)."""
    Tc, _ = critical_point()
    c = coefficients()[("vrabec2006", "surface_tension")]
    return c["a"] * (1 - _below_tc(T, Tc) / Tc) ** c["b"]


def coexistence(T: float) -> LjtsCoexistence:
    """Vrabec et al.'s coexisting densities and vapour pressure at one T < Tc."""
    return LjtsCoexistence(float(T), float(rho_vapour(T)), float(rho_liquid(T)), float(vapour_pressure(T)))


def thol2015_coexistence(T: float) -> LjtsCoexistence:
    """The same from the ancillary equations of Thol et al. 2015 (a second, independent fit)."""
    co = coefficients()
    crit = co[("thol2015", "critical_point")]
    Tc, rho_c, p_c = float(crit["Tc"]), float(crit["rho_c"]), float(crit["p_c"])
    tau = 1 - float(_below_tc(T, Tc)) / Tc

    def series(prop: str) -> float:
        c = co[("thol2015", prop)]
        return float(np.sum(c["n"] * tau ** c["t"]))

    return LjtsCoexistence(float(T), rho_c * (1 + series("rho_vapour")), rho_c * np.exp(series("rho_liquid")),
                           p_c * np.exp(Tc / float(T) * series("p_sat")))
