"""Command-line interface: ``liquidscale <stage> <action> ...``, one subcommand per stage.

Stage modules are imported only when their subcommand runs, and each stage's ``cli`` module keeps
torch, deepmd and pyscf out of its top level, so ``liquidscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from . import __version__
from .errors import UserError

# stage name -> module that provides ``register(subparsers)``; each registered parser sets ``func``.
STAGES = {
    "sampling": "liquidscale.sampling.cli",
    "config": "liquidscale.config",
    "reference": "liquidscale.reference.cli",
    "mlip": "liquidscale.mlip.cli",
    "analysis": "liquidscale.analysis.cli",
    "cdft": "liquidscale.cdft.cli",
    "status": "liquidscale.status",
    "plan": "liquidscale.plan",
}


def settings_json(text: str) -> dict:
    """argparse type of every stage's ``--settings``: the JSON a rule passes (see ``config.stage_settings``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquidscale",
        description="Ab initio multiscale modelling of liquids: the stage commands the Snakemake rules call.",
    )
    parser.add_argument("--version", action="version", version=f"liquidscale {__version__}")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for module in STAGES.values():
        importlib.import_module(module).register(stages)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"liquidscale {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
