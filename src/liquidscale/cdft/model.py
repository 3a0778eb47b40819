"""The neural one-body direct correlation functional c1[rho](z; T) (local learning).

c1 at z is a function of the density on the window z +- w and of the temperature: a convolution,
pointwise softplus layers and a second convolution, over circularly padded profiles, so a whole
batch of profiles is evaluated at once. The gauge c1[rho = 0] = 0 is exact: the network's output
on an empty window (at the same T) is subtracted.

Saved as ``model.safetensors`` (plain tensors) + ``model.json`` (architecture, grid, units,
temperature range, training-data hash, provenance): loading never unpickles code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..io import atomic_path, read_json, write_json
from .functional import as_batch, periodic_conv, temperature_column

MODEL_KIND = "liquidscale.neural_c1"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"


class NeuralC1(torch.nn.Module):
    """c1 from rho on +-``window`` around each grid point and T (implements ``Functional``).

    Two convolutions whose half-widths add up to the window, with pointwise softplus layers between:
    the first learns weighted densities (and takes T), the second integrates a nonlinear function of
    them — the structure of fundamental-measure theory, without assuming its form.
    """

    def __init__(
        self,
        dz: float,
        window: float,
        channels: Sequence[int],
        density_scale: float,
        temperature_range: Sequence[float],
    ):
        super().__init__()
        half_points = max(1, round(window / dz))  # the window is rounded to whole grid points
        self.dz = float(dz)
        self.interaction_range = half_points * self.dz
        inner = (half_points + 1) // 2
        self.channels = [int(c) for c in channels]
        self.density_scale = float(density_scale)
        self.temperature_range = [float(t) for t in temperature_range]
        f64 = {"dtype": torch.float64}
        self.window_layer = torch.nn.Conv1d(1, self.channels[0], 2 * inner + 1, **f64)
        self.temperature_layer = torch.nn.Linear(1, self.channels[0], bias=False, **f64)
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
        }

    def _scaled_temperature(self, T: torch.Tensor) -> torch.Tensor:
        low, high = self.temperature_range
        return (T - 0.5 * (low + high)) / (0.5 * (high - low)) if high > low else T * 0.0

    def c1(self, rho: torch.Tensor, T: torch.Tensor | float) -> torch.Tensor:
        rho, single = as_batch(rho)
        t = self._scaled_temperature(temperature_column(T, rho.shape[0], rho)).unsqueeze(-1)
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


def save_model(model: NeuralC1, metadata: Mapping[str, Any], folder: str | Path) -> None:
    """Write the weights (safetensors) and the metadata JSON, each atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(folder / METADATA_FILE, {"kind": MODEL_KIND, "architecture": model.architecture(), **metadata})


def load_model(folder: str | Path) -> tuple[NeuralC1, dict[str, Any]]:
    """The functional saved in ``folder`` and its metadata (grid, units, temperature range, provenance)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    metadata = read_json(folder / METADATA_FILE)
    if metadata.get("kind") != MODEL_KIND:
        raise UserError(f"{folder / METADATA_FILE}: not a liquidscale neural c1 model (kind {metadata.get('kind')!r})")
    model = NeuralC1(**metadata["architecture"])
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (FileNotFoundError, SafetensorError, RuntimeError) as exc:
        raise UserError(f"{folder / WEIGHTS_FILE}: cannot load the weights ({exc}); rerun the cdft rule") from None
    model.eval()
    return model, metadata
