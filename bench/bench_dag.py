"""Scale of the DAG: dry-run time and SLURM job count of a campaign with 10^4 sampling runs per system.

The embedded default config (config/config.yaml) with `sampling.runs` raised to RUNS: Snakemake must
build the whole DAG in seconds (target: under a minute here) and batch the runs, so that the jobs it
would submit to SLURM are far fewer than the runs (`sampling.replicas_per_job` replicas per job).
Run: `.venv/bin/python bench/bench_dag.py [RUNS] [REPLICAS_PER_JOB]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from slurm.harness import REPO, local_rules, parse_job_stats, snakemake, write_config  # noqa: E402


def campaign_config(runs: int, replicas_per_job: int) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.setdefault("sampling", {}).update(runs=runs, replicas_per_job=replicas_per_job)
    return config


def main(runs: int = 10_000, replicas_per_job: int = 100) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        configfile = write_config(root, campaign_config(runs, replicas_per_job))
        start = time.perf_counter()
        result = snakemake(root / "work", configfile, ["-n", "all"], timeout=600)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dry run failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    jobs = parse_job_stats(result.stdout + result.stderr)
    local = local_rules()
    slurm_jobs = sum(count for rule, count in jobs.items() if rule not in local)
    sampled_runs = runs * max(jobs.get("profiles_aggregate", 0), 1)
    print(f"sampling runs per system      {runs}  ({replicas_per_job} replicas per job)")
    print(f"sampling runs in the DAG      {sampled_runs}  ({jobs.get('profiles_aggregate', 0)} sampled systems)")
    print(f"dry-run wall time             {seconds:.1f} s  (target < 60 s)")
    print(f"jobs in the DAG               {sum(jobs.values())}")
    print(f"jobs submitted to SLURM       {slurm_jobs}  (sampling_batch: {jobs.get('sampling_batch', 0)})")
    print(f"runs per SLURM sampling job   {sampled_runs / max(jobs.get('sampling_batch', 1), 1):.0f}")
    print(f"runs / SLURM jobs             {sampled_runs / max(slurm_jobs, 1):.1f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
