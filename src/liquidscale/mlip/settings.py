"""The ``--settings`` JSON of each mlip rule: only the keys that rule depends on.

Snakemake reruns a job when its params change, so each action sees just its part of the ``mlip``
section: changing a trust level reselects without retraining, and raising ``mlip.iterations`` adds
iterations without touching the finished ones. Exploration must span what the sampling stage
samples, so the sampling stage's ``potentials`` and ``<system>`` block travel with it; selection cuts
environments as the reference stage does, so ``reference.environment``'s cut travels with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import stage_settings

# action -> keys of the ``mlip`` section it reads
PARTS: dict[str, tuple[str, ...]] = {
    "data": ("descriptor", "training"),
    "train": ("descriptor", "fitting_neuron", "training"),
    "test": ("training",),
    "explore": ("explore",),
    "select": ("select",),
    "final": (),
}


def rule_settings(config: Mapping[str, Any], system: str, action: str) -> dict[str, Any]:
    """``stage_settings(config, system, 'mlip')`` cut down to what ``action`` reads, plus the sampling context."""
    settings = stage_settings(config, system, "mlip")
    settings["mlip"] = {key: value for key, value in settings["mlip"].items() if key in PARTS[action]}
    if action in ("data", "explore"):
        sampling = config["sampling"]
        settings["sampling"] = {"potentials": sampling["potentials"], system: sampling[system]}
    if action == "select":  # selected clusters are complete environments, cut as the reference stage cuts bulk frames
        environment = config["reference"]["environment"]
        settings["environment"] = {key: environment[key] for key in ("core_radius", "shell")}
    return settings
