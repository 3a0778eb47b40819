"""Stream the sampling batch files into one profile dataset per system (``profiles.nc``).

Files are read one at a time and their rows written into a netCDF file whose run dimension was
sized from the batch headers, so memory holds one batch, never the campaign. Each batch is checked
against the ``liquidscale.dataset`` contract before it is copied; the train/val/test split is by run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import dataset as names
from ..errors import UserError
from ..io import atomic_path, canonical_hash, provenance
from .batch import POTENTIAL, RHO_FORCE, T_KINETIC

RHO_HISTOGRAM = "rho_histogram"
PER_RUN_EXTRAS = (T_KINETIC, POTENTIAL, "batch")
GLOBAL_ATTRS = ("system", "site", "dimension", "length_unit", "energy_unit", "k_B", "chemical_potential_convention")


def _open(path: Path):
    import xarray as xr

    try:
        return xr.load_dataset(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable sampling batch file ({exc}); rerun its sampling job") from None


def _run_counts(paths: Sequence[Path]) -> list[int]:
    import netCDF4

    counts = []
    for path in paths:
        try:
            with netCDF4.Dataset(path) as nc:
                counts.append(len(nc.dimensions[names.RUN]))
        except (OSError, KeyError) as exc:
            raise UserError(f"{path}: not a readable sampling batch file ({exc}); rerun its sampling job") from None
    return counts


def _run_ids(paths: Sequence[Path]) -> np.ndarray:
    import netCDF4

    ids = []
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            ids.append(np.asarray(nc.variables[names.RUN][:]))
    return np.concatenate(ids)


def aggregate(batch_files: Sequence[str | Path], out: str | Path, settings: Mapping[str, Any]) -> dict[str, int]:
    """Write ``out`` from ``batch_files`` (in run order); returns counts of ok and failed runs."""
    import netCDF4

    paths = [Path(p) for p in batch_files]
    if not paths:
        raise UserError("no sampling batch files to aggregate (config key 'sampling.runs')")
    profiles = settings["profiles"]
    estimator = profiles["estimator"]
    run_ids = _run_ids(paths)
    split = names.split_runs(run_ids, profiles["split"], seed=int(settings["seed"]))
    first = _open(paths[0])
    z = first[names.Z].values
    counts = {"ok": 0, "failed": 0}
    batch_records = []
    with atomic_path(out) as tmp, netCDF4.Dataset(tmp, "w") as nc:
        nc.createDimension(names.RUN, len(run_ids))
        nc.createDimension(names.Z, len(z))
        variables = _define_variables(nc, first, estimator)
        nc.variables[names.Z][:] = z
        nc.variables[names.RUN][:] = run_ids
        nc.variables[names.SPLIT][:] = split
        offset = 0
        for path in paths:
            batch = first if path == paths[0] else _open(path)
            _check_batch(batch, path, first)
            n = batch.sizes[names.RUN]
            part = slice(offset, offset + n)
            batch = batch.assign({names.SPLIT: (names.RUN, split[part])})
            rho_force = batch[RHO_FORCE].values
            if estimator == "force":
                batch[RHO_HISTOGRAM] = batch[names.RHO]
                # integrating noisy forces can dip below zero where the density vanishes
                batch[names.RHO] = (batch[names.RHO].dims, np.clip(rho_force, 0.0, None))
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
        for key in GLOBAL_ATTRS:
            nc.setncattr(key, first.attrs[key])
        record = provenance(settings, seeds={"split": int(settings["seed"])}, batches=len(paths), batch_hash=canonical_hash(batch_records), sampling_config_hash=json.loads(first.attrs["provenance"])["config_hash"], model_hash=first.attrs.get("model_hash", ""))
        nc.setncattr("provenance", json.dumps(record, sort_keys=True, default=str))
        nc.setncattr("density_estimator", estimator)
    return counts


def _define_variables(nc, template, estimator: str) -> list[str]:
    """Create every variable of the output with the template batch's dtype and attributes."""
    defined = []
    names_2d = [names.RHO, names.V_EXT, RHO_FORCE if estimator == "histogram" else RHO_HISTOGRAM]
    names_1d = [name for name, dims in names.VARIABLE_DIMS.items() if dims == (names.RUN,)] + list(PER_RUN_EXTRAS)
    meta = names.variable_metadata(3, template.attrs["length_unit"], template.attrs["energy_unit"], template[names.TEMPERATURE].attrs["units"])
    for name, dims in [(names.Z, (names.Z,)), (names.RUN, (names.RUN,))] + [(n, (names.RUN, names.Z)) for n in names_2d] + [(n, (names.RUN,)) for n in names_1d]:
        source = template[RHO_FORCE if name == RHO_HISTOGRAM else name] if name != names.SPLIT else None
        attrs = dict(meta.get(name, {}) if source is None else source.attrs)
        if name == RHO_HISTOGRAM:
            attrs["long_name"] = "one-body density of the density site, histogram estimator"
        if name == names.RHO and estimator == "force":
            attrs["long_name"] = "one-body density of the density site, force-sampling estimator (clipped at 0)"
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
