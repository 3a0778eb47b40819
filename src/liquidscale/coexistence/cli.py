"""``liquidscale coexistence run``: slab MD of a system's own potential, its coexisting densities and liquid g(r);
``liquidscale coexistence compare``: those densities beside the functional's binodal (verification rung 4).

Heavy imports (torch, deepmd, LAMMPS) happen inside the action, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_settings_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("coexistence", help="liquid-vapour slab MD of the system's potential: coexisting densities and the liquid's RDF")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="one slab per coexistence.<system>.temperatures; writes coexistence.csv, profiles.csv, rdf.csv, rdf_peaks.csv, coexistence.png")
    add_settings_arguments(run)
    run.add_argument("--model", default=None, help="frozen DeePMD model (water, co2: the mlip stage's final model0.pth)")
    run.add_argument("--threads", type=int, default=1, help="torch threads")
    run.add_argument("--out", required=True, help="output folder (results/{system}/coexistence)")
    run.set_defaults(func=_run)
    compare = actions.add_parser("compare", help="the functional's binodal beside the direct slab densities (verification rung 4); writes functional_vs_direct.csv and .png")
    compare.add_argument("--analysis", type=Path, required=True, help="the analysis folder (results/{system}/analysis: binodal.csv, critical_point.csv, summary.json)")
    compare.add_argument("--coexistence", type=Path, required=True, help="the coexistence folder (results/{system}/coexistence: coexistence.csv)")
    add_settings_arguments(compare)
    compare.add_argument("--out", type=Path, required=True, help="output folder")
    compare.set_defaults(func=_compare)


def _run(args: argparse.Namespace) -> None:
    from .run import run_coexistence, summary_line

    results = run_coexistence(args.settings, args.out, model=args.model, threads=args.threads)
    print(f"{summary_line(results, args.settings['coexistence'][args.settings['system']]['temperatures'])} -> {args.out}")


def _compare(args: argparse.Namespace) -> None:
    from .functional import summary_line, write_comparison

    table = write_comparison(args.analysis, args.coexistence, args.settings["coexistence"]["functional_tolerance"], args.out)
    print(f"functional vs direct coexistence: {summary_line(table)} -> {args.out}")
