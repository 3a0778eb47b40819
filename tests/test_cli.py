"""The CLI's help is fast because no stage imports torch, deepmd or pyscf at import time."""

import subprocess
import sys

HEAVY = ("torch", "deepmd", "pyscf", "dpdata", "ase")


def test_help_imports_no_heavy_package():
    code = (
        "import sys; from liquidscale.cli import build_parser; build_parser().format_help();"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"heavy imports at CLI start-up: {run.stdout.strip()}"


def test_every_stage_has_a_subcommand():
    run = subprocess.run([sys.executable, "-m", "liquidscale", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for stage in ("config", "reference"):
        assert stage in run.stdout
