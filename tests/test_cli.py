"""The CLI: fast help, --version, stage commands run by hand from the config files, the rerun line of a failed job.

The settings a stage command builds from ``--configfile ... --system ...`` are compared with the JSON the
workflow's own rules pass (read from ``snakemake -n -p``), for every stage action.
"""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slurm.harness import REPO, environment, snakemake, write_config

from liquidscale import __version__
from liquidscale.cli import COMMAND_SETTINGS, WORKFLOW_CONFIGFILES_ENV, build_parser, command_settings, main, resolve_settings
from liquidscale.config import effective_config

HEAVY = ("torch", "deepmd", "pyscf", "dpdata", "ase")
DEMO = REPO / "config" / "config.yaml"
PETS = REPO / "config" / "pets.yaml"
LJ = REPO / "config" / "lj.yaml"


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


# ---- --version -----------------------------------------------------------------------------------
def test_version_names_package_and_git_commit():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    run = subprocess.run([sys.executable, "-m", "liquidscale", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"liquidscale {__version__} (git {head}"), run.stdout


def test_version_outside_a_checkout_says_so(tmp_path):
    shutil.copytree(REPO / "src" / "liquidscale", tmp_path / "liquidscale", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**environment(), "PYTHONPATH": str(tmp_path), "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
    run = subprocess.run([sys.executable, "-m", "liquidscale", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"liquidscale {__version__} (not a git checkout)"


# ---- stage commands from --configfile/--system ----------------------------------------------------
def _rule_commands(workdir: Path, configfile: Path) -> list[list[str]]:
    """Every ``liquidscale`` command the workflow would run for ``configfile`` (dry run), as argv after 'liquidscale'."""
    result = snakemake(workdir, configfile, ["-n", "-p", "--forceall", "all", "sampling"], timeout=300, check=True)
    commands = []
    for line in result.stdout.splitlines():
        if line.startswith("Shell command:") and " liquidscale " in line:
            words = shlex.split(line.removeprefix("Shell command:"))
            words = words[words.index("liquidscale") + 1 :]
            commands.append(words[: words.index(">")] if ">" in words else words)
    return commands


@pytest.fixture(scope="module")
def rule_commands(tmp_path_factory) -> dict[Path, list[list[str]]]:
    """The demo config's, the PeTS config's and the LJ config's rule commands; together they use every stage action."""
    return {path: _rule_commands(tmp_path_factory.mktemp(path.stem), path) for path in (DEMO, PETS, LJ)}


def _by_hand(argv: list[str], configfile: Path) -> list[str]:
    """The rule's command with ``--settings JSON`` replaced by ``--configfile FILE --system NAME``."""
    k = argv.index("--settings")
    settings = json.loads(argv[k + 1])
    batch = ["--batch", str(settings["batch"]["index"])] if "batch" in settings else []  # a sampling job's index
    return [*argv[:k], "--configfile", str(configfile), "--system", settings["system"], *batch, *argv[k + 2 :]]


def test_every_stage_action_builds_the_rules_settings_from_the_config_file(rule_commands):
    seen = set()
    for configfile, commands in rule_commands.items():
        for argv in commands:
            args = build_parser().parse_args(_by_hand(argv, configfile))
            resolve_settings(args)
            rule_json = json.loads(argv[argv.index("--settings") + 1])
            assert args.settings == rule_json, f"{configfile.name}: liquidscale {' '.join(argv[:2])} differs from its rule's JSON"
            seen.add(tuple(argv[:2]))
    assert seen == set(COMMAND_SETTINGS), f"stage actions no rule ran: {set(COMMAND_SETTINGS) - seen}"


def test_a_stage_command_by_hand_writes_what_the_rule_writes(tmp_path):
    settings = json.dumps(command_settings(effective_config([str(DEMO)]), "water", "sampling", "statepoints"))
    assert main(["sampling", "statepoints", "--settings", settings, "--out", str(tmp_path / "rule.csv")]) == 0
    by_hand = ["sampling", "statepoints", "--configfile", str(DEMO), "--system", "water", "--out", str(tmp_path / "hand.csv")]
    assert main(by_hand) == 0
    assert (tmp_path / "hand.csv").read_bytes() == (tmp_path / "rule.csv").read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--configfile", str(DEMO)], "--configfile needs --system"),
        (["--configfile", str(DEMO), "--system", "lj"], "--system 'lj': not one of the config's systems"),
        (["--configfile", "missing.yaml", "--system", "water"], "missing.yaml: file not found"),
    ],
)
def test_bad_configfile_arguments_fail_in_one_line(argv, message, tmp_path, capsys):
    assert main(["sampling", "statepoints", *argv, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_settings_and_configfile_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["sampling", "statepoints", "--settings", "{}", "--configfile", str(DEMO), "--system", "water", "--out", "x.csv"])
    assert "not allowed with argument" in capsys.readouterr().err


def torch_sees_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


# ---- the rerun line of a failed job ---------------------------------------------------------------
def _failing_batch(settings: dict, tmp_path: Path) -> list[str]:
    missing = tmp_path / "no_model.pth"
    return ["sampling", "batch", "--settings", json.dumps(settings), "--model", str(missing), "--out", str(tmp_path / "b.nc")]


def _rerun_line(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.startswith("rerun by hand")]
    assert len(lines) == 1, stderr
    return shlex.split(lines[0].split(": ", 1)[1])


def test_failed_job_prints_the_command_that_reruns_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(WORKFLOW_CONFIGFILES_ENV, json.dumps([str(DEMO)]))
    settings = command_settings(effective_config([str(DEMO)]), "water", "sampling", "batch", batch=0)
    assert main(_failing_batch(settings, tmp_path)) == 2
    err = capsys.readouterr().err
    error_line = next(line for line in err.splitlines() if line.startswith("liquidscale sampling: error:"))
    assert "no_model.pth: DeePMD model not found" in error_line
    rerun = _rerun_line(err)
    assert rerun[:3] == ["liquidscale", "sampling", "batch"] and rerun[3] == "--configfile" and rerun[5:7] == ["--system", "water"]
    assert Path(rerun[4]).resolve() == DEMO
    assert "--settings" not in rerun and "--model" in rerun and rerun[7:9] == ["--batch", "0"]
    # the printed command is the job again: the same failure, now without a rerun hint (it was run by hand)
    monkeypatch.delenv(WORKFLOW_CONFIGFILES_ENV)
    assert main(rerun[1:]) == 2
    again = capsys.readouterr().err
    assert error_line in again.splitlines() and "rerun by hand" not in again


def test_rerun_line_passes_json_when_the_files_give_other_settings(tmp_path, monkeypatch, capsys):
    """A ``snakemake --config`` override lives in no config file: the line then carries the job's settings."""
    monkeypatch.setenv(WORKFLOW_CONFIGFILES_ENV, json.dumps([str(DEMO)]))
    settings = command_settings(effective_config([str(DEMO)]), "water", "sampling", "batch", batch=0)
    settings["seed"] += 1
    assert main(_failing_batch(settings, tmp_path)) == 2
    rerun = _rerun_line(capsys.readouterr().err)
    assert "--configfile" not in rerun
    assert json.loads(rerun[rerun.index("--settings") + 1]) == settings


def test_no_rerun_line_outside_a_workflow_job(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(WORKFLOW_CONFIGFILES_ENV, raising=False)
    settings = command_settings(effective_config([str(DEMO)]), "water", "sampling", "batch", batch=0)
    assert main(_failing_batch(settings, tmp_path)) == 2
    assert "rerun by hand" not in capsys.readouterr().err


@pytest.mark.workflow
def test_failed_workflow_job_log_holds_a_working_rerun_line(tmp_path):
    """A real Snakemake job fails (it requires a GPU that this machine lacks); its log's rerun line reruns exactly that job."""
    if torch_sees_a_gpu():
        pytest.skip("the job fails only where no GPU is visible")
    workdir = tmp_path / "campaign"
    configfile = write_config(tmp_path, {"systems": ["lj"], "sampling": {"runs": 2, "replicas_per_job": 2, "device": "cuda"}})
    failed = snakemake(workdir, configfile, ["--cores", "1", "results/lj/sampling/batch0000.nc"], timeout=300)
    assert failed.returncode != 0
    log = (workdir / "logs/lj/sampling/batch0000.log").read_text()
    rerun = _rerun_line(log)
    assert rerun[:4] == ["liquidscale", "sampling", "batch", "--configfile"] and rerun[5:9] == ["--system", "lj", "--batch", "0"], log
    assert Path(rerun[4]).resolve() == configfile.resolve()
    by_hand = subprocess.run(rerun, cwd=workdir, env=environment(), capture_output=True, text=True, timeout=300)
    assert by_hand.returncode != 0
    failure = [line for line in log.splitlines() if not line.startswith("rerun by hand")][-1]
    assert by_hand.stderr.splitlines()[-1] == failure, by_hand.stderr


# ---- project metadata ---------------------------------------------------------------------------
CFF_REQUIRED = ("cff-version", "message", "title", "authors")
CFF_REFERENCE_REQUIRED = ("type", "title", "authors")
CFF_INTEGER_FIELDS = ("volume", "start", "end", "year")


def test_citation_file_is_cff_1_2_0():
    """CITATION.cff parses and has what the CFF 1.2.0 schema requires of the file and of every reference."""
    import yaml

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert all(citation.get(key) for key in CFF_REQUIRED), [key for key in CFF_REQUIRED if not citation.get(key)]
    assert citation["version"] == __version__ and citation["license"] == "MIT"
    for reference in citation["references"]:
        assert all(reference.get(key) for key in CFF_REFERENCE_REQUIRED), reference
        assert all(isinstance(reference[key], int) for key in CFF_INTEGER_FIELDS if key in reference), reference["title"]
        assert "doi" not in reference or reference["doi"].startswith("10."), reference["doi"]
        for author in reference["authors"]:
            assert author.get("family-names") or author.get("name"), author
    titles = " ".join(r["title"] for r in citation["references"])
    for method in ("ab initio multiscale", "Neural functional theory", "chemical potential", "DeePMD-kit", "DP-GEN", "PySCF", "FeOs", "Snakemake"):
        assert method in titles, method


def test_license_matches_pyproject():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


# ---- values snakemake --config hands over as strings -----------------------------------------------
def test_config_strings_take_the_schemas_types():
    """`snakemake --config 'cdft={"max_epochs": 500}'` gives '500': every nested scalar arrives as a string."""
    from liquidscale.config import validate_config

    overrides = {
        "systems": ["lj"],
        "seed": "7",
        "cdft": {"max_epochs": "500", "learning_rate": "1e-3", "mirror": "false"},
        "reference": {"use_gpu": "True"},
        "mlip": {"descriptor": {"sel": ["10", "20"]}, "training": {"batch_size": "auto"}},
        "analysis": {"density_max": {"lj": "null"}},
    }
    config = validate_config(overrides, base_dir=REPO)
    assert config["seed"] == 7 and config["cdft"]["max_epochs"] == 500 and config["cdft"]["learning_rate"] == 1e-3
    assert config["cdft"]["mirror"] is False and config["reference"]["use_gpu"] is True
    assert config["mlip"]["descriptor"]["sel"] == [10, 20] and config["mlip"]["training"]["batch_size"] == "auto"
    assert config["analysis"]["density_max"]["lj"] is None


def test_config_string_that_is_no_number_names_its_key():
    from liquidscale.config import validate_config
    from liquidscale.errors import UserError

    with pytest.raises(UserError, match=r"config key 'cdft.max_epochs': '5OO' is not of type 'integer'"):
        validate_config({"systems": ["lj"], "cdft": {"max_epochs": "5OO"}}, base_dir=REPO)
