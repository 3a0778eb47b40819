"""``liquidscale sampling <action>``: state-point table, one batch job, aggregation into profiles.nc.

Heavy imports (torch, deepmd, xarray) happen inside the actions, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from ..cli import add_settings_arguments
from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("sampling", help="MD runs under random planar external potentials and their profile datasets")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    table = actions.add_parser("statepoints", help="write the state-point table (one row per run) as CSV")
    add_settings_arguments(table)
    table.add_argument("--out", required=True, help="CSV path (results/{system}/sampling/statepoints.csv)")
    table.set_defaults(func=_statepoints)

    batch = actions.add_parser("batch", help="run one job of B replicas and write its netCDF")
    add_settings_arguments(batch)
    batch.add_argument("--batch", type=int, default=None, help="the job's batch index, with --configfile (a rule's --settings names it)")
    batch.add_argument("--model", default=None, help="frozen DeePMD model (water, co2)")
    batch.add_argument("--threads", type=int, default=1, help="torch threads (results do not depend on it)")
    batch.add_argument("--checkpoint-minutes", type=float, default=10.0, help="save the job's state beside --out this often (0: as often as possible); a rerun continues from it")
    batch.add_argument("--out", required=True, help="batch netCDF path")
    batch.set_defaults(func=_batch)

    agg = actions.add_parser("aggregate", help="stream batch files into one profile dataset")
    add_settings_arguments(agg)
    agg.add_argument("--out", required=True, help="profiles.nc path")
    agg.add_argument("batches", nargs="+", help="batch netCDF files in run order")
    agg.set_defaults(func=_aggregate)


def _statepoints(args: argparse.Namespace) -> None:
    from ..io import atomic_path
    from .statepoints import statepoint_table, system_sampling

    table = statepoint_table(system_sampling(args.settings))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{len(table)} runs in {table['batch'].nunique()} batches -> {args.out}")


def _batch(args: argparse.Namespace) -> None:
    from .batch import run_batch
    from .statepoints import batch_table

    if "batch" not in args.settings:
        raise UserError("--settings: not the settings of one batch (liquidscale.cli.command_settings(..., batch=INDEX))")
    run_batch(args.settings, batch_table(args.settings), args.settings["batch"]["index"], args.out, model=args.model, threads=args.threads, checkpoint_minutes=args.checkpoint_minutes)


def _aggregate(args: argparse.Namespace) -> None:
    from .aggregate import aggregate

    counts = aggregate(args.batches, args.out, args.settings)
    print(f"{counts['ok']} ok and {counts['failed']} failed runs -> {args.out}")
