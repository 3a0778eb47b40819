"""Where a learned functional knows anything: its training coverage, and the analysed range inside it.

Training writes ``coverage`` into model.json: the temperature range and, per temperature band, the
bulk-like density its data reach (``density_max``) and the densest profile bin (``density_peak``).
The analysis scans only that range. The config (``analysis.temperature_range.<system>``,
``analysis.density_max.<system>``) can narrow it; a value beyond the coverage is clipped to it and
the clipping is recorded (summary.json, stderr), a temperature range outside it is refused. A model
without coverage (trained before it was recorded) is analysed over its architecture's temperature
range up to the config's density_max (else its training_density_max), and everything is flagged
'coverage unknown'.

Between bands the density limit runs linearly from a band's centre (its density_max) to the band
edge, where it takes the lower of the two neighbours: continuous in T (so a critical-point search
can follow it) and nowhere above the density_max of the band that T lies in.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .bulk import DensityLimit

INSIDE, UNKNOWN = "inside", "coverage unknown"


@dataclass(frozen=True)
class Band:
    T_low: float
    T_high: float
    density_max: float  # bulk-like density the band's data cover
    density_peak: float  # densest profile bin in the band


@dataclass(frozen=True)
class AnalysisRange:
    """The analysed temperatures and density limit, the coverage they were cut from, and what was clipped."""

    T_low: float
    T_high: float
    limit: DensityLimit
    bands: tuple[Band, ...]  # empty: coverage unknown
    notes: tuple[str, ...]

    @property
    def known(self) -> bool:
        return bool(self.bands)

    def band(self, T: float) -> Band | None:
        """The band holding T (the lower-density one on a shared edge), None outside the coverage."""
        holding = [b for b in self.bands if b.T_low * (1 - 1e-12) <= T <= b.T_high * (1 + 1e-12)]
        return min(holding, key=lambda b: b.density_max) if holding else None

    def flag(self, T: float | None = None, density: float | None = None, peak: float | None = None) -> str:
        """'inside', 'coverage unknown', or what lies outside: T, a bulk density above density_max, a profile peak above density_peak.

        Without T it flags a statement about the analysed range as a whole (e.g. 'no transition').
        """
        if not self.known:
            return UNKNOWN
        if T is None:
            return INSIDE
        band = self.band(T)
        if band is None:
            return "beyond temperature range"
        if density is not None and density > band.density_max * (1 + 1e-9):
            return "beyond density_max"
        if peak is not None and peak > band.density_peak * (1 + 1e-9):
            return "beyond density_peak"
        return INSIDE

    def summary(self) -> dict[str, Any]:
        return {"status": "from model.json" if self.known else UNKNOWN, "temperature_range": [self.T_low, self.T_high],
                "bands": [vars(b) for b in self.bands], "clipped": list(self.notes)}


def _band_limit(bands: list[Band], cap: float) -> DensityLimit:
    """Knots at each band's centre (its density_max) and edges (the lower of the bands meeting there)."""
    knots: dict[float, float] = {}

    def knot(T: float, rho: float) -> None:
        knots[T] = min(rho, knots.get(T, math.inf))

    for i, b in enumerate(bands):
        before = bands[i - 1].density_max if i > 0 else b.density_max
        after = bands[i + 1].density_max if i + 1 < len(bands) else b.density_max
        knot(b.T_low, min(before, b.density_max))
        knot(0.5 * (b.T_low + b.T_high), b.density_max)
        knot(b.T_high, min(after, b.density_max))
    T = sorted(knots)
    return DensityLimit(tuple(T), tuple(knots[t] for t in T), cap)


def analysis_range(metadata: Mapping[str, Any], density_max: Mapping[str, Any], temperature_range: Mapping[str, Any]) -> AnalysisRange:
    """The range to analyse from model.json's coverage narrowed by the config; clipping is noted on stderr too."""
    system = metadata["system"]
    cap_config = density_max.get(system)
    T_config = temperature_range.get(system)
    coverage = metadata.get("coverage")
    notes: list[str] = []
    if coverage:
        bands = sorted((Band(float(b["T_low"]), float(b["T_high"]), float(b["density_max"]), float(b["density_peak"]))
                        for b in coverage["temperature_bands"]), key=lambda b: b.T_low)
        T_min, T_max = (float(t) for t in coverage["temperature_range"])
        unit = coverage.get("density_unit", "")
    else:
        bands = []
        T_min, T_max = (float(t) for t in metadata["architecture"]["temperature_range"])
        notes.append("coverage unknown: model.json records no training coverage (an older model); temperatures from the "
                     "architecture's temperature_range")
    T_low, T_high = T_min, T_max
    if T_config is not None:
        T_low, T_high = max(T_min, float(T_config[0])), min(T_max, float(T_config[1]))
        if T_low > T_high:
            raise UserError(f"{system}: analysis.temperature_range = {list(T_config)} lies outside the functional's temperatures [{T_min:g}, {T_max:g}]")
        if (T_low, T_high) != (float(T_config[0]), float(T_config[1])):
            notes.append(f"analysis.temperature_range.{system} = {list(T_config)} reaches beyond the coverage [{T_min:g}, {T_max:g}]: "
                         f"clipped to [{T_low:g}, {T_high:g}]")
    if bands:
        limit = _band_limit(bands, math.inf if cap_config is None else float(cap_config))
        covered = _band_limit(bands, math.inf).lowest(T_low, T_high)
        if cap_config is not None and float(cap_config) > covered:
            notes.append(f"analysis.density_max.{system} = {cap_config:g} exceeds the coverage (density_max down to {covered:g} {unit} "
                         f"in T = [{T_low:g}, {T_high:g}]): clipped to it where it does")
    elif cap_config is not None:
        limit = DensityLimit.constant(float(cap_config))
        notes.append(f"density_max = analysis.density_max.{system} = {cap_config:g}, not checked against any coverage")
    elif metadata.get("training_density_max") is not None:
        limit = DensityLimit.constant(float(metadata["training_density_max"]))
        notes.append(f"density_max = the densest training bin, {limit(T_low):g} (no analysis.density_max.{system} set): "
                     "an upper bound on what the functional has seen, likely beyond its bulk-like data")
    else:
        raise UserError(f"{system}: model.json records neither coverage nor training_density_max; set analysis.density_max.{system}")
    for note in notes:
        print(f"liquidscale analysis ({system}): {note}", file=sys.stderr)
    return AnalysisRange(T_low, T_high, limit, tuple(bands), tuple(notes))
