"""The reduced campaign on a real single-node SLURM cluster through `--profile profiles/slurm` (marker ``slurm``).

tests/slurm/cluster.sh installs (if missing) and starts munge, slurmctld and slurmd with fake GPUs; the
tests skip, saying why, where it cannot (not root, no apt-get). Checked: every non-local job went through
sbatch (SLURM's job-completion records list exactly the jobs Snakemake submitted), GPU jobs carried a GPU
request, results equal a local run's; a job killed with scancel is resubmitted by --retries; snakemake
killed with SIGKILL, then unlocked and rerun, finishes with the same outputs and redoes nothing finished.
Every snakemake runs under a timeout. Budget: ~5 min on 2 cores (about 10 s of SLURM latency per job).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from slurm.harness import (
    CANNOT_RUN_HERE,
    CLUSTER_SCRIPT,
    REDUCED_CONFIG,
    REPO,
    SNAKEMAKE,
    environment,
    executed_jobs,
    mtimes,
    planned_jobs,
    result_hashes,
    run_locally,
    slurm_job_details,
    slurm_campaign_targets,
    slurm_records,
    snakemake,
    submissions,
    tail,
    write_config,
)

pytestmark = pytest.mark.slurm

SLURM_DIR = Path(os.environ.get("LIQUIDSCALE_SLURM_DIR", "/tmp/liquidscale-slurm"))
JOBCOMP = SLURM_DIR / "log" / "jobcomp.txt"
PARTITION = "debug"
ACCOUNT = "liquidscale-test"
FAULT_TARGETS = ["reference"]  # faults are injected in the cheapest stage: a handful of short jobs
RUN_TIMEOUT = 540  # seconds for one SLURM campaign of a handful of jobs; a hang fails instead of blocking CI


@pytest.fixture(scope="session")
def cluster():
    env = {**os.environ, "LIQUIDSCALE_SLURM_DIR": str(SLURM_DIR), "LIQUIDSCALE_SLURM_PARTITION": PARTITION}
    started = subprocess.run(["timeout", "300", str(CLUSTER_SCRIPT), "start"], env=env, capture_output=True, text=True)
    if started.returncode == CANNOT_RUN_HERE:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, f"cluster.sh start failed:\n{started.stdout}{started.stderr}"
    yield
    subprocess.run(["timeout", "120", str(CLUSTER_SCRIPT), "stop"], env=env, check=True)


def local_override_profile(folder: Path) -> Path:
    """The site-specific part of profiles/slurm for this test cluster: partition, account, fast status checks."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    override = {
        "default-resources": {**profile["default-resources"], "slurm_partition": PARTITION, "slurm_account": ACCOUNT, "runtime": 10, "mem_mb": 500},
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 1,
        "latency-wait": 5,
        "retries": 1,
    }
    if profile.get("set-resources"):  # snakemake refuses an empty set-resources
        override["set-resources"] = {rule: {**resources, "slurm_partition": PARTITION} for rule, resources in profile["set-resources"].items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
    return folder


def slurm_command(workdir: Path, configfile: Path, targets: list[str]) -> list[str]:
    override = local_override_profile(workdir.parent / f"{workdir.name}-profile")
    return [
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile),
        "--profile", str(REPO / "profiles" / "slurm"),  # absolute: the plugin opens partitions.yaml after --directory moved the cwd
        "--workflow-profile", str(override), *targets,
    ]  # fmt: skip


def run_through_slurm(workdir: Path, configfile: Path, targets: list[str]) -> str:
    command = ["timeout", "--kill-after=10", str(RUN_TIMEOUT), *slurm_command(workdir, configfile, targets)]
    result = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, f"SLURM campaign failed ({result.returncode}):\n{tail(result, 120)}"
    return result.stdout + result.stderr


def assert_same_results(workdir: Path, reference_workdir: Path) -> None:
    """Every deterministic result in ``workdir`` equals the same file of ``reference_workdir`` (which may hold more stages)."""
    hashes, expected = result_hashes(workdir), result_hashes(reference_workdir)
    assert any(name.endswith("energy.npy") for name in hashes), sorted(hashes)
    assert hashes == {name: expected.get(name) for name in hashes}


def our_slurm_jobs(workdir: Path) -> list[tuple[int, str]]:
    """(SLURM job id, state) of the queued or running jobs whose working directory is ``workdir``."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %t %Z"], capture_output=True, text=True, timeout=30).stdout
    return [(int(i), state) for i, state, wd in (line.split() for line in out.splitlines()) if wd == str(workdir)]


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def wait_for_running_job(workdir: Path, process: subprocess.Popen, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [slurm_id for slurm_id, state in our_slurm_jobs(workdir) if state == "R"]
        if running:
            return running[0]
        assert process.poll() is None, "snakemake ended before any SLURM job ran"
        time.sleep(0.2)
    raise AssertionError(f"no SLURM job of {workdir} started within {timeout} s")


@pytest.fixture(scope="module")
def reduced(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("slurm_campaign")
    configfile = write_config(root, REDUCED_CONFIG)
    return configfile, slurm_campaign_targets(configfile, root / "probe")


@pytest.fixture(scope="module")
def local_run(reduced, tmp_path_factory) -> Path:
    configfile, targets = reduced
    workdir = tmp_path_factory.mktemp("local") / "work"
    run_locally(workdir, configfile, targets)
    return workdir


@pytest.fixture(scope="module")
def slurm_run(cluster, reduced, tmp_path_factory) -> tuple[Path, str, dict]:
    configfile, targets = reduced
    workdir = tmp_path_factory.mktemp("slurm") / "work"
    plan = planned_jobs(workdir, configfile, targets)
    log = run_through_slurm(workdir, configfile, targets)
    return workdir, log, plan


def test_every_non_local_job_went_through_sbatch(slurm_run):
    workdir, log, plan = slurm_run
    jobs = executed_jobs(log)
    assert sorted(job.rule for job in jobs.values()) == sorted(plan.elements()), "Snakemake ran a different job list than it planned"
    submitted = submissions(log)
    remote = {jobid for jobid, job in jobs.items() if not job.local}
    assert remote, "the reduced campaign has no job that leaves the login node"
    assert set(submitted) == remote, "every non-local job, and only those, must be submitted with sbatch"
    slurm_ids = sorted(i for ids in submitted.values() for i in ids)
    records = slurm_records(JOBCOMP, workdir)
    assert sorted(records) == slurm_ids, "SLURM's job-completion records differ from Snakemake's submissions"
    failed = {i: r["JobState"] for i, r in records.items() if r["JobState"] != "COMPLETED"}
    assert not failed, f"SLURM jobs did not complete (logs: {workdir}/.snakemake/slurm_logs/rule_*/*/<id>.log): {failed}"
    details = slurm_job_details(slurm_ids)
    for jobid, ids in submitted.items():
        record, detail = records[ids[0]], details[ids[0]]
        assert record["Partition"] == PARTITION and record["Account"] == ACCOUNT
        assert detail["Comment"].startswith(f"rule_{jobs[jobid].rule}"), (detail["Comment"], jobs[jobid].rule)
        assert int(record["TimeLimit"]) == int(jobs[jobid].resources["runtime"])


def test_gpu_jobs_asked_slurm_for_gpus(slurm_run):
    workdir, log, _ = slurm_run
    jobs, submitted = executed_jobs(log), submissions(log)
    gpu_jobs = {jobid for jobid in submitted if int(jobs[jobid].resources.get("gpu", 0) or 0) > 0}
    details = slurm_job_details([ids[0] for ids in submitted.values()])
    for jobid, ids in submitted.items():
        requested = "gres:gpu" in details[ids[0]].get("TresPerJob", "") + details[ids[0]].get("TresPerNode", "")
        assert requested == (jobid in gpu_jobs), f"{jobs[jobid].rule}: GPU request in SLURM {requested}, in the rule {jobid in gpu_jobs}"
    if not gpu_jobs:
        pytest.skip("no GPU rule in the reduced campaign yet (mlip, sampling and cdft rules are not in the Snakefile); CPU jobs checked to carry no GPU request")


def test_slurm_results_equal_local_results(slurm_run, local_run):
    assert result_hashes(slurm_run[0]).keys() == result_hashes(local_run).keys()
    assert_same_results(slurm_run[0], local_run)


def test_cancelled_job_is_resubmitted(cluster, reduced, local_run, tmp_path):
    configfile, targets = reduced[0], FAULT_TARGETS
    workdir = tmp_path / "work"
    process = subprocess.Popen(slurm_command(workdir, configfile, targets), cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        victim = wait_for_running_job(workdir, process)
        subprocess.run(["scancel", str(victim)], check=True, timeout=30)
        log, _ = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, log[-6000:]
    records = slurm_records(JOBCOMP, workdir)
    assert records[victim]["JobState"] == "CANCELLED"
    resubmitted = [ids for ids in submissions(log).values() if victim in ids]
    assert resubmitted and len(resubmitted[0]) == 2, f"job {victim} was not resubmitted: {submissions(log)}"
    assert records[resubmitted[0][1]]["JobState"] == "COMPLETED"
    assert_same_results(workdir, local_run)


def test_sigkill_then_rerun_gives_the_same_outputs(cluster, reduced, local_run, tmp_path):
    configfile, targets = reduced[0], FAULT_TARGETS
    workdir = tmp_path / "work"
    process = subprocess.Popen(slurm_command(workdir, configfile, targets), cwd=REPO, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_running_job(workdir, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # The recovery docs/cluster.md gives: cancel the dead run's jobs, unlock, rerun (the profile has rerun-incomplete).
    orphans = [str(slurm_id) for slurm_id, _ in our_slurm_jobs(workdir)]
    if orphans:
        subprocess.run(["scancel", *orphans], check=True, timeout=30)
    wait_until(lambda: not our_slurm_jobs(workdir), "the cancelled jobs to leave the queue")
    snakemake(workdir, configfile, ["--unlock"], timeout=120, check=True)
    finished_before = {path: mtime for path, mtime in mtimes(workdir).items() if "/shards/" not in path}
    assert finished_before, "the killed run should have finished its local job (the configurations) first"
    plan = planned_jobs(workdir, configfile, targets, ["--rerun-incomplete"])
    assert "reference_configurations" not in plan, "the configurations finished before the kill and must not be redone"
    rerun_log = run_through_slurm(workdir, configfile, targets)
    assert sorted(job.rule for job in executed_jobs(rerun_log).values()) == sorted(plan.elements())
    assert_same_results(workdir, local_run)
    after = mtimes(workdir)
    assert {path: after[path] for path in finished_before} == finished_before, "a file finished before the kill was redone"
