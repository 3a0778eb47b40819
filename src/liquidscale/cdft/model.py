"""The neural one-body direct correlation functional c1[rho](z; T) (local learning).

c1 at z is a function of the density on the window z +- w and of the temperature. Two architectures
(``cdft.architecture``): ``conv``, a convolution over part of the window, pointwise softplus layers and
a second convolution over the rest; ``mlp`` (Sammüller et al.), a dense network whose first layer sees
the whole window — a convolution of the full window width, then pointwise layers and a one-point
output. Both run over circularly padded profiles, so a whole batch of profiles is evaluated at once. The gauge c1[rho = 0] = 0 is exact: the network's output
on an empty window (at the same T) is subtracted.

An ensemble (``cdft.ensemble`` > 1) is the mean c1 of networks trained on the same data from different
seeds: the mean of their c1 is the functional derivative of the mean of their F_exc, so it is a functional
like any member, and the members' spread measures what one training leaves undetermined.

Saved as ``model.safetensors`` (plain tensors) + ``model.json`` (architecture, grid, units,
temperature range, training-data hash, provenance): loading never unpickles code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, damaged_input
from ..io import atomic_path, write_json
from .functional import as_batch, periodic_conv, temperature_column

MODEL_KIND = "liquidscale.neural_c1"
ARCHITECTURES = ("conv", "mlp")
TEMPERATURE_INPUTS = ("T", "1/T")
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"


class NeuralC1(torch.nn.Module):
    """c1 from rho on +-``window`` around each grid point and T (implements ``Functional``).

    ``conv``: two convolutions whose half-widths add up to the window, with pointwise softplus layers
    between: the first learns weighted densities (and takes T), the second integrates a nonlinear
    function of them — the structure of fundamental-measure theory, without assuming its form.
    ``mlp``: the first layer sees the whole window (and T), the output layer one point: a dense MLP.
    ``temperature_inputs``: T and/or 1/T, each scaled to [-1, 1] over the training range, enter the
    first layer as biases.
    """

    def __init__(
        self,
        dz: float,
        window: float,
        channels: Sequence[int],
        density_scale: float,
        temperature_range: Sequence[float],
        kind: str = "conv",
        temperature_inputs: Sequence[str] = ("T",),
    ):
        super().__init__()
        if kind not in ARCHITECTURES:
            raise UserError(f"config key 'cdft.architecture': {kind!r} is not one of {list(ARCHITECTURES)}")
        if not temperature_inputs or set(temperature_inputs) - set(TEMPERATURE_INPUTS):
            raise UserError(f"temperature inputs {list(temperature_inputs)} are not a non-empty subset of {list(TEMPERATURE_INPUTS)}")
        half_points = max(1, round(window / dz))  # the window is rounded to whole grid points
        self.dz = float(dz)
        self.interaction_range = half_points * self.dz
        self.kind = kind
        self.temperature_inputs = list(temperature_inputs)
        inner = (half_points + 1) // 2 if kind == "conv" else half_points
        self.channels = [int(c) for c in channels]
        self.density_scale = float(density_scale)
        self.temperature_range = [float(t) for t in temperature_range]
        f64 = {"dtype": torch.float64}
        self.window_layer = torch.nn.Conv1d(1, self.channels[0], 2 * inner + 1, **f64)
        self.temperature_layer = torch.nn.Linear(len(self.temperature_inputs), self.channels[0], bias=False, **f64)
        layers: list[torch.nn.Module] = [torch.nn.Softplus()]
        for width_in, width_out in zip(self.channels, self.channels[1:]):
            layers += [torch.nn.Conv1d(width_in, width_out, 1, **f64), torch.nn.Softplus()]
        self.pointwise = torch.nn.Sequential(*layers)
        self.out_layer = torch.nn.Conv1d(self.channels[-1], 1, 2 * (half_points - inner) + 1, **f64)

    def architecture(self) -> dict[str, Any]:
        return {
            "dz": self.dz,
            "window": self.interaction_range,
            "channels": self.channels,
            "density_scale": self.density_scale,
            "temperature_range": self.temperature_range,
            "kind": self.kind,
            "temperature_inputs": self.temperature_inputs,
        }

    def _temperature_features(self, T: torch.Tensor) -> torch.Tensor:
        """(batch, inputs): T and/or 1/T, each mapped linearly onto [-1, 1] over the training range (0 at one T)."""
        low, high = self.temperature_range
        features = []
        for name in self.temperature_inputs:
            value, a, b = (T, low, high) if name == "T" else (1.0 / T, 1.0 / high, 1.0 / low)
            features.append((value - 0.5 * (a + b)) / (0.5 * (b - a)) if high > low else T * 0.0)
        return torch.stack(features, -1)

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor:
        rho, single = as_batch(rho)
        t = self._temperature_features(temperature_column(T, rho.shape[0], rho))
        t_term = self.temperature_layer(t).unsqueeze(-1)  # (batch, channels0, 1)
        h = self.pointwise(periodic_conv((rho / self.density_scale).unsqueeze(1), self.window_layer.weight, self.window_layer.bias) + t_term)
        c1 = periodic_conv(h, self.out_layer.weight, self.out_layer.bias).squeeze(1)
        # the same network on an empty window (rho = 0 everywhere) is constant along z: subtract it
        h_empty = self.pointwise(self.window_layer.bias[None, :, None] + t_term)
        c1_empty = torch.einsum("bc,c->b", h_empty[..., 0], self.out_layer.weight[0].sum(-1)) + self.out_layer.bias
        c1 = c1 - c1_empty[:, None]
        return c1[0] if single else c1

    def forward(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor:
        return self.c1(rho, T)


class EnsembleC1(torch.nn.Module):
    """The mean c1 of networks of one architecture (implements ``Functional``); ``members`` gives each for spreads."""

    def __init__(self, members: Sequence[NeuralC1]):
        super().__init__()
        if len(members) < 2 or len({member.dz for member in members}) > 1:
            raise ValueError("an ensemble needs at least two members on one grid")
        self.members = torch.nn.ModuleList(members)
        self.dz = members[0].dz
        self.interaction_range = max(member.interaction_range for member in members)

    def architecture(self) -> dict[str, Any]:
        return {**self.members[0].architecture(), "members": len(self.members)}

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor:
        return sum(member.c1(rho, T) for member in self.members) / len(self.members)

    def forward(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor:
        return self.c1(rho, T)


def build_model(architecture: Mapping[str, Any]) -> NeuralC1 | EnsembleC1:
    """The (untrained) functional ``architecture`` describes: one network, or an ensemble where ``members`` > 1."""
    architecture = dict(architecture)
    members = int(architecture.pop("members", 1))
    return NeuralC1(**architecture) if members == 1 else EnsembleC1([NeuralC1(**architecture) for _ in range(members)])


def save_model(model: NeuralC1 | EnsembleC1, metadata: Mapping[str, Any], folder: str | Path) -> None:
    """Write the weights (safetensors) and the metadata JSON, each atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(folder / METADATA_FILE, {"kind": MODEL_KIND, "architecture": model.architecture(), **metadata})


def load_model(folder: str | Path) -> tuple[NeuralC1 | EnsembleC1, dict[str, Any]]:
    """The functional saved in ``folder`` and its metadata (grid, units, temperature range, provenance).

    A missing, truncated or foreign file is a one-line error that names it and the rule that remakes it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    metadata_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
    for path in (metadata_path, weights_path):
        if not path.is_file():
            raise UserError(f"{path}: not found; run the cdft stage (rule 'cdft_train') first")
    try:
        metadata = json.loads(metadata_path.read_text())
        kind = metadata.get("kind")
    except (ValueError, AttributeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise damaged_input(metadata_path, "model metadata", "cdft_train", exc) from None
    if kind != MODEL_KIND:
        raise UserError(f"{metadata_path}: not a liquidscale neural c1 model (kind {kind!r})")
    try:
        model = build_model(metadata["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged_input(metadata_path, "model metadata", "cdft_train", f"architecture: {type(exc).__name__}: {exc}") from None
    try:
        model.load_state_dict(load_file(str(weights_path)))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise damaged_input(weights_path, "model weights", "cdft_train", exc) from None
    model.eval()
    return model, metadata
