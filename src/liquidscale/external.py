"""Seeded random planar external potentials acting on the density site.

A potential is a list of JSON-serialisable *terms* in a periodic box of length ``L`` along z, each
giving beta*V(z) (in units of kT, so the same description scales with the run's temperature):

* ``fourier``: ``amplitude * cos(2 pi n z / L + phase)``;
* ``piecewise_linear``: periodic linear interpolation between ``knots`` (z) and ``values``;
* ``soft_wall``: a slab of half-thickness ``half_width`` around ``center`` with a smooth
  (logistic, width ``softness``) edge of height ``amplitude``;
* ``hard_wall``: the same slab with ``+inf`` inside (the exact hard wall the 1D hard-rod data uses).

In a periodic box a slit pore of width H is the complement of a wall slab of thickness L - H, so
:func:`slit` builds a wall term rather than adding a fifth kind.

Every run stores :meth:`ExternalPotential.to_dict`, so the potential it used can be rebuilt exactly.
Grid evaluation works on numpy or torch arrays alike (the term formulas only use functions both
share), so MD evaluates energy and force on particle z positions in torch without copies to numpy.

Hard walls in MD: an infinite step has no force, so MD replaces each hard wall by a soft wall of
height ``md_wall_height`` kT and edge width ``md_wall_softness`` centred on the hard edge
(:meth:`ExternalPotential.finite`). At the edge beta*V = height/2, so the density inside is
suppressed by at least exp(-height/2); MD runs store this finite potential (the one they sampled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UserError

KINDS = ("fourier", "piecewise_linear", "soft_wall", "hard_wall")


@dataclass(frozen=True)
class ExternalPotential:
    """beta*V_ext(z) as a sum of terms, periodic in ``length`` (the box length along z)."""

    length: float
    terms: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.length > 0:
            raise UserError(f"external potential: box length must be positive, got {self.length}")
        for term in self.terms:
            if term.get("kind") not in KINDS:
                raise UserError(f"external potential: unknown term kind {term.get('kind')!r}; known: {', '.join(KINDS)}")

    @property
    def has_hard_wall(self) -> bool:
        return any(t["kind"] == "hard_wall" for t in self.terms)

    def to_dict(self) -> dict[str, Any]:
        return {"length": float(self.length), "terms": [dict(t) for t in self.terms]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExternalPotential":
        return cls(length=float(data["length"]), terms=tuple(dict(t) for t in data["terms"]))

    def finite(self, md_wall_height: float = 30.0, md_wall_softness: float = 0.02) -> "ExternalPotential":
        """The same potential with every hard wall replaced by a steep soft wall (what MD can integrate)."""
        terms = []
        for term in self.terms:
            if term["kind"] == "hard_wall":
                term = {**term, "kind": "soft_wall", "amplitude": float(md_wall_height), "softness": float(md_wall_softness)}
            terms.append(term)
        return ExternalPotential(self.length, tuple(terms))

    def beta_v(self, z):
        """beta*V_ext at positions ``z`` (numpy or torch array); ``+inf`` inside hard walls."""
        return self.beta_v_and_derivative(z)[0]

    def beta_v_and_derivative(self, z):
        """(beta*V, d(beta*V)/dz) at ``z``; the derivative is 0 inside hard walls (no force there)."""
        value = z * 0.0
        slope = z * 0.0
        for term in self.terms:
            v, dv = _TERM_FUNCTIONS[term["kind"]](term, z, self.length)
            value = value + v
            slope = slope + dv
        return value, slope


def _periodic_distance(z, center: float, length: float):
    """Signed minimum-image distance z - center in a periodic box."""
    d = z - center
    return d - length * _floor(d / length + 0.5)


def _floor(x):
    return np.floor(x) if isinstance(x, np.ndarray | float | np.floating) else x.floor()


def _sign(x):
    return np.sign(x) if isinstance(x, np.ndarray | float | np.floating) else x.sign()


def _fourier(term: Mapping[str, Any], z, length: float):
    k = 2.0 * math.pi * term["n"] / length
    phase = k * z + term["phase"]
    a = term["amplitude"]
    if isinstance(z, np.ndarray):
        return a * np.cos(phase), -a * k * np.sin(phase)
    return a * phase.cos(), -a * k * phase.sin()


def _piecewise_linear(term: Mapping[str, Any], z, length: float):
    knots = np.asarray(term["knots"], dtype=float)
    values = np.asarray(term["values"], dtype=float)
    order = np.argsort(knots % length)
    knots, values = knots[order] % length, values[order]
    # one periodic image on each side so every z in [0, L) lies between two knots
    knots = np.concatenate([[knots[-1] - length], knots, [knots[0] + length]])
    values = np.concatenate([[values[-1]], values, [values[0]]])
    slopes = np.diff(values) / np.diff(knots)
    zz = z - length * _floor(z / length)
    if isinstance(z, np.ndarray):
        idx = np.clip(np.searchsorted(knots, zz, side="right") - 1, 0, len(slopes) - 1)
        return values[idx] + slopes[idx] * (zz - knots[idx]), slopes[idx]
    import torch

    kt, vt, st = (torch.as_tensor(a, dtype=z.dtype, device=z.device) for a in (knots, values, slopes))
    idx = (torch.searchsorted(kt, zz.contiguous(), right=True) - 1).clamp(0, len(slopes) - 1)
    return vt[idx] + st[idx] * (zz - kt[idx]), st[idx]


def _soft_wall(term: Mapping[str, Any], z, length: float):
    """amplitude * sigmoid((half_width - |d|) / softness): a plateau inside the slab, 0 outside."""
    d = _periodic_distance(z, term["center"], length)
    w = term["softness"]
    x = (term["half_width"] - abs(d)) / w
    if isinstance(z, np.ndarray):
        s = 0.5 * (1.0 + np.tanh(0.5 * x))
    else:
        s = 0.5 * (1.0 + (0.5 * x).tanh())
    value = term["amplitude"] * s
    # d/dz sigmoid(x) = s (1 - s) dx/dz with dx/dz = -sign(d) / w
    return value, -term["amplitude"] * s * (1.0 - s) * _sign(d) / w


def _hard_wall(term: Mapping[str, Any], z, length: float):
    inside = abs(_periodic_distance(z, term["center"], length)) < term["half_width"]
    if isinstance(z, np.ndarray):
        return np.where(inside, np.inf, 0.0), np.zeros_like(z)
    import torch

    return torch.where(inside, math.inf, 0.0).to(z.dtype), torch.zeros_like(z)


_TERM_FUNCTIONS = {
    "fourier": _fourier,
    "piecewise_linear": _piecewise_linear,
    "soft_wall": _soft_wall,
    "hard_wall": _hard_wall,
}


def slit(center: float, width: float, length: float, hard: bool = True, amplitude: float = 0.0, softness: float = 0.0) -> dict:
    """A slit pore of ``width`` centred at ``center``: the wall slab fills the rest of the periodic box."""
    if not 0 < width < length:
        raise UserError(f"external potential: slit width {width} must lie in (0, box length {length})")
    term = {"kind": "hard_wall" if hard else "soft_wall", "center": (center + 0.5 * length) % length, "half_width": 0.5 * (length - width)}
    if not hard:
        term.update(amplitude=float(amplitude), softness=float(softness))
    return term


@dataclass(frozen=True)
class RandomPotentialSettings:
    """How random potentials are drawn; lengths in the system's length unit, amplitudes in kT.

    ``cap`` bounds max |beta*V| of the finite terms together (the drawn amplitudes are scaled down
    when their sum exceeds it), so no run is driven into absurd densities. Each feature is drawn with
    its probability; a run may get none (bulk, V_ext = 0), which the dataset needs too.
    """

    cap: float = 4.0
    max_fourier_modes: int = 4
    p_fourier: float = 0.6
    max_linear_segments: int = 6
    p_linear: float = 0.3
    p_soft_wall: float = 0.2
    p_hard_wall: float = 0.2
    p_slit: float = 0.1
    wall_softness: float = 0.2
    min_wall_thickness: float = 1.0
    max_wall_fraction: float = 0.3

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "RandomPotentialSettings":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise UserError(f"external potential settings: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def random_potential(seed: int | Sequence[int], length: float, settings: RandomPotentialSettings = RandomPotentialSettings()) -> ExternalPotential:
    """Draw one potential from ``seed`` (an int or a sequence such as (config seed, run id))."""
    rng = np.random.default_rng(seed)
    s = settings
    terms: list[dict[str, Any]] = []
    if rng.random() < s.p_fourier:
        for _ in range(rng.integers(1, s.max_fourier_modes + 1)):
            n = int(rng.integers(1, 2 * s.max_fourier_modes + 1))
            terms.append({"kind": "fourier", "n": n, "amplitude": float(rng.uniform(-1, 1) * s.cap), "phase": float(rng.uniform(0, 2 * math.pi))})
    if rng.random() < s.p_linear:
        count = int(rng.integers(2, s.max_linear_segments + 1))
        terms.append({"kind": "piecewise_linear", "knots": sorted(rng.uniform(0, length, count).tolist()), "values": rng.uniform(-s.cap, s.cap, count).tolist()})
    max_half = 0.5 * max(s.min_wall_thickness, s.max_wall_fraction * length)
    if rng.random() < s.p_soft_wall:
        terms.append({"kind": "soft_wall", "center": float(rng.uniform(0, length)), "half_width": float(rng.uniform(0.5 * s.min_wall_thickness, max_half)), "amplitude": float(rng.uniform(0, s.cap)), "softness": s.wall_softness})
    _scale_to_cap(terms, length, s.cap)
    if rng.random() < s.p_hard_wall:
        terms.append({"kind": "hard_wall", "center": float(rng.uniform(0, length)), "half_width": float(rng.uniform(0.5 * s.min_wall_thickness, max_half))})
    elif rng.random() < s.p_slit:
        width = float(rng.uniform(1.0 - s.max_wall_fraction, 1.0) * length - s.min_wall_thickness)
        terms.append(slit(float(rng.uniform(0, length)), max(width, s.min_wall_thickness), length))
    return ExternalPotential(float(length), tuple(terms))


def _scale_to_cap(terms: list[dict[str, Any]], length: float, cap: float) -> None:
    """Scale the finite terms' amplitudes in place so that max |beta*V| on a fine grid is <= cap."""
    if not terms:
        return
    grid = np.linspace(0.0, length, 2001)
    peak = float(np.max(np.abs(ExternalPotential(length, tuple(terms)).beta_v(grid))))
    if peak <= cap:
        return
    factor = cap / peak
    for term in terms:
        if term["kind"] == "piecewise_linear":
            term["values"] = [v * factor for v in term["values"]]
        else:
            term["amplitude"] *= factor


class BatchedExternal:
    """Finite external potentials of B replicas evaluated together in torch (one set of kernels per
    step whatever B is): terms of each kind are packed into zero-padded [B, M] parameter tensors.

    Hard walls must have been made finite (:meth:`ExternalPotential.finite`). Replicas without a
    potential get all-zero parameters. ``select`` keeps rows when the engine drops failed replicas.
    """

    def __init__(self, potentials: Sequence[ExternalPotential | None], dtype, device):
        import torch

        if any(p is not None and p.has_hard_wall for p in potentials):
            raise ValueError("BatchedExternal needs finite potentials; call ExternalPotential.finite() first")
        self.length = torch.tensor([p.length if p is not None else 1.0 for p in potentials], dtype=dtype, device=device)[:, None]
        terms = [list(p.terms) if p is not None else [] for p in potentials]

        def packed(kind: str, keys: Sequence[str]) -> "torch.Tensor":
            rows = [[[float(t[k]) for k in keys] for t in ts if t["kind"] == kind] for ts in terms]
            width = max([len(r) for r in rows] + [1])
            table = torch.zeros(len(rows), width, len(keys), dtype=dtype, device=device)
            for b, row in enumerate(rows):
                if row:
                    table[b, : len(row)] = torch.tensor(row, dtype=dtype)
            return table

        self.fourier = packed("fourier", ("n", "amplitude", "phase"))
        walls = packed("soft_wall", ("center", "half_width", "amplitude", "softness"))
        walls[..., 3] = torch.where(walls[..., 3] > 0, walls[..., 3], torch.ones_like(walls[..., 3]))  # padding: amplitude 0, any width
        self.walls = walls
        self.knots, self.values = self._pack_linear(terms, potentials, dtype, device)

    @staticmethod
    def _pack_linear(terms, potentials, dtype, device):
        """Periodically extended knots/values per replica [B, K] (one piecewise-linear term at most)."""
        import torch

        rows = []
        for ts, pot in zip(terms, potentials):
            linear = [t for t in ts if t["kind"] == "piecewise_linear"]
            if len(linear) > 1:
                raise ValueError("BatchedExternal supports one piecewise-linear term per potential")
            if linear:
                length = pot.length
                knots = np.asarray(linear[0]["knots"], dtype=float) % length
                order = np.argsort(knots)
                knots, values = knots[order], np.asarray(linear[0]["values"], dtype=float)[order]
                rows.append((np.concatenate([[knots[-1] - length], knots, [knots[0] + length]]), np.concatenate([[values[-1]], values, [values[0]]])))
            else:
                rows.append((np.array([0.0, 1.0e9]), np.zeros(2)))
        width = max(len(k) for k, _ in rows)
        # pad by repeating the last knot far away with the last value (zero slope, never reached)
        knots = np.stack([np.concatenate([k, k[-1] + 1.0e9 * np.arange(1, width - len(k) + 1)]) for k, _ in rows])
        values = np.stack([np.concatenate([v, np.full(width - len(v), v[-1])]) for _, v in rows])
        return torch.tensor(knots, dtype=dtype, device=device), torch.tensor(values, dtype=dtype, device=device)

    def select(self, keep: "torch.Tensor") -> None:
        for name in ("length", "fourier", "walls", "knots", "values"):
            setattr(self, name, getattr(self, name)[keep])

    def beta_v_and_derivative(self, z: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """beta*V and its z-derivative at ``z`` [B, n] (row b with replica b's potential)."""
        length = self.length
        # Fourier modes: [B, n, M]
        n, amplitude, phase = (self.fourier[..., k][:, None, :] for k in range(3))
        k = 2.0 * math.pi * n / length[:, :, None]
        arg = k * z[..., None] + phase
        value = (amplitude * arg.cos()).sum(-1)
        slope = (-amplitude * k * arg.sin()).sum(-1)
        # soft walls: amplitude * sigmoid((half_width - |d|) / softness)
        center, half, height, soft = (self.walls[..., k][:, None, :] for k in range(4))
        d = z[..., None] - center
        lz = length[:, :, None]
        d = d - lz * (d / lz + 0.5).floor()
        s = 0.5 * (1.0 + (0.5 * (half - d.abs()) / soft).tanh())
        value = value + (height * s).sum(-1)
        slope = slope - (height * s * (1.0 - s) * d.sign() / soft).sum(-1)
        # piecewise linear (periodic)
        zz = z - length * (z / length).floor()
        idx = (torch_searchsorted(self.knots, zz) - 1).clamp(0, self.knots.shape[1] - 2)
        k0, k1 = self.knots.gather(1, idx), self.knots.gather(1, idx + 1)
        v0, v1 = self.values.gather(1, idx), self.values.gather(1, idx + 1)
        grad = (v1 - v0) / (k1 - k0)
        return value + v0 + grad * (zz - k0), slope + grad


def torch_searchsorted(sorted_rows, values):
    import torch

    return torch.searchsorted(sorted_rows.contiguous(), values.contiguous(), right=True)
