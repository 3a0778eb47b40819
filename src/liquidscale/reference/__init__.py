"""Quantum-mechanical reference labels (PySCF) for the molecular systems.

Each action of the stage receives only the config keys it depends on (:func:`action_settings`), so
Snakemake's params rerun-trigger reruns exactly what a change affects: a new basis reruns the
labelling and collection but keeps the configurations; new cluster sizes rerun everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# reference-section keys each action reads; the job resources (threads, mem_mb, runtime) are not among them.
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "configurations": ("initial", "environment", "extra_configurations"),
    "label": ("method", "shards", "use_gpu"),
    "collect": ("initial", "environment", "extra_configurations", "method", "shards", "use_gpu"),
}


def action_settings(config: Mapping[str, Any], system: str, action: str) -> dict[str, Any]:
    """The settings JSON object of one reference action for ``system`` (validated config in)."""
    reference = dict(config["reference"])
    # only this system's extra file: another system's file must not rerun this one
    reference["extra_configurations"] = (reference.get("extra_configurations") or {}).get(system)
    settings = {
        "system": system,
        "seed": config["seed"],
        "reference": {key: reference[key] for key in ACTION_KEYS[action]},
    }
    if action == "configurations":
        from ..mlip.exploration import densest

        settings["bulk_density"] = densest(config["sampling"], system)  # bulk environments are packed at it
        # the shell atoms' force weight is applied when the labels are collected: changing it relabels nothing
        settings["reference"]["environment"] = {k: v for k, v in reference["environment"].items() if k != "shell_force_weight"}
    return settings
