"""Train, freeze and test one ensemble member with DeePMD-kit's PyTorch backend (``dp --pt ...``).

The training input is generated from the ``mlip`` config section; the members of an ensemble share
everything but their seeds. The held-out metrics (energy RMSE per atom, force RMSE) are evaluated here,
not by ``dp test``, because forces count with their weights (see :func:`held_out_errors`); on plain clusters
the two agree (tests/test_mlip_training.py).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, damaged_input

log = logging.getLogger(__name__)

# DeePMD checkpoints per training (its save_freq): a killed job loses at most 1/20 of its steps on retry
CHECKPOINTS_PER_TRAINING = 20


def member_seed(seed: int, system: str, iteration: int, member: int) -> int:
    """The seed of ensemble member ``member``: members differ only in this, iterations and systems too."""
    rng = np.random.default_rng([seed, sum(system.encode()), iteration, member])
    return int(rng.integers(1, 2**31 - 1))


def descriptor_input(descriptor: Mapping[str, Any], sel: int | list[int], seed: int) -> dict[str, Any]:
    """The ``model.descriptor`` block of a DeePMD input for se_e2_a or se_atten."""
    if descriptor["rcut_smth"] >= descriptor["rcut"]:
        raise UserError(f"config key 'mlip.descriptor.rcut_smth': {descriptor['rcut_smth']} must be below rcut {descriptor['rcut']}")
    block: dict[str, Any] = {
        "type": descriptor["type"],
        "rcut": descriptor["rcut"],
        "rcut_smth": descriptor["rcut_smth"],
        "sel": sel,
        "neuron": list(descriptor["neuron"]),
        "axis_neuron": descriptor["axis_neuron"],
        "seed": seed,
    }
    if descriptor["type"] == "se_e2_a":
        block["type_one_side"] = True
    else:
        block.update(attn_layer=descriptor["attention_layers"], attn=32, attn_dotr=True, type_one_side=True)
    return block


def resolve_sel(descriptor_type: str, sel_setting: Any, auto_value: Sequence[int], n_types: int) -> int | list[int]:
    """``sel`` in the form the descriptor wants: per type for se_e2_a, one total for se_atten."""
    sel = list(auto_value) if sel_setting == "auto" else sel_setting
    if descriptor_type == "se_atten":
        return int(sum(sel)) if isinstance(sel, list) else int(sel)
    if isinstance(sel, int) or len(sel) != n_types:
        raise UserError(f"config key 'mlip.descriptor.sel': se_e2_a needs one count per element of the type map ({n_types}), got {sel}")
    return [int(s) for s in sel]


def training_input(
    mlip: Mapping[str, Any], type_map: Sequence[str], sel: int | list[int], train_dirs: Sequence[str], seed: int
) -> dict[str, Any]:
    """A complete ``dp --pt train`` input; only ``seed`` differs between ensemble members."""
    training = mlip["training"]
    if training["decay_steps"] > training["steps"]:
        raise UserError(f"config key 'mlip.training.decay_steps': {training['decay_steps']} exceeds mlip.training.steps {training['steps']}")
    return {
        "model": {
            "type_map": list(type_map),
            "descriptor": descriptor_input(mlip["descriptor"], sel, seed),
            "fitting_net": {"neuron": list(mlip["fitting_neuron"]), "resnet_dt": True, "seed": seed},
        },
        "learning_rate": {
            "type": "exp",
            "start_lr": training["start_lr"],
            "stop_lr": training["stop_lr"],
            "decay_steps": training["decay_steps"],
        },
        "loss": {
            "type": "ener",
            "start_pref_e": training["start_pref_e"],
            "limit_pref_e": training["limit_pref_e"],
            # forces through the per-atom weighted term only (atom_pref.npy: 1 on core atoms and clusters,
            # reference.environment.shell_force_weight on an environment's shell, whose neighbours are cut)
            "start_pref_f": 0.0,
            "limit_pref_f": 0.0,
            "start_pref_pf": training["start_pref_f"],
            "limit_pref_pf": training["limit_pref_f"],
            "start_pref_v": 0.0,
            "limit_pref_v": 0.0,
        },
        "training": {
            "training_data": {"systems": list(train_dirs), "batch_size": training["batch_size"]},
            "numb_steps": training["steps"],
            "seed": seed,
            "disp_file": "lcurve.out",
            "disp_freq": max(1, training["steps"] // 50),
            "save_freq": max(1, training["steps"] // CHECKPOINTS_PER_TRAINING),
        },
    }


def dp_command() -> list[str]:
    """The ``dp`` entry point of the running interpreter's environment (falls back to PATH)."""
    beside = Path(sys.executable).parent / "dp"
    found = str(beside) if beside.exists() else shutil.which("dp")
    if found is None:
        raise UserError("the DeePMD-kit command 'dp' was not found; install deepmd-kit into this environment")
    return [found, "--pt"]


def run_dp(args: Sequence[str], workdir: Path, log: Path, threads: int) -> None:
    """Run one ``dp --pt`` command in ``workdir``; its output goes, line by line as it comes, to this job's
    stderr (the rule's log, which outlives a failed job's temporary folder) and is appended to ``log``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), DP_INTRA_OP_PARALLELISM_THREADS=str(threads), DP_INTER_OP_PARALLELISM_THREADS="1")
    last = ""
    with open(log, "a") as handle:
        command = f"$ dp --pt {' '.join(args)}\n"
        handle.write(command)
        sys.stderr.write(command)
        with subprocess.Popen([*dp_command(), *args], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace") as process:
            for line in process.stdout:
                handle.write(line)
                sys.stderr.write(line)
                sys.stderr.flush()
                last = line.strip() or last
    if process.returncode != 0:
        raise UserError(f"dp --pt {args[0]} failed with status {process.returncode} (last line: {last[-300:]!r}); DeePMD's full output is in this job's log")


def train_and_freeze(input_json: Path, workdir: Path, threads: int, restart: Path | None = None) -> Path:
    """``dp --pt train`` (continuing from the checkpoint ``restart`` if given) then ``dp --pt freeze`` in
    ``workdir``; returns the frozen ``model.pth``."""
    dp_log = workdir / "dp.log"
    run_dp(["train", str(input_json.resolve()), *(["--restart", restart.name] if restart else [])], workdir, dp_log, threads)
    run_dp(["freeze", "-o", "model.pth"], workdir, dp_log, threads)
    return workdir / "model.pth"


def training_folder(out: str | Path) -> Path:
    """Where the member written to ``out`` trains: beside it, so its checkpoints survive a failed job."""
    return Path(f"{out}.training")


def resume_training(folder: Path, fingerprint: str) -> Path | None:
    """Prepare ``folder``, where one member trains and which outlives a failed job; return the DeePMD
    checkpoint to restart from (None: train from the start).

    A folder left by an attempt with the same ``fingerprint`` (training input and data) is continued from
    DeePMD's latest checkpoint, with ``lcurve.out`` cut back to that step; any other folder (other
    settings, no checkpoint yet, an unreadable checkpoint) is said in one log line and cleared.
    """
    stamp = folder / "fingerprint"
    if folder.exists():
        checkpoint, problem = _latest_checkpoint(folder)
        if stamp.exists() and stamp.read_text() == fingerprint and checkpoint is not None:
            step = int(re.search(r"-(\d+)\.pt$", checkpoint.name).group(1))
            _trim_lcurve(folder / "lcurve.out", step)
            log.info("%s: restarting DeePMD training from %s (step %d)", folder, checkpoint.name, step)
            return checkpoint
        if not stamp.exists() or stamp.read_text() != fingerprint:
            problem = "left by other settings or data"
        log.warning("%s: %s, training from the start", folder, problem)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stamp.write_text(fingerprint)
    return None


def _latest_checkpoint(folder: Path) -> tuple[Path | None, str]:
    """DeePMD's latest checkpoint in ``folder`` (its ``checkpoint`` pointer file), or None and why not."""
    import torch

    pointer = folder / "checkpoint"
    if not pointer.exists():
        return None, "no DeePMD checkpoint yet"
    path = folder / Path(pointer.read_text().strip()).name
    if not re.search(r"-\d+\.pt$", path.name):
        return None, f"unexpected checkpoint name {path.name}"
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means: start over
        return None, f"damaged checkpoint {path.name} ({type(exc).__name__})"
    return path, ""


def _trim_lcurve(path: Path, step: int) -> None:
    """Drop the learning-curve rows after ``step``: the restarted training writes them again."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines(keepends=True) if line.startswith("#") or not line.strip() or int(float(line.split()[0])) <= step]
        path.write_text("".join(kept))


def held_out_errors(model: Path, part: Path, type_map: Sequence[str]) -> dict[str, float]:
    """Energy RMSE per atom and force RMSE of ``model`` on every system below ``part``; NaN when it holds none.

    Forces count with their weight (``atom_pref``), as in training: 1 on every atom of a plain cluster and an
    environment's core, ``reference.environment.shell_force_weight`` on its shell atoms, whose neighbours are
    cut; a held-out bulk environment weighs its core atoms only. Energies count per frame.
    """
    from . import data
    from .deepmd_potential import DeepMDPotential

    energy_sq, force_sq, frames, components = 0.0, 0.0, 0, 0.0
    for folder in data.system_folders([part]) if part.is_dir() else []:
        labelled = data.load_frames(folder, type_map)
        symbols = [type_map[t] for t in labelled.atom_types]
        cells = None if labelled.cells is None else np.diagonal(labelled.cells, axis1=1, axis2=2)
        energy, forces = DeepMDPotential(model, symbols)(labelled.coords, cells)
        energy_sq += float((((energy.numpy() - labelled.energies) / len(symbols)) ** 2).sum())
        force_sq += float((labelled.weights[..., None] * (forces.numpy() - labelled.forces) ** 2).sum())
        frames += len(labelled.energies)
        components += 3.0 * float(labelled.weights.sum())
    if frames == 0:
        return {"energy_rmse_per_atom": float("nan"), "force_rmse": float("nan"), "frames": 0}
    return {"energy_rmse_per_atom": float(np.sqrt(energy_sq / frames)), "force_rmse": float(np.sqrt(force_sq / components)), "frames": frames}


def force_column(curve: Mapping[str, np.ndarray]) -> np.ndarray:
    """The training force RMSE of a learning curve: the weighted term (rmse_pf_trn) where it was trained on."""
    return curve["rmse_pf_trn"] if "rmse_pf_trn" in curve else curve["rmse_f_trn"]


def read_lcurve(path: Path) -> dict[str, np.ndarray]:
    """Columns of DeePMD's ``lcurve.out`` by their header names (step, rmse_e_trn, rmse_f_trn, lr, ...)."""
    try:
        lines = path.read_text().splitlines()
        header = next((line for line in lines if line.startswith("#") and "step" in line), None)
        if header is None:
            raise ValueError("no '# step ...' header line")
        names = header.lstrip("#").split()
        rows = [line for line in lines if line.strip() and not line.startswith("#")]
        if not rows:
            raise ValueError("no data rows")
        values = np.loadtxt(rows, ndmin=2)
        if values.shape[1] != len(names):
            raise ValueError(f"{values.shape[1]} columns under a header of {len(names)}")
    except (OSError, ValueError) as exc:
        raise damaged_input(path, "DeePMD learning curve", "mlip_train", exc, path.parent) from None
    return {name: values[:, k] for k, name in enumerate(names)}


def plot_learning_curves(curves: Sequence[Mapping[str, np.ndarray]], path: Path, title: str) -> None:
    from ..plotting import save

    save(learning_curves_figure(curves, title), path, formats=(path.suffix.lstrip(".") or "png",))


def learning_curves_figure(curves: Sequence[Mapping[str, np.ndarray]], title: str):
    """Training energy and force RMSE against step for every ensemble member (log scale)."""
    from ..plotting import legend_beside, new_figure

    fig, (energy, force) = new_figure(2, panel_size=(3.8, 3.0), legend_width=0.8)
    fig.suptitle(f"{title}: DeePMD training curves of the ensemble")
    for member, curve in enumerate(curves):
        energy.semilogy(curve["step"], curve["rmse_e_trn"], color=f"C{member}", label=f"model {member}")
        force.semilogy(curve["step"], force_column(curve), color=f"C{member}", label=f"model {member}")
    energy.set(xlabel="training step", ylabel="training energy RMSE\nper atom [eV]")
    force.set(xlabel="training step", ylabel="training force RMSE [eV/Å]")
    legend_beside(force)
    return fig
