"""The conda environments used on clusters pin the same versions as the tested .venv."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}


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


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
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
