"""Settings that pass the schema but cannot work together, caught when the config is validated.

Each check here repeats a condition that a stage job would otherwise find only when it runs (often on
a GPU node, hours after submission): a box shorter than twice a cutoff, a smoothing radius beyond the
cutoff, an exploration box too small for the model, a learning-rate decay longer than the training,
too few samples for a standard error, a functional window longer than its box, a pore not on the grid.
The job keeps its own check (it may be run by hand); this one names the config key at DAG build.
Only config values are used: no model or data file is read, and nothing heavier than numpy is imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .config import MOLECULAR_SYSTEMS
from .errors import UserError
from .molecules import get_molecule


def check_feasible(config: Mapping[str, Any]) -> None:
    """Raise UserError naming the first config key whose value cannot work with the others."""
    systems = list(config["systems"])
    for system in systems:
        if system in ("water", "co2", "lj"):
            _check_sampling(config, system)
            _check_coexistence(config, system)
        _check_window(config, system)
    molecular = [s for s in systems if s in MOLECULAR_SYSTEMS]
    if molecular:
        _check_mlip(config, molecular)
    if "hard_rods" in systems:
        _check_multiple(config["hard_rods"], "box_length", "dz", "hard_rods")
    if "pets" in systems:
        for key in ("pore_width", "padding"):
            _check_multiple(config["pets"], key, "dz", "pets")


def _fail(key: str, message: str) -> None:
    raise UserError(f"config key '{key}': {message}")


def _check_sampling(config: Mapping[str, Any], system: str) -> None:
    sampling = config["sampling"]
    block = sampling[system]
    box = [float(b) for b in block["box"]]
    if system == "lj":
        cutoff = float(block["cutoff"])  # the schema keeps it above 1 sigma
        if min(box) < 2 * cutoff:
            _fail("sampling.lj.box", f"shortest edge {min(box)} is below twice sampling.lj.cutoff ({cutoff}): minimum image needs at least {2 * cutoff}")
    else:
        rcut = float(config["mlip"]["descriptor"]["rcut"])
        if min(box) < 2 * rcut:
            _fail(f"sampling.{system}.box", f"shortest edge {min(box)} Å is below twice the DeePMD cutoff mlip.descriptor.rcut ({rcut} Å): minimum image needs at least {2 * rcut} Å")
    low, high = block["density_range"]
    if low > high:
        _fail(f"sampling.{system}.density_range", f"lower bound {low} exceeds upper bound {high}")
    if box[2] < 2 * float(block["bin_width"]):
        _fail(f"sampling.{system}.bin_width", f"{block['bin_width']} leaves fewer than two bins along the box's z edge ({box[2]})")
    samples = sampling["production_steps"] // sampling["sample_every"]
    if samples < 2:
        _fail("sampling.production_steps", f"{sampling['production_steps']} steps sampled every {sampling['sample_every']} (sampling.sample_every) give {samples} samples; a standard error needs at least 2")


def _check_coexistence(config: Mapping[str, Any], system: str) -> None:
    from .coexistence.run import check_settings, coexistence_settings

    box = [float(b) for b in config["coexistence"][system]["box"]]
    cutoff, name = (float(config["sampling"]["lj"]["cutoff"]), "sampling.lj.cutoff") if system == "lj" else (float(config["mlip"]["descriptor"]["rcut"]), "mlip.descriptor.rcut")
    if min(box) < 2 * cutoff:
        _fail(f"coexistence.{system}.box", f"shortest edge {min(box)} is below twice {name} ({cutoff}): minimum image needs at least {2 * cutoff}")
    check_settings(coexistence_settings(config, system, "run"))


def _box_length(config: Mapping[str, Any], system: str) -> tuple[float, str] | None:
    """The periodic length of a system's profiles along z and the key(s) that set it."""
    if system in ("water", "co2", "lj"):
        return float(config["sampling"][system]["box"][2]), f"sampling.{system}.box"
    if system == "hard_rods":
        return float(config["hard_rods"]["box_length"]), "hard_rods.box_length"
    if system == "pets":
        return float(config["pets"]["pore_width"]) + 2 * float(config["pets"]["padding"]), "pets.pore_width + 2 pets.padding"
    return None


def _check_window(config: Mapping[str, Any], system: str) -> None:
    windows = config["cdft"]["window"]
    if system not in windows:
        _fail(f"cdft.window.{system}", f"missing: the window half-width of the {system} functional")
    length = _box_length(config, system)
    if length is not None and windows[system] > length[0]:
        _fail(f"cdft.window.{system}", f"half-width {windows[system]} exceeds the periodic box length {length[0]} ({length[1]}) the profiles live in")


def _check_mlip(config: Mapping[str, Any], molecular: list[str]) -> None:
    mlip = config["mlip"]
    descriptor, training, explore = mlip["descriptor"], mlip["training"], mlip["explore"]
    rcut = float(descriptor["rcut"])
    if descriptor["rcut_smth"] >= rcut:
        _fail("mlip.descriptor.rcut_smth", f"{descriptor['rcut_smth']} must be below mlip.descriptor.rcut ({rcut})")
    if training["decay_steps"] > training["steps"]:
        _fail("mlip.training.decay_steps", f"{training['decay_steps']} exceeds mlip.training.steps ({training['steps']})")
    sel = descriptor["sel"]
    if descriptor["type"] == "se_e2_a" and sel != "auto":
        for system in molecular:
            type_map = get_molecule(system).type_map
            if isinstance(sel, int) or len(sel) != len(type_map):
                _fail("mlip.descriptor.sel", f"se_e2_a needs one count per element of {system}'s type map {list(type_map)}, got {sel}")
    for system in molecular:
        block = config["sampling"][system]
        densest = max(block["density_range"][1], block["slab_density"])
        edge = (explore["molecules"] / densest) ** (1.0 / 3.0)
        if 2 * rcut > edge:
            needed = math.ceil(densest * (2 * rcut) ** 3)
            _fail("mlip.explore.molecules", f"{explore['molecules']} {system} molecules at the densest sampled state ({densest} Å^-3) make a {edge:.1f} Å box, "
                  f"shorter than twice mlip.descriptor.rcut ({rcut} Å); use at least {needed}")
        # an environment is cut from exploration boxes and from the packed bulk boxes: each must hold the cut twice
        environment = config["reference"]["environment"]
        reach = environment["core_radius"] + environment["shell"]
        for key, n in (("mlip.explore.molecules", explore["molecules"]), ("reference.environment.bulk_molecules", environment["bulk_molecules"])):
            edge = (n / densest) ** (1.0 / 3.0)
            if 2 * reach > edge and (key == "mlip.explore.molecules" or environment["bulk_frames"] + environment["bulk_test_frames"] > 0):
                _fail(key, f"{n} {system} molecules at {densest} Å^-3 make a {edge:.1f} Å box, shorter than twice the environment cut "
                      f"reference.environment.core_radius + shell ({reach} Å); use at least {math.ceil(densest * (2 * reach) ** 3)}")


def _check_multiple(block: Mapping[str, Any], key: str, spacing_key: str, system: str) -> None:
    length, dz = float(block[key]), float(block[spacing_key])
    points = round(length / dz)
    if (points < 1 and length > 0) or abs(points * dz - length) > 1e-9 * max(1.0, length):
        _fail(f"{system}.{key}", f"{length} is not a multiple of the grid spacing {system}.{spacing_key} ({dz})")
