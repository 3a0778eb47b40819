"""Every shell command the documentation shows works (marker ``workflow``: it runs snakemake dry runs).

The commands are read from the ``bash``/``sh``/``shell``/``console`` code blocks of every tracked markdown
file, so commands added to the README or docs later are checked too. Each runs in a copy of the working
tree, as far as it can without computing: ``snakemake`` as a dry run (``-n``), ``make`` as ``make -n``,
a ``liquidscale`` stage action up to its parsed arguments and settings, any other ``liquidscale``
command (config, status, --version, ...) for real. A command of a kind this file does not know fails
the test until a way to check it is added here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from slurm.harness import REPO, environment

from liquidscale.cli import COMMAND_SETTINGS, build_parser, resolve_settings

pytestmark = pytest.mark.workflow

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\s*\n(.*?)^```", re.S | re.M)


def documented_commands() -> list[tuple[str, str]]:
    """(file:line, command) of every command in a shell code block of a tracked markdown file."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.md"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in sorted(files):
        text = (REPO / name).read_text()
        for block in SHELL_BLOCK.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            pending, start = "", None
            for k, line in enumerate(block.group(1).splitlines()):
                line = line.removeprefix("$ ")
                start = first_line + k if start is None else start
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1] + " "
                    continue
                command, pending = pending + line, ""
                if shlex.split(command, comments=True):
                    found.append((f"{name}:{start}", command))
                start = None
    return found


COMMANDS = documented_commands()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the working tree (tracked and new files), with the environment's .venv linked in."""
    root = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    if (REPO / ".venv").exists():
        (root / ".venv").symlink_to((REPO / ".venv").resolve())
    return root


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**environment(), "EDITOR": "true"}
    return subprocess.run(["timeout", "300", *argv], cwd=cwd, env=env, capture_output=True, text=True)


def check_command(command: str, cwd: Path, monkeypatch) -> subprocess.CompletedProcess | None:
    """Run ``command`` as far as it runs without computing; the finished process, or None when checked in-process."""
    words = shlex.split(command, comments=True)
    program = words[0]
    if program == "snakemake":
        return _run(["snakemake", "-n", *words[1:]], cwd)
    if program == "make":
        return _run(["make", "-n", *words[1:]], cwd)
    if program == "liquidscale" and tuple(words[1:3]) in COMMAND_SETTINGS:
        monkeypatch.chdir(cwd)
        args = build_parser().parse_args(words[1:])
        resolve_settings(args)  # raises UserError on a bad config file or system
        return None
    if program in ("liquidscale", "source", "$EDITOR"):  # cheap or harmless: as written (EDITOR is `true`)
        return _run(["bash", "-c", command], cwd)
    raise AssertionError(f"{command!r}: no way to check a '{program}' command yet (add one to tests/test_readme_commands.py)")


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w} {c.strip()}" for w, c in COMMANDS])
def test_documented_command_works(where, command, checkout, monkeypatch):
    result = check_command(command, checkout, monkeypatch)
    if result is not None:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        assert result.returncode == 0, f"{where}: `{command.strip()}` failed ({result.returncode}):\n{output}"


def test_the_documentation_shows_commands():
    """The extraction itself finds the README's commands (the test above would pass vacuously otherwise)."""
    readme = [command for where, command in COMMANDS if where.startswith("README.md:")]
    assert any(command.startswith("make demo") for command in readme)
    assert any("snakemake -n --config 'cdft={\"max_epochs\": 500}'" in command for command in readme)
    assert len(COMMANDS) >= 10
