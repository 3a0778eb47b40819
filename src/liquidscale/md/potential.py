"""The ``Potential`` protocol the MD engine drives, unit systems, and an analytic Lennard-Jones fluid.

A potential is bound to one composition (its atom types are fixed at construction) and evaluates B
replicas of that composition in one call: ``potential(positions[B, N, 3], cell_lengths[B, 3])`` returns
``(energy[B], forces[B, N, 3])`` in the unit system of the system (eV and eV/Å for water and CO2;
epsilon and epsilon/sigma for ``lj``). Boxes are orthorhombic and periodic in all three directions.
The DeePMD implementation lives in ``liquidscale.mlip.deepmd_potential``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import UserError
from .neighbours import batched_pairs

if TYPE_CHECKING:  # pragma: no cover
    import torch


@runtime_checkable
class Potential(Protocol):
    type_map: Sequence[str]  # element/type names, in the model's order
    cutoff: float  # interaction range in the length unit; boxes must be at least twice as wide

    def __call__(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Energies [B] and forces [B, N, 3] of B replicas with the same atoms."""
        ...


@dataclass(frozen=True)
class Units:
    """How the integrator turns forces and kT into accelerations and velocities.

    ``k_B`` is Boltzmann's constant in energy per temperature unit; ``acceleration`` converts
    force / mass (energy / (length mass)) into length / time^2.
    """

    name: str
    k_B: float
    acceleration: float
    length: str
    energy: str
    time: str
    temperature: str


# Å, eV, ps, K, atomic mass units: 1 eV / (u Å) = 9648.5332 Å/ps^2 (CODATA 2018).
METAL = Units("metal", k_B=8.617333262e-5, acceleration=9648.53321233, length="angstrom", energy="eV", time="ps", temperature="K")
# sigma, epsilon, tau = sigma sqrt(m / epsilon), epsilon / k_B, particle mass 1.
REDUCED = Units("reduced", k_B=1.0, acceleration=1.0, length="sigma", energy="epsilon", time="tau", temperature="epsilon/k_B")


def minimum_image(delta: "torch.Tensor", cell_lengths: "torch.Tensor") -> "torch.Tensor":
    """Shortest periodic images of displacements ``delta`` [B, ..., 3] in orthorhombic boxes [B, 3]."""
    box = cell_lengths.reshape(cell_lengths.shape[0], *([1] * (delta.dim() - 2)), 3)
    return delta - box * (delta / box).round()


def check_box(cell_lengths: "torch.Tensor", cutoff: float) -> None:
    """Minimum image needs every box edge at least twice the cutoff."""
    short = float(cell_lengths.min())
    if short < 2.0 * cutoff:
        raise UserError(f"box edge {short:.3f} is shorter than twice the potential cutoff {cutoff:.3f}; enlarge the box (sampling.<system>.box; in exploration mlip.explore.molecules) or shorten the cutoff")


class LennardJones:
    """Truncated-and-shifted Lennard-Jones pair potential in reduced units (sigma = epsilon = 1).

    u(r) = 4 (r^-12 - r^-6) - u(r_c) for r < r_c, 0 beyond: continuous energy, forces truncated at r_c.
    Pairs come from a Verlet list (cutoff + ``skin``) over all replicas at once, rebuilt from the
    cell-list search of ``liquidscale.md.neighbours`` whenever an atom has moved more than skin / 2
    since the last build; building and stepping cost O(B N n_neighbours) time and memory, not O(B N^2).
    """

    type_map = ("X",)

    def __init__(self, cutoff: float = 2.5, skin: float = 0.3):
        if cutoff <= 1.0:
            raise UserError(f"Lennard-Jones cutoff {cutoff} must exceed 1 sigma")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.shift = 4.0 * (cutoff**-12 - cutoff**-6)
        self._built: tuple | None = None  # (positions, cell lengths, replica, i, j) of the last build

    def _neighbour_pairs(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor"):
        """Replica index and atom indices (i < j) of every pair within cutoff + skin."""
        import torch

        if self._built is not None:
            x0, cell0, b, i, j = self._built
            if x0.shape == positions.shape and torch.equal(cell0, cell_lengths):
                moved = minimum_image(positions - x0, cell_lengths).norm(dim=-1).max()
                if moved < 0.5 * self.skin:
                    return b, i, j
        b, i, j, _ = batched_pairs(positions, cell_lengths, self.cutoff + self.skin)
        self._built = (positions.detach().clone(), cell_lengths.detach().clone(), b, i, j)
        return b, i, j

    def state_dict(self) -> dict:
        """The Verlet list as last built: a restarted run must reuse it to sum pairs in the same order."""
        return {"built": self._built}

    def load_state_dict(self, state: dict) -> None:
        self._built = None if state["built"] is None else tuple(state["built"])

    def _pair_terms(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor"):
        """Per listed pair: replica, i, j, separation vector r_i - r_j, inside-cutoff mask, r^-2, r^-6."""
        import torch

        b, i, j = self._neighbour_pairs(positions, cell_lengths)
        delta = _pair_image(positions[b, i] - positions[b, j], cell_lengths[b])
        r2 = (delta * delta).sum(-1)
        inside = r2 < self.cutoff**2
        inv_r2 = torch.where(inside, 1.0 / torch.where(inside, r2, torch.ones_like(r2)), torch.zeros_like(r2))
        return b, i, j, delta, inside, inv_r2, inv_r2**3

    def __call__(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        n_rep, n_atoms, _ = positions.shape
        b, i, j, delta, inside, inv_r2, inv_r6 = self._pair_terms(positions, cell_lengths)
        pair_energy = (4.0 * (inv_r6 * inv_r6 - inv_r6) - self.shift) * inside
        energy = torch.zeros(n_rep, dtype=positions.dtype, device=positions.device).index_add(0, b, pair_energy)
        # -du/dr / r = 24 (2 r^-12 - r^-6) / r^2 ; force on i = that * (r_i - r_j), on j the opposite
        pair_force = (24.0 * (2.0 * inv_r6 * inv_r6 - inv_r6) * inv_r2)[:, None] * delta
        forces = torch.zeros(n_rep * n_atoms, 3, dtype=positions.dtype, device=positions.device)
        forces = forces.index_add(0, b * n_atoms + i, pair_force).index_add(0, b * n_atoms + j, -pair_force)
        return energy, forces.reshape(n_rep, n_atoms, 3)

    def virial(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor") -> "torch.Tensor":
        """W = sum over pairs r_ij . F_ij [B]; the pressure is (N k T + W / 3) / V."""
        import torch

        b, _, _, _, _, _, inv_r6 = self._pair_terms(positions, cell_lengths)
        pair_virial = 24.0 * (2.0 * inv_r6 * inv_r6 - inv_r6)
        return torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device).index_add(0, b, pair_virial)


def _pair_image(delta: "torch.Tensor", box: "torch.Tensor") -> "torch.Tensor":
    """Minimum image of pair vectors [P, 3] with each pair's own box [P, 3]."""
    return delta - box * (delta / box).round()


class IdealGas:
    """Non-interacting particles: under V_ext alone rho(z) is exactly N exp(-beta V) / (A integral exp(-beta V)),
    the reference that checks the external-potential, thermostat and profile machinery."""

    type_map = ("X",)
    cutoff = 0.0

    def __call__(self, positions: "torch.Tensor", cell_lengths: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        return positions.new_zeros(positions.shape[0]), torch.zeros_like(positions)
