"""One sampling job: B replicas of the same composition, equilibrated then sampled, written as netCDF.

A job owns its replicas' whole life: placement, minimisation, equilibration, production with the
profile accumulators, and the batch file with one row per run (failed runs keep their reason).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import dataset as ds_names
from ..device import device_record, resolve_device
from ..errors import UserError
from ..config import RESOURCE_KEYS
from ..io import atomic_path, canonical_hash, file_hash, provenance
from ..logs import MDProgress
from ..md.engine import FailureChecks, LangevinEngine
from ..md.potential import METAL, REDUCED, Units
from .checkpoint import Checkpoint
from .initial import place_molecules
from .profiles import ProfileAccumulator
from .statepoints import SystemSampling, derived_seed, system_sampling

# extra per-run variables the batch files carry beside the profile-dataset contract
RHO_FORCE = "rho_force"
RHO_FORCE_STDERR = "rho_force_stderr"
POTENTIAL = "potential"
T_KINETIC = "T_kinetic"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chemistry:
    """What the engine needs about the particles of one system."""

    molecule_symbols: tuple[str, ...]
    template: np.ndarray  # (atoms per molecule, 3), density site at the origin
    masses: np.ndarray  # (atoms per molecule,)
    site_index: int
    site: str
    units: Units
    molecule: Any  # liquidscale.molecules.Molecule, None for atomic fluids


def chemistry(system: str, block: Mapping[str, Any]) -> Chemistry:
    if system == "lj":
        return Chemistry(("X",), np.zeros((1, 3)), np.ones(1), 0, "X", REDUCED, None)
    from ..molecules import get_molecule

    molecule = get_molecule(system)
    site = block.get("site") or molecule.default_site
    index = molecule.site_index(site)
    masses = molecule.masses.copy()
    heavy_h = block.get("hydrogen_mass")
    if heavy_h:
        # hydrogen mass repartitioning: move mass from the bonded heavy atom, total mass unchanged
        hydrogens = np.array([s == "H" for s in molecule.symbols])
        masses[0] -= (heavy_h - masses[hydrogens]).sum()
        masses[hydrogens] = heavy_h
    geometry = molecule.geometry()
    return Chemistry(tuple(molecule.symbols), geometry - geometry[index], masses, index, site, METAL, molecule)


def make_potential(system: str, block: Mapping[str, Any], symbols: list[str], model: str | Path | None, device: str, precision: str):
    if system == "lj":
        from ..md.potential import LennardJones

        return LennardJones(block["cutoff"])
    if model is None:
        raise UserError(f"system '{system}' needs a DeePMD model (--model, the mlip stage's final model)")
    from ..mlip.deepmd_potential import DeepMDPotential

    return DeepMDPotential(model, symbols, device=device, precision=precision)


def make_engine(system: str, common: Mapping[str, Any], chem: Chemistry, positions: np.ndarray, box: np.ndarray, temperatures, seeds, model, device: str, externals=None) -> LangevinEngine:
    """The torch engine of ``system`` for replicas at ``positions`` [B, N, 3] in one ``box``: its potential (the DeePMD
    model for water and CO2), masses, density site, failure checks and precision from the sampling settings ``common``
    (``sampling`` with the system's block), so every stage that runs MD of a system runs the same dynamics."""
    block = common[system]
    n_molecules = positions.shape[1] // len(chem.molecule_symbols)
    symbols = list(chem.molecule_symbols) * n_molecules
    return LangevinEngine(
        make_potential(system, block, symbols, model, device, common["precision"]),
        symbols,
        np.tile(chem.masses, n_molecules),
        np.tile(np.arange(len(chem.molecule_symbols)) == chem.site_index, n_molecules),
        positions,
        np.repeat(np.asarray(box, dtype=float)[None], len(positions), 0),
        temperatures,
        seeds,
        chem.units,
        block["timestep"],
        block["friction"],
        externals=externals,
        checks=FailureChecks(common["check_every"], block["min_distance"], common["max_temperature_ratio"], chem.molecule),
        md_wall_height=common["md_wall_height"],
        md_wall_softness=block["md_wall_softness"],
        device=device,
        dtype=common["precision"],
    )


def run_batch(
    settings: Mapping[str, Any], table, batch: int, out: str | Path, model: str | Path | None = None, threads: int = 1, checkpoint_minutes: float = 10.0
) -> None:
    """Run batch ``batch`` of the state-point ``table`` and write its netCDF to ``out``.

    Every ``checkpoint_minutes`` the job saves its state beside ``out``; rerun, it continues from there and
    gives the same file as an uninterrupted run.
    """
    import torch

    common = settings["sampling"]
    system = settings["system"]
    block = common[system]
    torch.set_num_threads(threads)
    s = system_sampling(settings)
    rows = table[table["batch"] == batch].sort_values("replica")
    if rows.empty:
        raise UserError(f"batch {batch} is not in the state-point table (it has {table['batch'].nunique()} batches)")
    chem = chemistry(system, block)
    device = resolve_device(common["device"], "sampling.device")
    n_molecules = int(rows["n_molecules"].iloc[0])
    log.info("%s batch %d: runs %s, %d molecules each, on %s", system, batch, rows["run"].tolist(), n_molecules, device)
    box = np.array(s.box)
    externals = [s.potential(int(seed)) for seed in rows["potential_seed"]]
    positions = np.stack(
        [
            place_molecules(
                chem.template,
                n_molecules,
                box,
                np.random.default_rng(derived_seed(s.seed, system, "placement", int(run))),
                block["min_separation"],
                external,
                slab_width=float(width),
            )
            for run, external, width in zip(rows["run"], externals, rows["slab_width"])
        ]
    )
    if system == "lj" and block["engine"] == "lammps":
        from ..md.lammps_engine import run_lammps_batch

        return run_lammps_batch(settings, s, chem, rows, externals, positions, out, batch_dataset)
    engine = make_engine(system, common, chem, positions, box, rows["T"].to_numpy(), rows["thermostat_seed"].to_numpy(), model, device, externals)
    profiles = ProfileAccumulator(len(rows), s.box[2], block["bin_width"], common["production_steps"] // common["sample_every"], device=device)
    kinetic = np.zeros(len(rows))

    def sample(e: LangevinEngine) -> None:
        profiles.sample(e)
        kinetic[e.ids.cpu().numpy()] += e.kinetic_temperature().cpu().numpy()

    phases = md_phases(common, block)
    total = sum(phase.steps for phase in phases)
    checkpoint = Checkpoint(checkpoint_path(out), batch_fingerprint(settings, rows, model), checkpoint_minutes)
    state = checkpoint.load()
    if state is None:
        engine.minimise(common["minimisation_steps"], block["max_displacement"])
        done = 0
    else:
        engine.load_state_dict(state["engine"])
        profiles.load_state_dict(state["profiles"])
        kinetic[:] = state["kinetic"].numpy()
        done = int(state["done"])
        log.info("%s: resuming after MD step %d of %d", checkpoint.path, done, total)
    # chunks a multiple of the check and sample intervals: running chunk by chunk checks, samples and
    # draws exactly as one uninterrupted run does, so a checkpoint between chunks changes no result
    chunk = math.lcm(common["check_every"], common["sample_every"])
    start = 0
    for phase in phases:
        engine.friction = phase.friction
        end = start + phase.steps
        progress = MDProgress(engine, end - done, phase.name) if done < end and engine.n_active else None
        while done < end and engine.n_active:
            n = min(chunk, end - done)
            engine.run(n, sample if phase.sampled else None, every=common["sample_every"], progress=progress)
            done += n
            if checkpoint.due() and done < total:
                checkpoint.save({"done": done, "engine": engine.state_dict(), "profiles": profiles.state_dict(), "kinetic": torch.from_numpy(kinetic.copy())})
        start = end
    dataset = batch_dataset(settings, s, chem, rows, externals, engine.failures, profiles, kinetic, model, device_record(engine.x.device.type, common["precision"]))
    with atomic_path(out) as tmp:
        dataset.to_netcdf(tmp)
    checkpoint.remove()
    log.info("%s batch %d: %d runs ok, %d failed -> %s", system, batch, len(rows) - len(engine.failures), len(engine.failures), out)


@dataclass(frozen=True)
class Phase:
    name: str  # in the job's progress lines
    steps: int
    friction: float
    sampled: bool


def md_phases(common: Mapping[str, Any], block: Mapping[str, Any]) -> list[Phase]:
    """Equilibration, then production with the profile accumulators.

    The first half of equilibration thermalises with 10x friction: the strain energy of the random packing
    is removed in ~0.1/gamma instead of heating the replica; then it equilibrates with the production friction.
    """
    equilibration, friction = common["equilibration_steps"], block["friction"]
    return [
        Phase("thermalisation", equilibration // 2, 10.0 * friction, False),
        Phase("equilibration", equilibration - equilibration // 2, friction, False),
        Phase("production", common["production_steps"], friction, True),
    ]


def checkpoint_path(out: str | Path) -> Path:
    """Where the job writing ``out`` keeps its checkpoint: beside it, so it survives a failed job."""
    return Path(f"{out}.checkpoint")


def batch_fingerprint(settings: Mapping[str, Any], rows, model: str | Path | None) -> str:
    """What decides a batch's result: its settings (thread count excluded: results do not depend on it), rows and model."""
    relevant = {key: value for key, value in settings.items() if key != "sampling"}
    relevant["sampling"] = {key: value for key, value in settings["sampling"].items() if key not in RESOURCE_KEYS}
    return canonical_hash({"settings": relevant, "rows": rows.to_csv(index=False), "model": file_hash(model) if model else None})


def batch_dataset(settings, s: SystemSampling, chem: Chemistry, rows, externals, failures: Mapping[int, str], profiles: ProfileAccumulator, kinetic_sum, model, compute: Mapping[str, Any]):
    """The batch file: the profile-dataset variables per run plus the force estimator and V_ext terms.

    ``failures``: failed run index -> reason; ``compute``: provenance's record of where the MD ran.
    """
    import xarray as xr

    n = len(rows)
    area = np.full(n, s.area)
    kT = chem.units.k_B * rows["T"].to_numpy()
    n_molecules = rows["n_molecules"].to_numpy()
    z = profiles.z
    md_externals = [e.finite(settings["sampling"]["md_wall_height"], settings["sampling"][s.system]["md_wall_softness"]) for e in externals]
    v_ext = np.stack([kT[i] * md_externals[i].beta_v(z) for i in range(n)])
    status = np.array([ds_names.STATUS_FAILED if i in failures else ds_names.STATUS_OK for i in range(n)], dtype=np.int8)
    reasons = np.array([failures.get(i, "") for i in range(n)], dtype=object)
    samples = profiles.samples.cpu().numpy()
    meta = ds_names.variable_metadata(3, chem.units.length, chem.units.energy, chem.units.temperature)
    per_run = {
        ds_names.TEMPERATURE: rows["T"].to_numpy(float),
        ds_names.MU: np.full(n, np.nan),
        ds_names.N_PARTICLES: n_molecules.astype(float),
        ds_names.AREA: area,
        ds_names.STATUS: status,
        ds_names.FAILURE_REASON: reasons,
    }
    data = {
        ds_names.RHO: ((ds_names.RUN, ds_names.Z), profiles.histogram_density(area), {**meta[ds_names.RHO], "long_name": "one-body density of the density site, histogram estimator"}),
        ds_names.RHO_STDERR: ((ds_names.RUN, ds_names.Z), profiles.histogram_stderr(area), {**meta[ds_names.RHO_STDERR], "long_name": "standard error of the histogram density (block averages)"}),
        RHO_FORCE: ((ds_names.RUN, ds_names.Z), profiles.force_density(area, kT, n_molecules), {**meta[ds_names.RHO], "long_name": "one-body density of the density site, force-sampling estimator"}),
        RHO_FORCE_STDERR: ((ds_names.RUN, ds_names.Z), profiles.force_stderr(area, kT, n_molecules), {**meta[ds_names.RHO_STDERR], "long_name": "standard error of the force-sampling density (block averages)"}),
        ds_names.V_EXT: ((ds_names.RUN, ds_names.Z), v_ext, {**meta[ds_names.V_EXT], "long_name": "external potential on the density site as sampled (hard walls as steep finite walls)"}),
        **{name: ((ds_names.RUN,), values, meta[name]) for name, values in per_run.items()},
        T_KINETIC: ((ds_names.RUN,), kinetic_sum / np.maximum(samples, 1), {"units": chem.units.temperature, "long_name": "mean kinetic temperature during production"}),
        POTENTIAL: ((ds_names.RUN,), np.array([json.dumps(e.to_dict()) for e in externals], dtype=object), {"long_name": "external potential terms (beta V in kT), liquidscale.external JSON"}),
        "batch": ((ds_names.RUN,), rows["batch"].to_numpy(), {"units": "1", "long_name": "sampling job"}),
    }
    common = settings["sampling"]
    steps = {k: common[k] for k in ("minimisation_steps", "equilibration_steps", "production_steps", "sample_every")}
    record = provenance(
        settings,
        seeds={f"run{int(r)}": {"potential": int(p), "thermostat": int(t)} for r, p, t in zip(rows["run"], rows["potential_seed"], rows["thermostat_seed"])},
        inputs={"model": model} if model else None,
        steps=steps,
        timestep=settings["sampling"][s.system]["timestep"],
        units=chem.units.name,
        compute=compute,
    )
    return xr.Dataset(
        data,
        coords={ds_names.Z: (ds_names.Z, z, meta[ds_names.Z]), ds_names.RUN: (ds_names.RUN, rows["run"].to_numpy(), meta[ds_names.RUN])},
        attrs={
            "system": s.system,
            "site": chem.site,
            "dimension": 3,
            "length_unit": chem.units.length,
            "energy_unit": chem.units.energy,
            "k_B": chem.units.k_B,
            "chemical_potential_convention": "canonical MD: mu unknown (NaN); beta*mu includes ln(Lambda^3)",
            "provenance": json.dumps(record, sort_keys=True, default=str),
            "model_hash": file_hash(model) if model else "",
            ds_names.DENSITY_ESTIMATOR: ds_names.ESTIMATOR_HISTOGRAM,
        },
    )
