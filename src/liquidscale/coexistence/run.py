"""The coexistence step of one system: a free liquid slab per temperature, run with the system's own potential and the
sampling stage's dynamics, analysed by ``coexistence.slab``, written to ``results/{system}/coexistence/``.

Water and CO2 run the final DeePMD model in the torch engine, every temperature a replica of one batch (one model
call per step for all of them, on the GPU in production); lj runs the LJTS potential in the engine
``sampling.lj.engine`` names (LAMMPS one temperature after another, or the torch engine batched).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import atomic_path, provenance, write_json
from ..molecules import MOLECULES
from .slab import STATUS_OK, Coexistence, SlabSampler, failed, liquid_rdf, plateau_densities

SLAB_SYSTEMS = ("water", "co2", "lj")
# the sampling stage's keys that set a system's dynamics, besides its sampling.<system> block
ENGINE_KEYS = ("minimisation_steps", "check_every", "max_temperature_ratio", "md_wall_height", "precision")
# keys of a sampling.<system> block that shape only the sampling runs (their boxes, state points, bins, V_ext, Widom)
SAMPLING_ONLY_KEYS = ("box", "density_range", "temperature_range", "bin_width", "potential_lengths", "widom")

log = logging.getLogger(__name__)


def coexistence_settings(config: Mapping[str, Any], system: str, action: str) -> dict[str, Any]:
    """What ``liquidscale coexistence run`` reads for ``system``: the coexistence section with this system's block
    only, and the sampling keys of its dynamics; so a new sampling.runs, sampling box or another system's slab
    reruns nothing. ``compare`` reads only the tolerance: a new one reruns the comparison, never a slab."""
    if system not in SLAB_SYSTEMS:
        raise UserError(f"coexistence: system '{system}' has no simulation (one of {list(SLAB_SYSTEMS)})")
    if action == "compare":
        return {"system": system, "coexistence": {"functional_tolerance": config["coexistence"]["functional_tolerance"]}}
    coexistence = {key: value for key, value in config["coexistence"].items() if key not in (*SLAB_SYSTEMS, "functional_tolerance")}
    sampling = {key: config["sampling"][key] for key in ENGINE_KEYS}
    dynamics = {key: value for key, value in config["sampling"][system].items() if key not in SAMPLING_ONLY_KEYS}
    return {
        "system": system,
        "seed": config["seed"],
        "system_settings": config.get(system, {}),
        "reference_method": _reference_method(config, system),
        "coexistence": {**coexistence, system: config["coexistence"][system]},
        "sampling": {**sampling, system: dynamics},
    }


def _reference_method(config: Mapping[str, Any], system: str) -> dict[str, Any] | None:
    """The DFT functional and dispersion the MLIP was trained on (water, CO2): which published g(r) is 'same
    functional'. None for lj, whose potential is the LJTS pair potential itself."""
    if system not in MOLECULES:
        return None
    method = config["reference"]["method"]
    return {"xc": method["xc"], "dispersion": method.get("dispersion")}


def check_settings(settings: Mapping[str, Any]) -> None:
    """The job's own check of what the schema cannot say (``constraints`` repeats it at DAG build)."""
    system, common = settings["system"], settings["coexistence"]
    block = common[system]
    samples = common["production_steps"] // common["sample_every"]
    if samples < common["blocks"]:
        raise UserError(f"config key 'coexistence.production_steps': {common['production_steps']} steps sampled every {common['sample_every']} give {samples} samples, fewer than coexistence.blocks ({common['blocks']})")
    if block["rdf_max"] > 0.5 * min(block["box"][:2]):
        raise UserError(f"config key 'coexistence.{system}.rdf_max': {block['rdf_max']} exceeds half the shorter lateral edge of coexistence.{system}.box {block['box']}")
    if 2 * block["interface_margin"] >= block["box"][2]:
        raise UserError(f"config key 'coexistence.{system}.interface_margin': {block['interface_margin']} leaves no plateau in a box {block['box'][2]} long (coexistence.{system}.box)")


def slab_molecules(settings: Mapping[str, Any]) -> int:
    """Molecules of every slab: sampling.<system>.slab_density over slab_width of the box."""
    block = settings["coexistence"][settings["system"]]
    lx, ly, lz = block["box"]
    return max(2, round(settings["sampling"][settings["system"]]["slab_density"] * lx * ly * block["slab_width"] * lz))


def run_coexistence(settings: Mapping[str, Any], out: str | Path, model: str | Path | None = None, threads: int = 1) -> list[Coexistence]:
    """Run the slabs, analyse them and write the step's files into the folder ``out``; returns the verdict per temperature."""
    import torch

    from ..sampling.batch import chemistry
    from ..sampling.initial import place_molecules
    from ..sampling.statepoints import derived_seed

    torch.set_num_threads(threads)
    check_settings(settings)
    system, seed = settings["system"], int(settings["seed"])
    common, block = settings["coexistence"], settings["coexistence"][system]
    engine_block = settings["sampling"][system]
    chem = chemistry(system, engine_block)
    box = np.asarray(block["box"], dtype=float)
    temperatures = [float(T) for T in block["temperatures"]]
    n_molecules = slab_molecules(settings)
    placement_seeds = [derived_seed(seed, system, "coexistence placement", k) for k in range(len(temperatures))]
    seeds = [derived_seed(seed, system, "coexistence thermostat", k) for k in range(len(temperatures))]
    positions = np.stack(
        [place_molecules(chem.template, n_molecules, box, np.random.default_rng(s), engine_block["min_separation"], None, slab_width=block["slab_width"]) for s in placement_seeds]
    )
    samples = common["production_steps"] // common["sample_every"]
    log.info("%s: %d slabs of %d molecules in a %s box at T = %s", system, len(temperatures), n_molecules, box.tolist(), temperatures)

    def sampler(n_replicas: int) -> SlabSampler:
        return SlabSampler(n_replicas, box, block["bin_width"], samples, common["blocks"], block["rdf_max"], block["rdf_bin_width"])

    if system == "lj" and engine_block["engine"] == "lammps":
        slabs, kinetic, failures, compute = _run_lammps(settings, positions, temperatures, seeds, sampler)
    else:
        slabs, kinetic, failures, compute = _run_torch(settings, chem, positions, box, temperatures, seeds, model, sampler)
    results = []
    for k, (slab, row) in enumerate(slabs):
        if k in failures:
            results.append(failed(failures[k], slab.blocks))
        else:
            results.append(plateau_densities(slab.profiles()[:, row], slab.dz, 0.5 * block["slab_width"] * box[2], block["interface_margin"], n_molecules))
        log.info("T = %g: %s", temperatures[k], results[-1].describe())
    record = provenance(
        settings,
        seeds={f"T{k}": {"placement": p, "thermostat": t} for k, (p, t) in enumerate(zip(placement_seeds, seeds))},
        inputs={"model": model} if model else None,
        steps={key: common[key] for key in ("equilibration_steps", "production_steps", "sample_every")},
        timestep=engine_block["timestep"],
        units=chem.units.name,
        compute=compute,
        n_molecules=n_molecules,
        site=chem.site,
    )
    write_outputs(Path(out), system, chem.units, temperatures, n_molecules, slabs, results, kinetic, block["interface_margin"], record, settings["reference_method"])
    return results


def _run_torch(settings, chem, positions, box, temperatures, seeds, model, sampler):
    """All temperatures as replicas of one torch-engine batch, with the sampling stage's phases."""
    from ..device import device_record, resolve_device
    from ..sampling.batch import make_engine, md_phases

    common = settings["coexistence"]
    engine_settings = settings["sampling"]
    device = resolve_device(common["device"], "coexistence.device")
    engine = make_engine(settings["system"], engine_settings, chem, positions, box, temperatures, seeds, model, device)
    slab = sampler(len(temperatures))
    kinetic = np.zeros(len(temperatures))

    def sample(e) -> None:
        slab.sample(e)
        kinetic[e.ids.cpu().numpy()] += e.kinetic_temperature().cpu().numpy()

    engine.minimise(engine_settings["minimisation_steps"], engine_settings[settings["system"]]["max_displacement"])
    for phase in md_phases(common, engine_settings[settings["system"]]):
        engine.friction = phase.friction
        engine.run(phase.steps, sample if phase.sampled else None, every=common["sample_every"], phase=phase.name)
    with np.errstate(invalid="ignore", divide="ignore"):
        kinetic = kinetic / slab.block_samples.sum(0)  # NaN for a replica that failed before production
    compute = {**device_record(engine.x.device.type, engine_settings["precision"]), "engine": "liquidscale torch Langevin (BAOAB)"}
    return [(slab, k) for k in range(len(temperatures))], kinetic, dict(engine.failures), compute


def _run_lammps(settings, positions, temperatures, seeds, sampler):
    """One LAMMPS slab per temperature (the sampling engine's protocol: GJF Langevin, centre of mass held by fix recenter)."""
    from ..device import device_record
    from ..md.lammps_engine import ReplicaSpec, lammps_version, run_replica

    common = settings["coexistence"]
    engine_settings = settings["sampling"]
    block = engine_settings["lj"]
    slabs, kinetic, failures = [], np.zeros(len(temperatures)), {}
    for k, (T, seed) in enumerate(zip(temperatures, seeds)):
        spec = ReplicaSpec(
            run=k, n_atoms=positions.shape[1], box=tuple(settings["coexistence"]["lj"]["box"]), temperature=T, thermostat_seed=seed, external=None,
            cutoff=float(block["cutoff"]), timestep=float(block["timestep"]), friction=float(block["friction"]),
            minimisation_steps=int(engine_settings["minimisation_steps"]), max_displacement=float(block["max_displacement"]),
            equilibration_steps=int(common["equilibration_steps"]), production_steps=int(common["production_steps"]),
            sample_every=int(common["sample_every"]), widom_insertions=0, widom_every=int(common["sample_every"]),
        )
        slab = sampler(1)
        log.info("T = %g: LAMMPS slab, %d + %d steps", T, spec.equilibration_steps, spec.production_steps)
        kinetic_sum, failure = run_replica(spec, positions[k], slab, None)
        kinetic[k] = kinetic_sum / slab.taken if slab.taken else math.nan
        if failure:
            failures[k] = failure
        slabs.append((slab, 0))
    return slabs, kinetic, failures, {**device_record("cpu", "float64"), "engine": f"lammps {lammps_version()}"}


def write_outputs(out: Path, system: str, units, temperatures, n_molecules: int, slabs, results: list[Coexistence], kinetic, margin: float, record,
                  method: dict | None) -> None:
    """The tables, the figure and the provenance, each written atomically; the summary table last, so a job killed
    while writing never leaves a complete-looking coexistence.csv beside missing files. ``method``: the DFT labels'
    xc and dispersion, which published g(r) rows count as the same functional (``rdf.relation``)."""
    import pandas as pd

    from ..analysis.units import has_lab_units, kg_per_m3
    from .figures import coexistence_figure
    from .rdf import peak_table, published_peaks

    rows, profile_rows, rdf_rows, liquids = [], [], [], []
    for T, (slab, row), result, T_kin in zip(temperatures, slabs, results, kinetic):
        rows.append({"T": T, "status": result.status, "reason": result.reason, "n_molecules": n_molecules,
                     "rho_vapour": result.rho_vapour, "rho_vapour_stderr": result.rho_vapour_stderr,
                     "rho_liquid": result.rho_liquid, "rho_liquid_stderr": result.rho_liquid_stderr,
                     "blocks": result.blocks, "dividing_surface": result.dividing_surface, "T_kinetic": T_kin})
        if has_lab_units(system):
            for name in ("rho_vapour", "rho_vapour_stderr", "rho_liquid", "rho_liquid_stderr"):
                rows[-1][f"{name}_kg_m3"] = float(kg_per_m3(getattr(result, name), system))
        block_profiles = slab.profiles()[:, row]  # NaN in every block of a replica that failed before production
        rho, error = block_profiles.mean(0), block_profiles.std(0, ddof=1) / math.sqrt(slab.blocks)
        profile_rows.append(pd.DataFrame({"T": T, "z": slab.z, "rho": rho, "rho_stderr": error}))
        edges = slab.rdf_edges
        g = liquid_rdf(slab, row, result, margin)
        rdf_rows.append(pd.DataFrame({"T": T, "r": 0.5 * (edges[1:] + edges[:-1]), "g": g}))
        liquids.append((T, g, result.rho_liquid))
    table, profiles, rdf = pd.DataFrame(rows), pd.concat(profile_rows), pd.concat(rdf_rows)
    peaks = peak_table(method, edges, liquids, published_peaks(system))
    for name, frame in (("profiles.csv", profiles), ("rdf.csv", rdf), ("rdf_peaks.csv", peaks)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    coexistence_figure(system, {"length_unit": units.length, "energy_unit": units.energy, "temperature_unit": units.temperature, "dimension": 3},
                       table, profiles, rdf, peaks, out / "coexistence.png")
    write_json(out / "provenance.json", record)
    with atomic_path(out / "coexistence.csv") as tmp:
        table.to_csv(tmp, index=False)


def summary_line(results: list[Coexistence], temperatures) -> str:
    ok = sum(r.status == STATUS_OK for r in results)
    return f"{ok} of {len(results)} temperatures gave coexisting densities ({', '.join(f'T {T:g}: {r.status}' for T, r in zip(temperatures, results))})"

