"""Batched BAOAB Langevin dynamics of B replicas with the same atoms, in torch.

Why one engine for many replicas: the DeePMD model evaluates several frames per call, so B short
runs of the same composition share every model call. Each replica has its own temperature, random
stream (seed), box and external potential, and fails alone: a replica that blows up is removed from
the batch with its reason while the others go on.

Integrator (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34): per step of length dt
  B: v += dt/2 a;  A: x += dt/2 v;  O: v = c v + sqrt((1 - c^2) kT / m) xi, c = exp(-gamma dt);
  A: x += dt/2 v;  forces;  B: v += dt/2 a.
With ``friction = 0`` it is velocity Verlet (NVE). Configurational sampling is exact to O(dt^2) and
insensitive to gamma; gamma ~ 1-10 / ps (water) or ~1 / tau (LJ) is a good default.

Timestep and masses: real masses (u) from ``liquidscale.molecules``; 0.5 fs for water with real H
masses (O-H stretch period ~9 fs), 1 fs for CO2, 0.005 tau for LJ. Hydrogen mass repartitioning is
available through ``masses`` (pass H = 2-4 u, the partner's mass reduced by the same amount), which
leaves configurational averages unchanged and allows ~1 fs for water.

The external potential acts on the density-site atoms only: V = kT_b * betaV_b(z_i) summed over
sites of replica b. Hard walls become steep soft walls (``ExternalPotential.finite``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..external import BatchedExternal, ExternalPotential
from ..logs import MDProgress
from .neighbours import batched_pairs
from .potential import Potential, Units, check_box


@dataclass(frozen=True)
class FailureChecks:
    """Per-replica blow-up detection, run every ``every`` steps.

    ``min_distance``: atoms of different molecules closer than this (length unit) mean a collapse;
    ``max_temperature_ratio``: kinetic / target temperature above this (plus five standard deviations
    of its equilibrium fluctuation, so small systems are not failed for noise) means a runaway; ``molecule``:
    a ``liquidscale.molecules.Molecule`` whose bonds must stay intact (None for atomic fluids).
    """

    every: int = 50
    min_distance: float = 0.6
    max_temperature_ratio: float = 2.0
    molecule: object | None = None


class LangevinEngine:
    """B replicas of one composition (``symbols``) in orthorhombic periodic boxes, integrated together."""

    def __init__(
        self,
        potential: Potential,
        symbols: Sequence[str],
        masses: Sequence[float],
        site_mask: Sequence[bool],
        positions: np.ndarray,
        cell_lengths: np.ndarray,
        temperatures: Sequence[float],
        seeds: Sequence[int],
        units: Units,
        timestep: float,
        friction: float,
        externals: Sequence[ExternalPotential | None] | None = None,
        checks: FailureChecks = FailureChecks(),
        md_wall_height: float = 30.0,
        md_wall_softness: float = 0.02,
        device: str = "cpu",
        dtype: str = "float64",
    ):
        import torch

        self.torch = torch
        self.potential = potential
        self.units = units
        self.dt = float(timestep)
        self.friction = float(friction)
        self.checks = checks
        self.symbols = list(symbols)
        kw = {"dtype": getattr(torch, dtype), "device": torch.device(device)}
        self.x = torch.as_tensor(np.asarray(positions, dtype=float), **kw).clone()
        n_rep, n_atoms, _ = self.x.shape
        self.cell = torch.as_tensor(np.asarray(cell_lengths, dtype=float), **kw).reshape(n_rep, 3).clone()
        check_box(self.cell, potential.cutoff)
        self.mass = torch.as_tensor(np.asarray(masses, dtype=float), **kw).reshape(1, n_atoms, 1)
        self.site = torch.as_tensor(np.asarray(site_mask, dtype=bool), device=kw["device"])
        self.temperature = torch.as_tensor(np.array(temperatures, dtype=float), **kw).reshape(n_rep)
        self.kT = units.k_B * self.temperature
        externals = list(externals) if externals is not None else [None] * n_rep
        finite = [None if e is None or not e.terms else e.finite(md_wall_height, md_wall_softness) for e in externals]
        self.external = BatchedExternal(finite, self.x.dtype, self.x.device) if any(finite) else None
        self.ids = torch.arange(n_rep, device=kw["device"])  # original replica index of each active row
        self.failures: dict[int, str] = {}
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=kw["device"])
            gen.manual_seed(int(seed))
            self.generators.append(gen)
        self.v = self._maxwell_boltzmann()
        self.steps_done = 0
        self.compute_forces()

    # ---- state -------------------------------------------------------------------------------
    @property
    def n_active(self) -> int:
        return int(self.ids.numel())

    def _noise(self) -> "torch.Tensor":
        """Unit Gaussian noise [B, N, 3], each replica from its own stream (batching-independent)."""
        shape = self.x.shape[1:]
        return self.torch.stack([self.torch.randn(shape, generator=self.generators[i], dtype=self.x.dtype, device=self.x.device) for i in self.ids.tolist()])

    def _thermal_speed(self) -> "torch.Tensor":
        """sqrt(kT / m) per replica and atom [B, N, 1] in length/time."""
        return (self.kT.reshape(-1, 1, 1) * self.units.acceleration / self.mass).sqrt()

    def _maxwell_boltzmann(self) -> "torch.Tensor":
        return self._noise() * self._thermal_speed()

    def kinetic_energy(self) -> "torch.Tensor":
        return 0.5 * (self.mass * self.v * self.v).sum((1, 2)) / self.units.acceleration

    def kinetic_temperature(self) -> "torch.Tensor":
        """2 KE / (3 N k_B): Langevin dynamics does not conserve momentum, so all 3N degrees count."""
        return 2.0 * self.kinetic_energy() / (3 * self.x.shape[1] * self.units.k_B)

    def site_z(self) -> "torch.Tensor":
        """z of the density-site atoms, wrapped into [0, L_z) [B, n_site]."""
        z = self.x[:, self.site, 2]
        lz = self.cell[:, 2:3]
        return z - lz * (z / lz).floor()

    def site_positions(self) -> "torch.Tensor":
        """Positions of the density-site atoms, wrapped into the box [B, n_site, 3] (slab coexistence, RDF)."""
        x = self.x[:, self.site]
        box = self.cell[:, None, :]
        return x - box * (x / box).floor()

    def site_force_z(self) -> "torch.Tensor":
        """Conservative z force on the density-site atoms [B, n_site] (model + external)."""
        return self.forces[:, self.site, 2]

    # ---- forces ------------------------------------------------------------------------------
    def compute_forces(self) -> None:
        energy, forces = self.potential(self.x, self.cell)
        forces = forces.clone()
        if self.external is not None:
            beta_v, slope = self.external.beta_v_and_derivative(self.site_z())
            energy = energy + self.kT * beta_v.sum(-1)
            forces[:, self.site, 2] -= self.kT[:, None] * slope
        self.energy = energy
        self.forces = forces

    def potential_energy(self) -> "torch.Tensor":
        return self.energy

    # ---- dynamics ----------------------------------------------------------------------------
    def step(self) -> None:
        half = 0.5 * self.dt
        acc = self.units.acceleration / self.mass
        self.v = self.v + half * acc * self.forces
        self.x = self.x + half * self.v
        if self.friction > 0:
            c = math.exp(-self.friction * self.dt)
            self.v = c * self.v + math.sqrt(1.0 - c * c) * self._thermal_speed() * self._noise()
        self.x = self.x + half * self.v
        self.compute_forces()
        self.v = self.v + half * acc * self.forces
        self.steps_done += 1

    def run(
        self, n_steps: int, callback: Callable[["LangevinEngine"], None] | None = None, every: int = 1, phase: str = "MD", progress: MDProgress | None = None
    ) -> None:
        """Integrate ``n_steps``; call ``callback(self)`` every ``every`` steps; check failures regularly
        and log progress as ``phase`` (``liquidscale.logs.MDProgress``), or on ``progress`` when a longer
        run is integrated in pieces (a checkpointed batch)."""
        progress = MDProgress(self, n_steps, phase) if progress is None else progress
        for i in range(1, n_steps + 1):
            if self.n_active == 0:
                return
            self.step()
            progress.step()
            if i % self.checks.every == 0 or i == n_steps:
                self.check_failures()
                progress.report()
            if callback is not None and i % every == 0 and self.n_active:
                callback(self)

    def minimise(self, n_steps: int = 200, max_displacement: float = 0.05) -> None:
        """Steepest descent with each atom's step capped: removes overlaps of random initial packings."""
        for _ in range(n_steps):
            norm = self.forces.norm(dim=-1, keepdim=True).amax(dim=1, keepdim=True).clamp_min(1e-12)
            self.x = self.x + self.forces / norm * max_displacement
            self.compute_forces()
        self.check_failures()

    # ---- failures ----------------------------------------------------------------------------
    def check_failures(self) -> dict[int, str]:
        """Find blown-up replicas, record why, and drop them from the batch; returns the new ones."""
        found: dict[int, str] = {}
        temperature_ratio = (self.kinetic_temperature() / self.temperature).tolist()
        # a runaway is far beyond the equilibrium spread of T_kin (relative std sqrt(2 / 3N))
        ratio_limit = self.checks.max_temperature_ratio + 5.0 * math.sqrt(2.0 / (3 * self.x.shape[1]))
        finite_rows = self.x.isfinite().all(-1).all(-1) & self.v.isfinite().all(-1).all(-1) & self.energy.isfinite()
        closest = self._closest_foreign_distance(finite_rows).tolist()
        finite = finite_rows.tolist()
        for row, rid in enumerate(self.ids.tolist()):
            if not finite[row]:
                found[rid] = f"non-finite positions, velocities or energy after {self.steps_done} steps"
            elif closest[row] < self.checks.min_distance:
                found[rid] = f"atoms {closest[row]:.3f} apart (< {self.checks.min_distance}) after {self.steps_done} steps"
            elif temperature_ratio[row] > ratio_limit:
                found[rid] = f"kinetic temperature {temperature_ratio[row]:.2f} x target after {self.steps_done} steps"
            elif self.checks.molecule is not None:
                reason = self._dissociation(row)
                if reason:
                    found[rid] = f"dissociated molecule after {self.steps_done} steps: {reason}"
        if found:
            self._drop(found)
        return found

    def _closest_foreign_distance(self, rows: "torch.Tensor") -> "torch.Tensor":
        """Smallest distance between atoms of different molecules (any two atoms for atomic fluids) [B],
        searched in the replicas ``rows`` selects (a bool mask) and only below ``checks.min_distance``:
        inf where no such pair is closer. A neighbour list, so memory grows as B N, not B N^2."""
        torch = self.torch
        closest = torch.full((self.n_active,), math.inf, dtype=self.x.dtype, device=self.x.device)
        if self.checks.min_distance <= 0 or not bool(rows.any()):
            return closest
        replica, i, j, distance = batched_pairs(self.x[rows], self.cell[rows], self.checks.min_distance)
        per_molecule = len(self.checks.molecule.symbols) if self.checks.molecule is not None else 1
        # atoms are stored molecule by molecule (template order), so the molecule of atom i is i // size
        foreign = i // per_molecule != j // per_molecule
        closest[rows] = closest[rows].scatter_reduce(0, replica[foreign], distance[foreign], reduce="amin")
        return closest

    def _dissociation(self, row: int) -> str:
        from ..molecules import group_molecules

        cell = np.diag(self.cell[row].cpu().numpy())
        grouping = group_molecules(self.symbols, self.x[row].cpu().numpy(), self.checks.molecule, cell)
        return "" if grouping.intact else grouping.reason

    def _drop(self, failed: dict[int, str]) -> None:
        self.failures.update(failed)
        keep = self.torch.tensor([rid not in failed for rid in self.ids.tolist()], device=self.x.device)
        for name in ("x", "v", "forces", "energy", "cell", "temperature", "kT", "ids"):
            setattr(self, name, getattr(self, name)[keep])
        if self.external is not None:
            self.external.select(keep)

    # ---- checkpoint / restore ------------------------------------------------------------------
    # The per-step state, for a job that is killed and rerun to continue exactly where it stopped: the
    # resumed trajectory is bit-for-bit the uninterrupted one (same tensors, same random streams, same
    # neighbour list, same failed replicas).
    _STATE_TENSORS = ("x", "v", "forces", "energy", "cell", "temperature", "kT", "ids")

    def state_dict(self) -> dict:
        """Everything that carries from one step to the next, on the CPU (``torch.save``-able)."""
        state = {name: getattr(self, name).detach().cpu() for name in self._STATE_TENSORS}
        state.update(
            friction=self.friction,
            steps_done=self.steps_done,
            failures=dict(self.failures),
            generators=[gen.get_state() for gen in self.generators],
            potential=self.potential.state_dict() if hasattr(self.potential, "state_dict") else None,
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` of an engine built with the same arguments."""
        device = self.x.device
        ids = state["ids"].to(device)
        if self.external is not None:
            self.external.select(self.torch.isin(self.ids, ids))
        for name in self._STATE_TENSORS:
            setattr(self, name, state[name].to(device=device, dtype=getattr(self, name).dtype))
        self.friction = float(state["friction"])
        self.steps_done = int(state["steps_done"])
        self.failures = {int(k): str(v) for k, v in state["failures"].items()}
        for gen, gen_state in zip(self.generators, state["generators"], strict=True):
            gen.set_state(gen_state)
        if state["potential"] is not None:
            self.potential.load_state_dict(_on_device(state["potential"], device))


def _on_device(obj, device):
    """``obj`` (tensors in dicts, lists, tuples) with every tensor moved to ``device``."""
    if hasattr(obj, "to") and hasattr(obj, "device"):
        return obj.to(device)
    if isinstance(obj, dict):
        return {key: _on_device(value, device) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_device(value, device) for value in obj)
    return obj
