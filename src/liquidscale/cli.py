"""Command-line interface: ``liquidscale <stage> <action> ...``, one subcommand per stage.

Stage modules are imported only when their subcommand runs, and each stage's ``cli`` module keeps
torch, deepmd and pyscf out of its top level, so ``liquidscale --help`` stays fast.

Every stage action takes its settings either as the JSON a Snakemake rule passes (``--settings``)
or from the config files themselves (``--configfile FILE... --system NAME``); both go through
:func:`command_settings`, so a job rerun by hand gets exactly the settings its rule gave it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__
from .config import rule_settings
from .errors import UserError
from .logs import setup_logging

# stage name -> module that provides ``register(subparsers)``; each registered parser sets ``func``.
STAGES = {
    "sampling": "liquidscale.sampling.cli",
    "config": "liquidscale.config",
    "reference": "liquidscale.reference.cli",
    "mlip": "liquidscale.mlip.cli",
    "analysis": "liquidscale.analysis.cli",
    "cdft": "liquidscale.cdft.cli",
    "coexistence": "liquidscale.coexistence.cli",
    "status": "liquidscale.status",
    "plan": "liquidscale.plan",
}

# (stage, action) of a command -> (config section, per-action key) of config.rule_settings: the settings it
# receives. The rules' params (common.smk settings_of) and --configfile both look the command up here.
COMMAND_SETTINGS: dict[tuple[str, str], tuple[str, str | None]] = {
    **{("reference", action): ("reference", action) for action in ("configurations", "label", "collect")},
    **{("mlip", action): ("mlip", action) for action in ("data", "train", "test", "explore", "select", "final")},
    ("sampling", "statepoints"): ("sampling", None),
    ("sampling", "batch"): ("sampling", None),
    ("sampling", "aggregate"): ("profiles", None),
    ("cdft", "fluid-data"): ("profiles", None),
    ("cdft", "train"): ("cdft", None),
    ("analysis", "run"): ("analysis", None),
    ("analysis", "pets-reference"): ("analysis", None),
    ("analysis", "lj-reference"): ("analysis", None),
    ("coexistence", "run"): ("coexistence", "run"),
    ("coexistence", "compare"): ("coexistence", "compare"),
}

# Set by common.smk for every job: the config files of the Snakemake run (a JSON list), so that a failed job
# can print the command that reruns it by hand. An environment variable rather than a shell argument keeps
# the rules' shell commands, which Snakemake's 'code' rerun trigger watches, unchanged.
WORKFLOW_CONFIGFILES_ENV = "LIQUIDSCALE_WORKFLOW_CONFIGFILES"


def command_settings(config: dict[str, Any], system: str, stage: str, action: str, batch: int | None = None) -> dict[str, Any]:
    """The settings ``liquidscale <stage> <action>`` receives for ``system`` from a validated config.

    ``sampling batch`` gets one batch's settings (``batch``, its index): they leave out what does not change
    that batch (``sampling.runs``), so a campaign that grows reruns no finished batch.
    """
    section, section_action = COMMAND_SETTINGS[(stage, action)]
    settings = rule_settings(config, system, section, section_action)
    if (stage, action) == ("sampling", "batch"):
        if batch is None:
            raise UserError("sampling batch: --batch INDEX names the job when the settings come from --configfile")
        from .sampling.statepoints import batch_settings

        settings = batch_settings(settings, batch)
    return settings


def settings_json(text: str) -> dict:
    """argparse type of every stage's ``--settings``: the JSON a rule passes (see :func:`command_settings`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings JSON`` (what a rule passes) or ``--configfile FILE... --system NAME`` (by hand)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--settings", type=settings_json, help="the JSON a rule passes: liquidscale.cli.command_settings(config, system, STAGE, ACTION)")
    source.add_argument(
        "--configfile", action="append", metavar="FILE",
        help="config file as given to snakemake (repeat it for several; later files override earlier ones); needs --system",
    )
    parser.add_argument("--system", help="system to run, one of the config's systems (with --configfile)")


def resolve_settings(args: argparse.Namespace) -> None:
    """Fill ``args.settings`` from ``--configfile``/``--system`` when the command was given those."""
    if args.configfile is None:
        if args.system is not None:
            raise UserError("--system goes with --configfile; the --settings JSON names its system already")
        return
    if args.system is None:
        raise UserError("--configfile needs --system NAME (one of the config's systems)")
    from .config import effective_config

    config = effective_config(args.configfile)
    if args.system not in config["systems"]:
        raise UserError(f"--system {args.system!r}: not one of the config's systems {config['systems']}")
    args.settings = command_settings(config, args.system, args.stage, args.action, batch=getattr(args, "batch", None))


def workflow_configfiles() -> list[str] | None:
    """The config files of the Snakemake run that started this job (None outside a workflow job)."""
    text = os.environ.get(WORKFLOW_CONFIGFILES_ENV)
    return json.loads(text) if text else None


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it (rerun lines stay short)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _without_settings(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--settings":
            skip = True
        elif not item.startswith("--settings="):
            out.append(item)
    return out


def rerun_command(args: argparse.Namespace, argv: list[str]) -> str | None:
    """The one command that reruns this workflow job by hand; None when it was not started by a rule.

    It names the run's config files and the system. Where those would give other settings than the job
    got (``snakemake --config`` overrides live in no file), it passes the job's settings JSON instead.
    """
    configfiles = workflow_configfiles()
    if not configfiles or not hasattr(args, "settings") or args.configfile is not None:
        return None  # not a workflow job, not a stage action, or already run from the config files
    from .config import effective_config

    stage, action, rest = argv[0], argv[1], _without_settings(argv[2:])
    system = args.settings["system"]
    batch = args.settings.get("batch", {}).get("index")  # a sampling job names its batch in its settings
    try:
        from_files = command_settings(effective_config(configfiles), system, stage, action, batch=batch)
        same = json.loads(json.dumps(from_files)) == args.settings
    except UserError:
        same = False
    if same:
        source = [item for path in configfiles for item in ("--configfile", _display_path(path))] + ["--system", system]
        source += [] if batch is None else ["--batch", str(batch)]
    else:
        source = ["--settings", json.dumps(args.settings, sort_keys=True)]
    return shlex.join(["liquidscale", stage, action, *source, *rest])


def _git(*command: str) -> str:
    package = Path(__file__).resolve().parent
    return subprocess.run(["git", *command], cwd=package, capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def version_text() -> str:
    """``liquidscale X.Y.Z (git COMMIT[, uncommitted changes])``, or ``(not a git checkout)`` for an installed copy."""
    try:
        _git("ls-files", "--error-unmatch", "__init__.py")  # this package's files are tracked: a checkout
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return f"liquidscale {__version__} (not a git checkout)"
    return f"liquidscale {__version__} (git {commit}{', uncommitted changes in the package' if dirty else ''})"


class _VersionAction(argparse.Action):
    """``--version``: asks git only when given, so ordinary commands start without a subprocess."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquidscale",
        description="Ab initio multiscale modelling of liquids: the stage commands the Snakemake rules call.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the package version and git commit, then exit")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for module in STAGES.values():
        importlib.import_module(module).register(stages)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        if hasattr(args, "settings"):  # a stage action (not e.g. ``liquidscale config``)
            resolve_settings(args)
        args.func(args)
    except UserError as exc:
        print(f"liquidscale {args.stage}: error: {exc}", file=sys.stderr)
        _print_rerun(args, argv)
        return 2
    except Exception:
        traceback.print_exc()
        _print_rerun(args, argv)
        return 1
    return 0


def _print_rerun(args: argparse.Namespace, argv: list[str]) -> None:
    command = rerun_command(args, argv)
    if command:
        print(f"rerun by hand (in {Path.cwd()}): {command}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
