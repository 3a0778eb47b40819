"""GPU stages pick their device from the config and what the job sees, say so in provenance, stop with one
line when a required GPU is missing, and request a GPU from SLURM only when they may use one.

CI has no GPU: the CUDA branch is checked for its refusal, the rest on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml

from liquidscale.cli import main
from liquidscale.config import stage_settings, validate_config
from liquidscale.device import device_record, resolve_device
from liquidscale.errors import UserError
from liquidscale.sampling.statepoints import batch_settings

ROOT = Path(__file__).resolve().parents[1]
GPU_RULES = ("mlip_train", "mlip_explore", "sampling_batch")

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a job that sees no GPU")


@needs_no_gpu
def test_auto_falls_back_to_the_cpu_and_cuda_stops_naming_the_key(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto", "sampling.device") == "cpu"
    assert resolve_device("cpu", "sampling.device") == "cpu"
    with pytest.raises(UserError, match=r"config key 'mlip.explore.device' is 'cuda' but this job sees no GPU \(CUDA_VISIBLE_DEVICES=''"):
        resolve_device("cuda", "mlip.explore.device")
    record = device_record("cpu", "float32")
    assert record == {"torch_device": "cpu", "precision": "float32", "CUDA_VISIBLE_DEVICES": ""}


def lj_settings(**sampling):
    base = {"runs": 2, "replicas_per_job": 2, "minimisation_steps": 5, "equilibration_steps": 10, "production_steps": 20, "sample_every": 2, "check_every": 5}
    config = validate_config({"systems": ["lj"], "sampling": {**base, **sampling, "lj": {"box": [5.2, 5.2, 8.0]}}})
    return stage_settings(config, "lj", "sampling")


def run_sampling_cli(tmp_path, settings):
    return main(["sampling", "batch", "--settings", json.dumps(batch_settings(settings, 0)), "--out", str(tmp_path / "batch.nc")])


@needs_no_gpu
def test_a_sampling_job_that_requires_a_gpu_fails_with_one_line(tmp_path, capsys):
    assert run_sampling_cli(tmp_path, lj_settings(device="cuda")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config key 'sampling.device' is 'cuda' but this job sees no GPU" in err
    assert not (tmp_path / "batch.nc").exists()


def test_the_batch_file_records_the_device_and_precision_used(tmp_path):
    assert run_sampling_cli(tmp_path, lj_settings(device="auto", precision="float32")) == 0
    record = json.loads(xr.open_dataset(tmp_path / "batch.nc").attrs["provenance"])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert record["compute"]["torch_device"] == expected and record["compute"]["precision"] == "float32"


def dry_run_resources(workdir: Path, device: str) -> dict[str, list[dict]]:
    """The resources of every job, by rule, in a dry run with all three GPU stages' devices set to ``device``."""
    (workdir / "devices.yaml").write_text(
        "systems: [water]\n"
        f"mlip: {{iterations: 1, ensemble_size: 2, training: {{device: {device}}}, explore: {{device: {device}}}}}\n"
        f"sampling: {{runs: 2, replicas_per_job: 2, device: {device}}}\n"
    )
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [snakemake, "-n", "results/water/sampling/batch0000.nc", "results/water/mlip/iter000/explore", "--cores", "1", "--configfile", "devices.yaml"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs: dict[str, list[dict]] = {}
    for rule, line in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, flags=re.M):
        resources = dict(item.split("=", 1) for item in line.split(", "))
        jobs.setdefault(rule, []).append({key: int(value) if value.isdigit() else value for key, value in resources.items()})
    return jobs


def dry_run_gpu_requests(workdir: Path, device: str) -> dict[str, set[int]]:
    """The `gpu` resource of every job of each rule in a dry run with all three devices set to ``device``."""
    return {rule: {job.get("gpu", 0) for job in jobs} for rule, jobs in dry_run_resources(workdir, device).items()}


class _PluginJob:
    """What the SLURM plugin's partition selection reads of a job: its name, threads and resources."""

    def __init__(self, rule: str, resources: dict):
        self.name, self.threads = rule, resources.get("_cores", 1)
        self.resources = type("Resources", (dict,), {"__getattr__": dict.__getitem__})(resources)


@pytest.mark.workflow
def test_rules_request_a_gpu_only_when_their_device_may_use_one(tmp_path):
    for name in ("Snakefile", "workflow", "envs", "config", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    for device, gpus in (("cpu", 0), ("auto", 1), ("cuda", 1)):
        requests = dry_run_gpu_requests(tmp_path, device)
        for rule in GPU_RULES:
            assert requests[rule] == {gpus}, (device, rule, requests[rule])
        assert requests["mlip_test"] == {0} and requests["reference_label"] == {0}


@pytest.mark.workflow
def test_the_site_profile_sends_gpu_jobs_to_the_gpu_partition_and_cpu_jobs_elsewhere(tmp_path):
    """profiles/slurm/partitions.yaml through the plugin's own partition selection: a stage set to `cpu` must
    not land on the GPU partition (it did when the profile routed the GPU rules by name)."""
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    # a slurm_partition resource bypasses the plugin's selection: routing by rule name is what sent cpu jobs to GPUs
    routed = [profile.get("default-resources", {}), *profile.get("set-resources", {}).values()]
    assert not any("slurm_partition" in resources for resources in routed)
    assert profile["slurm-partition-config"] == "partitions.yaml"
    partitions = read_partition_file(ROOT / "profiles" / "slurm" / "partitions.yaml")
    gpu_partitions = {p.name for p in partitions if p.limits.max_gpu > 0}
    assert gpu_partitions and len(gpu_partitions) < len(partitions)
    logger = logging.getLogger("slurm-partitions")
    for name in ("Snakefile", "workflow", "envs", "config"):
        (tmp_path / name).symlink_to(ROOT / name)
    for device in ("cpu", "auto"):
        for rule, jobs in dry_run_resources(tmp_path, device).items():
            for resources in jobs:
                chosen = get_best_partition(partitions, _PluginJob(rule, resources), logger)
                assert (chosen in gpu_partitions) == (resources.get("gpu", 0) > 0), (device, rule, chosen, resources)
                if device == "auto" and rule in GPU_RULES:
                    assert chosen in gpu_partitions, (rule, chosen)
