"""A frozen DeePMD model as a batched MD potential, and the ensemble's force deviation.

:class:`DeepMDPotential` follows the MD engine's ``Potential`` protocol: ``__call__(positions[B, N, 3],
cell_lengths[B, 3]) -> (energy[B] eV, forces[B, N, 3] eV/Å)`` plus ``type_map`` and ``cutoff``. It
calls the TorchScript module that ``dp --pt freeze`` writes directly, the way ``deepmd.infer.DeepPot``
does inside, so B replicas with the same atoms are one model call and tensors stay on their device.

Periodic frames take DeePMD's own fast path (``DeepEval._eval_lower_strategy``): an O(N) cell-list
neighbour list (vesin) that adds only the periodic images within the cutoff, then the model's
``forward_common_lower`` on those extended coordinates, and the ghost-atom forces folded back onto
their local atoms. The model's ``forward`` instead images every atom 27 times and sorts a dense
N x 27N distance matrix on every call, which costs as much as the network itself for ~200 atoms.
Non-periodic frames (``cell_lengths`` None) use ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError, damaged_input


class DeepMDPotential:
    """Energy and forces of B frames of the same atoms in orthorhombic periodic boxes (or none).

    ``precision`` float32 evaluates the networks in float32 (see :func:`_networks_in`); positions
    are taken and forces returned in that precision, energies stay DeePMD's float64 sums.
    """

    def __init__(self, model_path: str | Path, symbols: Sequence[str], device: str = "cpu", precision: str = "float64") -> None:
        import torch

        import deepmd.pt.cxx_op  # noqa: F401  (registers the custom ops a frozen model may use)

        path = Path(model_path)
        if not path.is_file():
            raise UserError(f"{path}: DeePMD model not found; run the mlip stage first")
        final = path.parent.name == "final"  # mlip_final writes final/model{m}.pth; mlip_train iter{i}/model{m}/
        try:
            self.model = torch.jit.load(str(path), map_location=device)
            self.type_map: list[str] = list(self.model.get_type_map())
            self.cutoff: float = float(self.model.get_rcut())
        except (RuntimeError, ValueError, AttributeError) as exc:  # truncated archive, or not a frozen DeePMD model
            raise damaged_input(path, "frozen DeePMD model", "mlip_final" if final else "mlip_train", exc, None if final else path.parent) from None
        self.dtype = getattr(torch, precision)
        if precision != "float64":
            self.model = _networks_in(self.model, precision, device)
        unknown = sorted(set(symbols) - set(self.type_map))
        if unknown:
            raise UserError(f"{path}: elements {unknown} are not in the model's type map {self.type_map}")
        self.symbols = list(symbols)
        self.device = torch.device(device)
        self.atom_types = torch.tensor([self.type_map.index(s) for s in symbols], dtype=torch.long, device=self.device)
        self.sel: list[int] = list(self.model.get_sel())
        from deepmd.pt_expt.utils.vesin_neighbor_list import VesinNeighborList

        self.neighbours = VesinNeighborList()

    def __call__(self, positions, cell_lengths=None):
        """Energies (B,) in eV and forces (B, N, 3) in eV/Å; ``cell_lengths`` None means no periodicity."""
        import torch

        positions = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        if positions.ndim == 2:
            positions = positions[None]
        positions = positions.detach()
        batch, n_atoms, _ = positions.shape
        atom_types = self.atom_types.expand(batch, -1)
        if cell_lengths is None:
            out = self.model(positions, atom_types, box=None)
            return out["energy"].reshape(batch).detach(), out["force"].reshape(batch, n_atoms, 3).detach()
        lengths = torch.as_tensor(cell_lengths, dtype=self.dtype, device=self.device).reshape(-1, 3).expand(batch, 3)
        extended, extended_types, nlist, mapping = self.neighbours.build(positions, atom_types, torch.diag_embed(lengths), self.cutoff, self.sel)
        out = self.model.forward_common_lower(extended, extended_types, nlist, mapping)
        # force on each extended atom [B, n_ext, 3]; a ghost's force acts on the local atom it images
        extended_forces = out["energy_derv_r"].reshape(batch, -1, 3).detach()
        forces = extended_forces.new_zeros(batch, n_atoms, 3).scatter_add(1, mapping[..., None].expand(-1, -1, 3), extended_forces)
        return out["energy_redu"].reshape(batch).detach(), forces


def _networks_in(frozen, precision: str, device: str):
    """The frozen model rebuilt with its descriptor and fitting networks in ``precision`` (DeePMD's own
    ``precision`` option, which a frozen model fixes at training time): same weights, rounded.

    As in a model trained that way, coordinates, the environment matrix and the summed energy stay in
    DeePMD's global float64; the networks, nearly all of the cost, run in ``precision``.
    """
    import json

    import torch
    from deepmd.pt.model.model import get_model

    params = json.loads(frozen.get_model_def_script())
    for part in ("descriptor", "fitting_net"):
        params[part]["precision"] = precision
    model = get_model(params)
    target = model.state_dict()
    model.load_state_dict({name: value.to(target[name].dtype) for name, value in frozen.state_dict().items()})
    return torch.jit.script(model.to(device).eval())


def ensemble_forces(models: Sequence[DeepMDPotential], positions, cell_lengths=None) -> np.ndarray:
    """Forces of every model, shape (M, B, N, 3), in eV/Å."""
    return np.stack([model(positions, cell_lengths)[1].cpu().numpy() for model in models])


def atomic_force_deviation(forces: np.ndarray) -> np.ndarray:
    """Per-atom force deviation (B, N): sqrt(<|F_m - <F>|^2>) over the ensemble axis 0 (DP-GEN's definition)."""
    spread = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt((spread**2).sum(axis=-1).mean(axis=0))


def max_force_deviation(forces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame the maximum atomic force deviation (B,) and the atom where it occurs (B,)."""
    per_atom = atomic_force_deviation(forces)
    return per_atom.max(axis=1), per_atom.argmax(axis=1)
