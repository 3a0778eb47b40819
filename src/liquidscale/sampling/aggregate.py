"""Stream the sampling batch files into one profile dataset per system (``profiles.nc``).

Files are read one at a time and their rows written into a netCDF file whose run dimension was
sized from the batch headers, so memory holds one batch, never the campaign. Each batch is checked
against the ``liquidscale.dataset`` contract before it is copied; the train/val/test split is by run,
ok and failed runs apart (``liquidscale.dataset.split_runs``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import dataset as names
from ..errors import UserError, damaged_input
from ..io import atomic_path, canonical_hash, provenance
from ..logs import Throttle, duration
from .batch import POTENTIAL, RHO_FORCE, RHO_FORCE_STDERR, T_KINETIC

RHO_HISTOGRAM = "rho_histogram"
RHO_HISTOGRAM_STDERR = "rho_histogram_stderr"
# profile-dataset variable -> batch-file variable, per estimator: the chosen one becomes rho and
# rho_stderr, the other is kept under its own name (batch files hold the histogram as rho)
ESTIMATOR_VARIABLES = {
    names.ESTIMATOR_HISTOGRAM: {names.RHO: names.RHO, names.RHO_STDERR: names.RHO_STDERR, RHO_FORCE: RHO_FORCE, RHO_FORCE_STDERR: RHO_FORCE_STDERR},
    names.ESTIMATOR_FORCE: {names.RHO: RHO_FORCE, names.RHO_STDERR: RHO_FORCE_STDERR, RHO_HISTOGRAM: names.RHO, RHO_HISTOGRAM_STDERR: names.RHO_STDERR},
}
PER_RUN_EXTRAS = (T_KINETIC, POTENTIAL, "batch")
# per-run variables only some engines write (the LAMMPS engine's Widom beta mu): copied when the first batch has them
OPTIONAL_PER_RUN_EXTRAS = (names.BETA_MU_WIDOM, names.BETA_MU_WIDOM_STDERR)
GLOBAL_ATTRS = ("system", "site", "dimension", "length_unit", "energy_unit", "k_B", "chemical_potential_convention")

log = logging.getLogger(__name__)


# what a damaged netCDF file raises: OSError (HDF header), RuntimeError (HDF data), ValueError/KeyError (contents)
UNREADABLE = (OSError, RuntimeError, ValueError, KeyError)


def _open(path: Path):
    import xarray as xr

    try:
        return xr.load_dataset(path)
    except UNREADABLE as exc:
        raise damaged_input(path, "sampling batch file", "sampling_batch", exc) from None


def _run_index(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Run ids and ok mask of every batch file, read from their headers before any profile is copied."""
    import netCDF4

    ids, ok = [], []
    for path in paths:
        try:
            with netCDF4.Dataset(path) as nc:
                ids.append(np.asarray(nc.variables[names.RUN][:]))
                ok.append(np.asarray(nc.variables[names.STATUS][:]) == names.STATUS_OK)
        except UNREADABLE as exc:
            raise damaged_input(path, "sampling batch file", "sampling_batch", exc) from None
    return np.concatenate(ids), np.concatenate(ok)


def aggregate(batch_files: Sequence[str | Path], out: str | Path, settings: Mapping[str, Any]) -> dict[str, int]:
    """Write ``out`` from ``batch_files`` (in run order); returns counts of ok and failed runs."""
    import netCDF4

    paths = [Path(p) for p in batch_files]
    if not paths:
        raise UserError("no sampling batch files to aggregate (config key 'sampling.runs')")
    profiles = settings["profiles"]
    estimator = profiles["estimator"]
    run_ids, ok = _run_index(paths)
    split = names.split_runs(run_ids, profiles["split"], seed=int(settings["seed"]), ok=ok)
    first = _with_estimator(_open(paths[0]), estimator, paths[0])
    z = first[names.Z].values
    counts = {"ok": 0, "failed": 0}
    batch_records = []
    with atomic_path(out) as tmp, netCDF4.Dataset(tmp, "w") as nc:
        nc.createDimension(names.RUN, len(run_ids))
        nc.createDimension(names.Z, len(z))
        variables = _define_variables(nc, first)
        nc.variables[names.Z][:] = z
        nc.variables[names.RUN][:] = run_ids
        nc.variables[names.SPLIT][:] = split
        offset = 0
        progress = Throttle(len(paths))
        for done, path in enumerate(paths, 1):
            batch = first if path == paths[0] else _with_estimator(_open(path), estimator, path)
            _check_batch(batch, path, first)
            n = batch.sizes[names.RUN]
            part = slice(offset, offset + n)
            batch = batch.assign({names.SPLIT: (names.RUN, split[part])})
            names.validate_profile_dataset(batch, source=str(path))
            for name in variables:
                if name in (names.Z, names.RUN, names.SPLIT):
                    continue
                values = batch[name].values
                nc.variables[name][part] = values.astype(str) if values.dtype.kind in "OU" else values
            status = batch[names.STATUS].values
            counts["ok"] += int((status == names.STATUS_OK).sum())
            counts["failed"] += int((status != names.STATUS_OK).sum())
            batch_records.append(json.loads(batch.attrs["provenance"])["config_hash"] + batch.attrs.get("model_hash", ""))
            offset += n
            if progress.due(done):
                log.info("batch file %d of %d (%d runs so far: %d ok, %d failed), ETA %s", done, len(paths), offset, counts["ok"], counts["failed"], duration(progress.eta(done)))
        for key in GLOBAL_ATTRS:
            nc.setncattr(key, first.attrs[key])
        record = provenance(settings, seeds={"split": int(settings["seed"])}, batches=len(paths), batch_hash=canonical_hash(batch_records), sampling_config_hash=json.loads(first.attrs["provenance"])["config_hash"], model_hash=first.attrs.get("model_hash", ""))
        nc.setncattr("provenance", json.dumps(record, sort_keys=True, default=str))
        nc.setncattr(names.DENSITY_ESTIMATOR, estimator)
    return counts


def _with_estimator(batch, estimator: str, path: Path):
    """The batch with the chosen estimator as rho/rho_stderr (force-sampling densities unclipped: they may
    dip a little below zero where the density vanishes) and the estimator recorded as an attribute."""
    sources = ESTIMATOR_VARIABLES[estimator]
    missing = sorted(set(sources.values()) - set(batch.variables))
    if missing:
        raise UserError(f"{path}: batch file without {missing} (written by an older version without standard errors); rerun its sampling job")
    chosen = batch.assign({name: batch[source] for name, source in sources.items()})
    chosen.attrs[names.DENSITY_ESTIMATOR] = estimator
    return chosen


def _define_variables(nc, template) -> list[str]:
    """Create every variable of the output with the template batch's dtype and attributes."""
    defined = []
    names_2d = [names.V_EXT, *ESTIMATOR_VARIABLES[template.attrs[names.DENSITY_ESTIMATOR]]]
    names_1d = [name for name, dims in names.VARIABLE_DIMS.items() if dims == (names.RUN,)] + list(PER_RUN_EXTRAS) + [n for n in OPTIONAL_PER_RUN_EXTRAS if n in template]
    meta = names.variable_metadata(3, template.attrs["length_unit"], template.attrs["energy_unit"], template[names.TEMPERATURE].attrs["units"])
    for name, dims in [(names.Z, (names.Z,)), (names.RUN, (names.RUN,))] + [(n, (names.RUN, names.Z)) for n in names_2d] + [(n, (names.RUN,)) for n in names_1d]:
        source = template[name] if name != names.SPLIT else None
        attrs = dict(meta.get(name, {}) if source is None else source.attrs)
        if source is None:
            dtype = np.int8
        elif source.dtype.kind in "OU":
            dtype = str
        else:
            dtype = source.dtype
        chunks = {"chunksizes": (1, template.sizes[names.Z])} if len(dims) == 2 else {}
        var = nc.createVariable(name, dtype, dims, zlib=len(dims) == 2, **chunks)
        for key, value in attrs.items():
            var.setncattr(key, value)
        defined.append(name)
    return defined


def _check_batch(batch, path: Path, first) -> None:
    if not np.array_equal(batch[names.Z].values, first[names.Z].values):
        raise UserError(f"{path}: z grid differs from {first.attrs['system']}'s first batch; all runs of a system must share box length and bin width (rerun sampling)")
