"""Run the real workflow in scratch folders and read what happened: job lists, SLURM records, output hashes.

Shared by tests/test_slurm.py, tests/test_workflow_reruns.py and bench/bench_dag.py. Snakemake always
runs as a subprocess under ``timeout`` (a hung SLURM status loop must fail the test, not block CI).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
CANNOT_RUN_HERE = 77  # cluster.sh's exit status for "not root / no apt-get"

# Stage target rules in DAG order; a stage is tested once its .smk defines the target rule.
STAGE_TARGETS = ("reference", "mlip", "sampling", "profiles", "cdft", "analysis", "coexistence")

# The reduced campaign: every stage real, each as small as it goes (few SLURM jobs: ~10 s latency each).
# lj joins water so that sampling runs without waiting for the MLIP; sampling.device "auto" makes the
# sampling jobs GPU jobs (gpu=1) that fall back to the CPU, so the SLURM test sees GPU requests.
# A --configfile stands on the schema defaults alone, so every key whose default is production-sized
# is set here (the demo's small values: its water box, learning rates, trust levels, network, analysis).
REDUCED_CONFIG = {
    "systems": ["water", "lj"],
    "seed": 7,
    "water": {"temperature_range": [300.0, 450.0]},
    "reference": {
        "method": {"xc": "PBE", "basis": "sto-3g", "density_fit": True, "conv_tol": 1.0e-8},
        "initial": {"cluster_sizes": [1, 2], "frames_per_size": 1},
        "environment": {"core_radius": 1.0, "shell": 1.0, "bulk_frames": 1, "bulk_test_frames": 1, "bulk_molecules": 8},
        "shards": 2,
    },
    "mlip": {
        "iterations": 1,
        "ensemble_size": 2,
        "descriptor": {"rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 4},
        "fitting_neuron": [8, 8],
        "training": {"steps": 20, "decay_steps": 10, "start_lr": 0.01, "stop_lr": 1.0e-4, "start_pref_e": 0.5, "start_pref_f": 50.0, "mem_mb": 1000, "runtime": 10},
        "explore": {"molecules": 8, "temperatures": 1, "densities": 1, "slab": False, "external_potentials": 1, "steps": 20, "frames": 2, "runtime": 10},
        "select": {"trust_lo": 0.5, "trust_hi": 8.0, "max_candidates": 2},
    },
    "sampling": {
        "runs": 4,
        "replicas_per_job": 2,
        "minimisation_steps": 10,
        "equilibration_steps": 20,
        "production_steps": 40,
        "sample_every": 2,
        "check_every": 10,
        "mem_mb": 1000,
        "runtime": 10,
        "device": "auto",
        "water": {"box": [10.2, 10.2, 16.0], "density_range": [0.003, 0.033], "timestep": 0.00025},
    },
    "coexistence": {
        "equilibration_steps": 20,
        "production_steps": 40,
        "sample_every": 4,
        "blocks": 2,
        "mem_mb": 1000,
        "runtime": 10,
        "water": {"temperatures": [300.0], "box": [9.0, 9.0, 24.0], "rdf_max": 4.5},
        "lj": {"temperatures": [0.8], "box": [6.0, 6.0, 24.0], "rdf_max": 3.0},
    },
    "cdft": {"channels": [16, 16], "max_epochs": 60, "runtime": 30},
    "analysis": {
        "isotherms": 12,
        "binodal_points": 30,
        "widom": {"isotherms": 4, "isobar_temperatures": 20},
        "poles": {"densities": 12},
        "fisher_widom": {"temperatures": 4},
        "pores": {"widths": [6.0, 8.0, 12.0], "chemical_potentials": 5},
    },
}

# Columns of CSV outputs that record wall time, not results: dropped before hashing.
TIMING_COLUMNS = {"seconds"}
# Outputs that hold wall times or provenance timestamps in their bytes: compared through the other files
# (labels.extxyz repeats data/*.npy plus per-frame seconds; provenance.json has the git commit and times).
NOT_COMPARED = ("provenance.json", "labels.extxyz", ".snakemake_timestamp")


def environment() -> dict[str, str]:
    """The test's environment for snakemake and its SLURM jobs (sbatch --export=ALL): the venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    return env


def write_config(folder: Path, config: dict, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def defined_rules(configfile: Path, workdir: Path) -> set[str]:
    """Rule names the workflow defines (``snakemake --list-rules``)."""
    result = snakemake(workdir, configfile, ["--list-rules"], timeout=120)
    return {line.strip() for line in result.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}


def existing_stage_targets(configfile: Path, workdir: Path) -> list[str]:
    rules = defined_rules(configfile, workdir)
    return [stage for stage in STAGE_TARGETS if stage in rules]


def slurm_campaign_targets(configfile: Path, workdir: Path) -> list[str]:
    """What the SLURM test runs: the reference stage and, once the sampling rules exist, lj's sampling and profiles.

    lj samples with its analytic potential, so sampling (GPU jobs) and profiles run without the MLIP stage,
    whose DeePMD training costs minutes per model even at 20 steps on 2 shared cores. The MLIP and cdft
    jobs are covered by their own end-to-end tests and by the dry-run tests of the full DAG.
    """
    stages = existing_stage_targets(configfile, workdir)
    return ["reference"] + (["results/lj/profiles.nc"] if "profiles" in stages else [])


def snakemake(workdir: Path, configfile: Path, args: list[str], timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """``snakemake --directory workdir --configfile configfile ARGS`` under ``timeout``; output captured."""
    command = [
        "timeout", "--signal=TERM", "--kill-after=10", str(int(timeout)),
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile), *args,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess, lines: int = 60) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


def run_locally(workdir: Path, configfile: Path, targets: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return snakemake(workdir, configfile, ["--profile", "profiles/local", "--cores", "2", *targets], timeout=timeout, check=True)


def planned_jobs(workdir: Path, configfile: Path, targets: list[str], extra: list[str] = ()) -> Counter:
    """Rule -> number of jobs a dry run would execute (``snakemake -n``'s job-stats table)."""
    result = snakemake(workdir, configfile, ["-n", *targets, *extra], timeout=300, check=True)
    return parse_job_stats(result.stdout + result.stderr)


def parse_job_stats(text: str) -> Counter:
    """Read the 'Job stats:' table (job, count) of a dry run; empty when there is nothing to do."""
    counts: Counter = Counter()
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        return counts
    for line in lines[start + 3 :]:
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


# ---- what ran where ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnakemakeJob:
    jobid: int
    rule: str
    local: bool
    resources: dict[str, str]


def executed_jobs(log_text: str) -> dict[int, SnakemakeJob]:
    """Snakemake's own job list from its log: every 'rule X:' / 'localrule X:' block with its jobid and resources."""
    jobs: dict[int, SnakemakeJob] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log_text):
        header = re.match(r"(local)?rule (\w+):\n", block)
        jobid = re.search(r"^\s+jobid: (\d+)$", block, re.M)
        if not header or not jobid:
            continue
        resources_line = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(item.split("=", 1) for item in resources_line.group(1).split(", ")) if resources_line else {}
        job = SnakemakeJob(int(jobid.group(1)), header.group(2), bool(header.group(1)), resources)
        jobs[job.jobid] = job
    return jobs


def submissions(log_text: str) -> dict[int, list[int]]:
    """Snakemake jobid -> SLURM job ids it was submitted as (more than one when --retries resubmitted it)."""
    found: dict[int, list[int]] = {}
    for jobid, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log_text):
        found.setdefault(int(jobid), []).append(int(slurm_id))
    return found


def slurm_records(jobcomp: Path, workdir: Path) -> dict[int, dict[str, str]]:
    """SLURM's job-completion records (jobcomp/filetxt) of the jobs that ran in ``workdir``, by SLURM job id.

    Only records submitted since ``workdir`` was made (its parent, a fresh pytest folder, last changed then): once
    an earlier run's numbered pytest folder is removed, pytest reuses its path, and the cluster's log keeps that
    run's records under the same WorkDir."""
    records = {}
    if not jobcomp.exists():
        return records
    made = datetime.fromtimestamp(int(workdir.parent.stat().st_mtime))
    for line in jobcomp.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir) and datetime.fromisoformat(fields["SubmitTime"]) >= made:
            records[int(fields["JobId"])] = fields
    return records


def slurm_job_details(slurm_ids: list[int]) -> dict[int, dict[str, str]]:
    """``scontrol show job`` fields (Comment, TresPerJob, Partition, ...) of recently finished jobs (MinJobAge=600)."""
    details = {}
    for slurm_id in slurm_ids:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(slurm_id)], capture_output=True, text=True, timeout=30).stdout
        details[slurm_id] = dict(re.findall(r"(\w+)=(\S*)", out))
    return details


# ---- results ------------------------------------------------------------------------------------------


def _csv_without_timing(path: Path) -> bytes:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        return b""
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
    return "\n".join(",".join(row[i] for i in keep) for row in rows).encode()


def _netcdf_values(path: Path) -> bytes:
    """The data and coordinate values of a netCDF file, without attributes (provenance carries times)."""
    import xarray as xr

    digest = hashlib.sha256()
    with xr.open_dataset(path) as dataset:
        for name in sorted(map(str, dataset.variables)):
            digest.update(name.encode())
            digest.update(dataset[name].values.tobytes())
    return digest.digest()


def content_hash(path: Path) -> str:
    """A hash of what must be deterministic in ``path``: bytes, or values for CSV (minus wall time) and netCDF."""
    if path.suffix == ".csv":
        content = _csv_without_timing(path)
    elif path.suffix == ".nc":
        content = _netcdf_values(path)
    else:
        content = path.read_bytes()
    return hashlib.sha256(content).hexdigest()


def result_hashes(workdir: Path) -> dict[str, str]:
    """Path (relative to workdir) -> content hash of every file under results/ that must be deterministic."""
    hashes = {}
    for path in sorted((workdir / "results").rglob("*")):
        if path.is_file() and path.name not in NOT_COMPARED:
            hashes[str(path.relative_to(workdir))] = content_hash(path)
    return hashes


def mtimes(workdir: Path) -> dict[str, int]:
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in sorted((workdir / "results").rglob("*")) if p.is_file()}


def local_rules() -> set[str]:
    """Rules that run on the login node under the SLURM executor: `localrule: True`, `localrules:`, or no command.

    (A dry run prints every job as 'rule X' under the SLURM executor, so the rule files are the source.)
    """
    local: set[str] = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for names in re.findall(r"^localrules:\s*(.+)$", text, re.M):
            local.update(name.strip() for name in names.split(","))
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            if "localrule: True" in body or not re.search(r"^\s+(shell|run|script|notebook|wrapper|cwl):", body, re.M):
                local.add(name)
    return local
