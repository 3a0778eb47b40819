"""The liquid's g(r) beside published values: its first shell's peak and minimum, and the published rows that match.

Verification rung 4 compares the functional with direct MD of the same MLIP; the MLIP itself is only as good as
its DFT labels. So the slab's g(r) is put beside published DFT-MD of the same functional where one exists, and
beside experiment and other potentials as context. ``data/reference/rdf_peaks.csv`` holds the published numbers
(its header says where each was found); a row is "same functional" only when its exchange-correlation functional
is the campaign's ``reference.method.xc`` and its dispersion correction of the same family (D3 with any damping
is one family): every other row is labelled what it is, never a target.

First shell of a binned g(r): the highest point of the 3-bin moving average (the first peak of a liquid's
site-site g(r), the deepest minimum after it the first minimum), each refined by a least-squares parabola through
the raw bins around it (those within ``WINDOW_FRACTION`` of the peak's height above the minimum, of the minimum's
depth below the next maximum). A peak counts
only when it stands ``CLEAR_SIGMAS`` noise levels above 1, a minimum only when it lies that far below 1 and g rises
again after it by as much (a dense liquid's first minimum is below 1; a gas-like g decays onto 1 without one), the
noise being the robust scatter of the bins about their moving average; otherwise the numbers are NaN and the
reason says why. The parabola's vertex sits a little outward of an asymmetric peak's top (steep inside, slow
outside): on the exact dilute-limit LJ g(r) = exp(-u/kT) (kT = epsilon, 0.02 sigma bins) it reads the peak
0.011 sigma (1 %) outward and 0.6 % low (tests/test_coexistence_rdf.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

PUBLISHED_PEAKS = Path(__file__).resolve().parents[1] / "data" / "reference" / "rdf_peaks.csv"
# a published row matches a slab temperature within this many kelvin of its temperature range
TEMPERATURE_WINDOW_K = 30.0
# a peak (minimum) must rise above (fall below) its surroundings by this many noise levels to count
CLEAR_SIGMAS = 4.0
# the parabola is fitted to the bins within this fraction of the peak-to-minimum depth from the extremum
WINDOW_FRACTION = 0.2
SAME_FUNCTIONAL = "same functional"
OTHER_FUNCTIONAL = "other functional"
PUBLISHED_VALUES = ("r_peak", "r_peak_error", "g_peak", "g_peak_error", "r_min", "g_min", "coordination", "coordination_error")
REFERENCE_COLUMNS = ("system", "pair", "source", "label", "kind", "xc", "dispersion", "T_min_K", "T_max_K", *PUBLISHED_VALUES, "coordination_radius", "citation")
PEAK_TABLE_COLUMNS = ("T", "r_peak", "g_peak", "r_min", "g_min", "coordination_at_min", "reason", "relation", "source", "label", "kind", "functional",
                      "published_T_min", "published_T_max", *(f"published_{name}" for name in PUBLISHED_VALUES), "coordination_radius",
                      "coordination_at_radius", "citation")


@dataclass(frozen=True)
class FirstShell:
    """The first peak and first minimum of a g(r); NaN where there is none, ``reason`` says why ('' when both found)."""

    r_peak: float
    g_peak: float
    r_min: float
    g_min: float
    reason: str


def first_shell(r: np.ndarray, g: np.ndarray) -> FirstShell:
    """Peak and first minimum of g(r) on bin centres ``r`` (see the module docstring)."""
    r, g = np.asarray(r, dtype=float), np.asarray(g, dtype=float)
    finite = np.isfinite(g)
    if finite.sum() < 5:
        return _none("no g(r) (no liquid plateau at this temperature)")
    r, g = r[finite], g[finite]
    smooth = np.convolve(np.pad(g, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    noise = _noise(g, smooth)
    peak = int(np.argmax(smooth))
    if peak >= len(g) - 2:
        return _none(f"no peak: g(r) is highest at the end of the range (r = {r[-1]:.4g}); rdf_max too short")
    if smooth[peak] - 1.0 < CLEAR_SIGMAS * noise or smooth[peak] <= 1.0:
        return _none(f"no clear peak: the highest g ({smooth[peak]:.3g} at r = {r[peak]:.4g}) is within {CLEAR_SIGMAS:g} noise levels ({noise:.2g}) of 1")
    minimum = peak + 1 + int(np.argmin(smooth[peak + 1:]))
    reason = ""
    if minimum >= len(g) - 2 or smooth[minimum:].max() - smooth[minimum] < CLEAR_SIGMAS * noise:
        reason = f"no first minimum: g(r) does not rise again beyond the noise ({noise:.2g}) after its peak up to r = {r[-1]:.4g} (rdf_max too short, or no shell structure)"
    elif smooth[minimum] > 1.0 - CLEAR_SIGMAS * noise:
        reason = f"no first minimum: g(r) stays within {CLEAR_SIGMAS:g} noise levels ({noise:.2g}) of 1 or above after its peak (a gas-like g, no second shell)"
    if reason:
        depth = smooth[peak] - 1.0
    else:
        depth = smooth[peak] - smooth[minimum]
    r_peak, g_peak = _vertex(r, g, smooth, peak, WINDOW_FRACTION * depth)
    if reason:
        return FirstShell(r_peak, g_peak, math.nan, math.nan, reason)
    r_min, g_min = _vertex(r, g, smooth, minimum, WINDOW_FRACTION * (smooth[minimum:].max() - smooth[minimum]))
    return FirstShell(r_peak, g_peak, r_min, g_min, "")


def _noise(g: np.ndarray, smooth: np.ndarray) -> float:
    """Standard deviation of a bin's g from the median absolute scatter about the 3-bin moving average (a bin's
    residual has 2/3 of its variance), over the bins that hold pairs with both neighbours (not the empty core)."""
    occupied = (g > 0) & (np.roll(g, 1) > 0) & (np.roll(g, -1) > 0)
    occupied[[0, -1]] = False
    residual = (g - smooth)[occupied]
    if residual.size < 3:
        return 0.0
    return 1.4826 * float(np.median(np.abs(residual - np.median(residual)))) / math.sqrt(2.0 / 3.0)


def _vertex(r: np.ndarray, g: np.ndarray, smooth: np.ndarray, centre: int, band: float) -> tuple[float, float]:
    """Vertex of the least-squares parabola through the raw bins next to ``centre`` whose moving average lies within
    ``band`` of the centre's (at least one bin each side); the centre bin and its moving average where the parabola
    is not curved the extremum's way or its vertex leaves the window (noise on a flat top)."""
    low = high = centre
    while low > 0 and abs(smooth[low - 1] - smooth[centre]) <= band:
        low -= 1
    while high < len(g) - 1 and abs(smooth[high + 1] - smooth[centre]) <= band:
        high += 1
    low, high = min(low, centre - 1), max(high, centre + 1)
    a, b, c = np.polyfit(r[low:high + 1] - r[centre], g[low:high + 1], 2)
    is_peak = smooth[centre] >= smooth[low] and smooth[centre] >= smooth[high]
    shift = -b / (2.0 * a) if a != 0 else math.inf
    if (a < 0) != is_peak or not r[low] <= r[centre] + shift <= r[high]:
        return float(r[centre]), float(smooth[centre])
    return float(r[centre] + shift), float(c - b * b / (4.0 * a))


def _none(reason: str) -> FirstShell:
    return FirstShell(math.nan, math.nan, math.nan, math.nan, reason)


def coordination_number(edges: np.ndarray, g: np.ndarray, density: float, radius: float) -> float:
    """Mean number of sites within ``radius``: 4 pi rho integral_0^radius g r^2 dr over the shells ``edges`` (the
    shell that holds ``radius`` counted by the fraction of its volume inside); NaN beyond the range or without g."""
    edges, g = np.asarray(edges, dtype=float), np.asarray(g, dtype=float)
    if not (math.isfinite(radius) and math.isfinite(density)) or radius > edges[-1] or not np.isfinite(g).all():
        return math.nan
    inner = np.minimum(edges[:-1], radius)
    outer = np.minimum(edges[1:], radius)
    return float(density * 4.0 / 3.0 * math.pi * (g * (outer**3 - inner**3)).sum())


def published_peaks(system: str, path: Path = PUBLISHED_PEAKS):
    """The published rows of ``system`` (pandas DataFrame, maybe empty)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, comment="#")
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable published g(r) table ({error}); reinstall liquidscale") from None
    missing = [column for column in REFERENCE_COLUMNS if column not in table.columns]
    if missing:
        raise UserError(f"{path}: published g(r) table lacks the columns {missing}; reinstall liquidscale")
    return table[table["system"] == system].reset_index(drop=True)


def relation(row, method: dict | None) -> str:
    """What a published row is to this campaign: 'same functional' (its xc is reference.method.xc and its dispersion
    the same family, D3 with any damping one family), 'other functional', or its kind (experiment, force field)."""
    if row.kind != "dft-md":
        return str(row.kind)
    if method and str(row.xc).lower() == str(method.get("xc")).lower() and _dispersion_family(row.dispersion) == _dispersion_family(method.get("dispersion")):
        return SAME_FUNCTIONAL
    return OTHER_FUNCTIONAL


def _dispersion_family(name) -> str:
    """'d3' for d3, d3bj, d3zero, d3(bj), ...; 'none' for none; the name otherwise."""
    if name is None or (isinstance(name, float) and math.isnan(name)) or str(name).lower() in ("", "none", "null"):
        return "none"
    text = str(name).lower().replace("-", "")
    return "d3" if text.startswith("d3") else text


def matching_rows(table, T: float):
    """The published rows whose temperature range reaches within TEMPERATURE_WINDOW_K of ``T``."""
    return table[(table["T_min_K"] - TEMPERATURE_WINDOW_K <= T) & (T <= table["T_max_K"] + TEMPERATURE_WINDOW_K)]


def peak_table(method: dict | None, edges: np.ndarray, liquids, published):
    """``rdf_peaks.csv`` from ``liquids``, (T, g on the shells ``edges``, liquid density) per temperature: the measured
    first shell (and the coordination number up to its minimum), one row per published value within
    TEMPERATURE_WINDOW_K beside it (with the measured coordination number at the published radius where the row
    gives one), or one row saying there is none."""
    import pandas as pd

    centres = 0.5 * (edges[1:] + edges[:-1])
    rows = []
    for T, g, density in liquids:
        shell = first_shell(centres, g)
        measured = {"T": T, "r_peak": shell.r_peak, "g_peak": shell.g_peak, "r_min": shell.r_min, "g_min": shell.g_min,
                    "coordination_at_min": coordination_number(edges, g, density, shell.r_min), "reason": shell.reason}
        matches = matching_rows(published, T)
        if matches.empty:
            rows.append({**measured, "relation": f"none: no published value within {TEMPERATURE_WINDOW_K:g} K in {PUBLISHED_PEAKS.name}"})
        for row in matches.itertuples():
            rows.append({**measured, "relation": relation(row, method), "source": row.source, "label": row.label, "kind": row.kind,
                         "functional": _functional(row), "published_T_min": row.T_min_K, "published_T_max": row.T_max_K,
                         **{f"published_{name}": getattr(row, name) for name in PUBLISHED_VALUES},
                         "coordination_radius": row.coordination_radius,
                         "coordination_at_radius": coordination_number(edges, g, density, row.coordination_radius), "citation": row.citation})
    return pd.DataFrame(rows, columns=PEAK_TABLE_COLUMNS)


def _functional(row) -> str:
    if row.kind != "dft-md":
        return ""
    return f"{row.xc}-{row.dispersion}" if _dispersion_family(row.dispersion) != "none" else str(row.xc)
