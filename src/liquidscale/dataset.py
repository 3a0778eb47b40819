"""The profile dataset (``profiles.nc``): one-body density profiles of many runs on one planar grid.

The names, units and checks here are the contract between the sampling stage (which writes the
dataset, run by run), the hard-rod generator and the cDFT stage (which reads it). Keep producers
and consumers on these constants rather than on string literals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

# dimension and variable names
RUN = "run"
Z = "z"
RHO = "rho"
V_EXT = "V_ext"
TEMPERATURE = "T"
MU = "mu"
N_PARTICLES = "N"
AREA = "area"
STATUS = "status"
FAILURE_REASON = "failure_reason"
SPLIT = "split"
# optional: the per-bin standard error of rho (histogram block averages, force sampling, added noise);
# datasets without it (exact profiles) are noise-free
RHO_STDERR = "rho_stderr"
# optional, per run: beta mu from Widom test-particle insertion and its standard error (ln Lambda^d absorbed, as in
# c1 = ln rho + beta V - beta mu), NaN where not measured; only the LAMMPS engine writes them
BETA_MU_WIDOM = "beta_mu_widom"
BETA_MU_WIDOM_STDERR = "beta_mu_widom_stderr"
# global attribute: how rho was measured ("histogram" or "force" sampling in MD; absent for exact profiles)
DENSITY_ESTIMATOR = "density_estimator"
ESTIMATOR_HISTOGRAM, ESTIMATOR_FORCE = "histogram", "force"
# Force-sampling densities integrate noisy forces, so where the density vanishes they scatter about zero
# and may be negative; they are kept (clipping would bias dilute bins upwards) down to this many standard
# errors below zero. With 20 blocks the standardised error is t-distributed with 19 degrees of freedom:
# P(t < -8) ~ 1e-7, so a campaign's dilute regions never trip it, while a broken estimator does.
NEGATIVE_DENSITY_STDERRS = 8.0

STATUS_OK, STATUS_FAILED = 0, 1
SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2
SPLIT_NAMES = {"train": SPLIT_TRAIN, "val": SPLIT_VAL, "test": SPLIT_TEST}

REQUIRED_ATTRS = ("system", "site", "dimension", "length_unit", "energy_unit", "k_B", "provenance")
# variable -> dims it must have
VARIABLE_DIMS: dict[str, tuple[str, ...]] = {
    RHO: (RUN, Z),
    V_EXT: (RUN, Z),
    TEMPERATURE: (RUN,),
    MU: (RUN,),
    N_PARTICLES: (RUN,),
    AREA: (RUN,),
    STATUS: (RUN,),
    FAILURE_REASON: (RUN,),
    SPLIT: (RUN,),
}


def variable_metadata(dimension: int, length_unit: str, energy_unit: str, temperature_unit: str) -> dict[str, dict[str, Any]]:
    """CF-style ``units``/``long_name`` (and flag) attributes of every variable."""
    return {
        Z: {"units": length_unit, "long_name": "bin centre along the surface normal"},
        RUN: {"units": "1", "long_name": "run id"},
        RHO: {"units": f"{length_unit}^-{dimension}", "long_name": "one-body number density of the density site"},
        RHO_STDERR: {"units": f"{length_unit}^-{dimension}", "long_name": "standard error of rho per bin"},
        V_EXT: {"units": energy_unit, "long_name": "external potential on the density site (+inf where hard)"},
        TEMPERATURE: {"units": temperature_unit, "long_name": "temperature"},
        MU: {
            "units": energy_unit,
            "long_name": "chemical potential, thermal wavelength absorbed (NaN where unknown)",
        },
        N_PARTICLES: {"units": "1", "long_name": "number of particles in the box"},
        AREA: {"units": f"{length_unit}^{dimension - 1}" if dimension > 1 else "1", "long_name": "box cross-section"},
        STATUS: {"units": "1", "long_name": "run status", "flag_values": [STATUS_OK, STATUS_FAILED], "flag_meanings": "ok failed"},
        FAILURE_REASON: {"long_name": "why the run failed (empty when ok)"},
        SPLIT: {
            "units": "1",
            "long_name": "train/validation/test split by run",
            "flag_values": [SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST],
            "flag_meanings": "train val test",
        },
    }


def split_runs(run_ids: Sequence[int], fractions: Sequence[float], seed: int, ok: Sequence[bool] | None = None) -> np.ndarray:
    """Assign each run to train/val/test (0/1/2) by a seeded permutation.

    Whole runs go to one split, so test profiles are unseen potentials. With three or more runs
    val and test get at least one run each, so held-out metrics always exist. Given ``ok`` (the runs'
    status), ok and failed runs are split separately, so a failed run never takes the only val or test
    place of a small campaign; with every run ok the split is the same as without it.
    """
    run_ids = np.asarray(run_ids, dtype=np.int64)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise UserError(f"split fractions {list(fractions)} must be three non-negative numbers (train, val, test) summing to 1")
    ok = np.ones(run_ids.size, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    rng = np.random.default_rng(seed)
    split = np.full(run_ids.size, SPLIT_TRAIN, dtype=np.int8)
    for group in (np.flatnonzero(ok), np.flatnonzero(~ok)):
        n = group.size
        n_test, n_val = int(round(fractions[2] * n)), int(round(fractions[1] * n))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        order = group[rng.permutation(n)]
        split[order[:n_test]] = SPLIT_TEST
        split[order[n_test : n_test + n_val]] = SPLIT_VAL
    return split


def make_profile_dataset(
    z: np.ndarray,
    rho: np.ndarray,
    V_ext: np.ndarray,
    T: np.ndarray,
    mu: np.ndarray,
    N: np.ndarray,
    split: np.ndarray,
    *,
    system: str,
    site: str,
    dimension: int,
    length_unit: str,
    energy_unit: str,
    temperature_unit: str,
    k_B: float,
    provenance: Mapping[str, Any],
    run: np.ndarray | None = None,
    area: np.ndarray | None = None,
    status: np.ndarray | None = None,
    failure_reason: Sequence[str] | None = None,
    rho_stderr: np.ndarray | None = None,
):
    """Build a validated profile dataset (``xarray.Dataset``) from per-run arrays."""
    import xarray as xr

    rho = np.asarray(rho, dtype=float)
    n_runs = rho.shape[0]
    run = np.arange(n_runs) if run is None else np.asarray(run)
    meta = variable_metadata(dimension, length_unit, energy_unit, temperature_unit)
    per_run = {
        TEMPERATURE: np.asarray(T, dtype=float),
        MU: np.asarray(mu, dtype=float),
        N_PARTICLES: np.asarray(N, dtype=float),
        AREA: np.ones(n_runs) if area is None else np.asarray(area, dtype=float),
        STATUS: np.zeros(n_runs, np.int8) if status is None else np.asarray(status, dtype=np.int8),
        FAILURE_REASON: np.array([""] * n_runs if failure_reason is None else list(failure_reason), dtype=object),
        SPLIT: np.asarray(split, dtype=np.int8),
    }
    data_vars = {
        RHO: ((RUN, Z), rho, meta[RHO]),
        V_EXT: ((RUN, Z), np.asarray(V_ext, dtype=float), meta[V_EXT]),
        **({} if rho_stderr is None else {RHO_STDERR: ((RUN, Z), np.asarray(rho_stderr, dtype=float), meta[RHO_STDERR])}),
        **{name: ((RUN,), values, meta[name]) for name, values in per_run.items()},
    }
    ds = xr.Dataset(
        data_vars,
        coords={Z: (Z, np.asarray(z, dtype=float), meta[Z]), RUN: (RUN, run, meta[RUN])},
        attrs={
            "system": system,
            "site": site,
            "dimension": int(dimension),
            "length_unit": length_unit,
            "energy_unit": energy_unit,
            "k_B": float(k_B),
            "chemical_potential_convention": "beta*mu includes ln(Lambda^d): c1 = ln rho + beta V_ext - beta mu",
            "provenance": json.dumps(dict(provenance), sort_keys=True, default=str),
        },
    )
    validate_profile_dataset(ds, source="new profile dataset")
    return ds


def write_profile_dataset(ds, path: str | Path) -> None:
    """Write atomically (a killed job never leaves a complete-looking ``profiles.nc``)."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)


def open_profile_dataset(path: str | Path):
    """Load and validate a profile dataset; problems are UserErrors that name the file."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: profile dataset not found")
    try:
        ds = xr.load_dataset(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable netCDF profile dataset ({exc})") from None
    validate_profile_dataset(ds, source=str(path))
    return ds


def validate_profile_dataset(ds, source: str) -> None:
    """Check names, dims, attrs, a uniform z grid and finite data in every ok run."""
    for name, dims in VARIABLE_DIMS.items():
        if name not in ds.variables:
            raise UserError(f"{source}: variable '{name}' is missing")
        if tuple(ds[name].dims) != dims:
            raise UserError(f"{source}: variable '{name}' has dims {tuple(ds[name].dims)}, expected {dims}")
    missing = [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing:
        raise UserError(f"{source}: missing global attribute(s) {missing}")
    z = np.asarray(ds[Z].values, dtype=float)
    if z.size < 2 or not np.allclose(np.diff(z), z[1] - z[0], rtol=1e-6, atol=0):
        raise UserError(f"{source}: z must be a uniform grid of at least two bin centres")
    bad_split = ~np.isin(ds[SPLIT].values, list(SPLIT_NAMES.values()))
    if bad_split.any():
        raise UserError(f"{source}: split of run {int(ds[RUN].values[bad_split][0])} is not 0 (train), 1 (val) or 2 (test)")
    if RHO_STDERR in ds.variables and tuple(ds[RHO_STDERR].dims) != (RUN, Z):
        raise UserError(f"{source}: variable '{RHO_STDERR}' has dims {tuple(ds[RHO_STDERR].dims)}, expected {(RUN, Z)}")
    ok = ds[STATUS].values == STATUS_OK
    checks = (
        (RHO, lambda v: np.isfinite(v).all(axis=1) & (v >= _lowest_density(ds)).all(axis=1), _negative_density_problem(ds)),
        (V_EXT, lambda v: ~np.isnan(v).any(axis=1) & ~np.isneginf(v).any(axis=1), "V_ext is NaN or -inf"),
        (TEMPERATURE, lambda v: np.isfinite(v) & (v > 0), "T is not a positive number"),
    ) + (((RHO_STDERR, lambda v: np.isfinite(v).all(axis=1) & (v >= 0).all(axis=1), "rho_stderr is NaN, infinite or negative"),)
         if RHO_STDERR in ds.variables else ())
    for name, is_good, problem in checks:
        bad = ok & ~is_good(np.asarray(ds[name].values, dtype=float))
        if bad.any():
            raise UserError(f"{source}: run {int(ds[RUN].values[bad][0])} has status ok but {problem}")


def _force_sampled_with_errors(ds) -> bool:
    return ds.attrs.get(DENSITY_ESTIMATOR) == ESTIMATOR_FORCE and RHO_STDERR in ds.variables


def _lowest_density(ds):
    """0, or for force-sampling datasets with errors -NEGATIVE_DENSITY_STDERRS standard errors per bin."""
    if _force_sampled_with_errors(ds):
        return -NEGATIVE_DENSITY_STDERRS * np.asarray(ds[RHO_STDERR].values, dtype=float)
    return 0.0


def _negative_density_problem(ds) -> str:
    if _force_sampled_with_errors(ds):
        return f"rho is NaN, infinite or more than {NEGATIVE_DENSITY_STDERRS:g} standard errors below zero"
    return "rho is NaN, infinite or negative (only force-sampling datasets with rho_stderr may dip below zero)"


def grid_spacing(ds) -> float:
    z = ds[Z].values
    return float(z[1] - z[0])


def box_length(ds) -> float:
    return grid_spacing(ds) * ds.sizes[Z]


def ok_runs(ds, split: str | None = None):
    """The runs with status ok, optionally restricted to one split ('train', 'val', 'test')."""
    mask = ds[STATUS].values == STATUS_OK
    if split is not None:
        mask &= ds[SPLIT].values == SPLIT_NAMES[split]
    return ds.isel({RUN: np.flatnonzero(mask)})
