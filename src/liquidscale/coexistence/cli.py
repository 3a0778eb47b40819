"""``liquidscale coexistence run``: slab MD of a system's own potential, its coexisting densities and liquid g(r).

Heavy imports (torch, deepmd, LAMMPS) happen inside the action, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

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


def _run(args: argparse.Namespace) -> None:
    from .run import run_coexistence, summary_line

    results = run_coexistence(args.settings, args.out, model=args.model, threads=args.threads)
    print(f"{summary_line(results, args.settings['coexistence'][args.settings['system']]['temperatures'])} -> {args.out}")
