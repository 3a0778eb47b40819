"""Which torch device and precision a GPU stage (DeePMD training, exploration, sampling) runs with.

Each such stage has a ``device`` key: ``auto`` uses a GPU when the job sees one (``CUDA_VISIBLE_DEVICES``
as SLURM sets it, and torch can open it) and the CPU otherwise; ``cuda`` requires one and stops
with one line when there is none (a job that silently ran on the CPU would take ~100x its wall
time); ``cpu`` never uses one, and its rule requests none (``gpu_count`` in common.smk). The device
actually used goes into the output's provenance as its ``compute`` block (:func:`device_record`).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float64", "float32")


def resolve_device(setting: str, key: str) -> str:
    """``cpu`` or ``cuda`` for the config value ``setting`` of config key ``key`` (see the module docstring)."""
    if setting not in DEVICES:
        raise UserError(f"config key '{key}': device {setting!r} is not one of {list(DEVICES)}")
    if setting == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if setting == "auto":
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    raise UserError(
        f"config key '{key}' is 'cuda' but this job sees no GPU (CUDA_VISIBLE_DEVICES={visible!r}, torch.cuda.is_available() is False); "
        f"run it on a GPU node or set {key}: auto"
    )


def device_record(device: str, precision: str = "float64") -> dict[str, Any]:
    """Provenance's ``compute`` block: the torch device used, the GPU's name, the visible GPUs and the precision."""
    record: dict[str, Any] = {"torch_device": device, "precision": precision, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if device == "cuda":
        import torch

        record["gpu"] = torch.cuda.get_device_name()
    return record
