"""``liquidscale plan``: job counts equal ``snakemake -n``'s, and the cost estimate of the demo config is
within a factor of 2 of the demo's measured benchmark files (``tests/data/demo_benchmarks``, a copy of
``benchmarks/`` from ``make demo``). Budget: about 1 min on one core (dry runs of three configs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm.harness import REPO, parse_job_stats, snakemake

from liquidscale.cli import main
from liquidscale.plan import COSTS, DEFAULT_CONFIGFILE, Job, Workload, dry_run, job_cost, load_config, load_costs, make_plan, parse_dry_run, sized_rate, stage_of

DEMO_BENCHMARKS = Path(__file__).parent / "data" / "demo_benchmarks"
PRODUCTION = [REPO / "config" / "water.yaml", REPO / "config" / "co2.yaml"]


@pytest.mark.parametrize("configfiles", [[], [PRODUCTION[0]], [PRODUCTION[1]]], ids=["demo", "water", "co2"])
def test_job_counts_equal_snakemakes_dry_run(configfiles, tmp_path):
    """The plan's jobs per rule are those `snakemake -n [--configfile FILE]` lists (the demo without one)."""
    plan = make_plan(configfiles)
    result = snakemake(tmp_path, (configfiles or [DEFAULT_CONFIGFILE])[0], ["-n"], timeout=300, check=True)
    expected = parse_job_stats(result.stdout + result.stderr)
    assert {row["rule"]: row["jobs"] for row in plan["rules"]} == dict(expected)
    assert plan["jobs"] == sum(expected.values())


def test_production_plan_costs_every_stage(capsys):
    """Every costed stage of a production config has a number and says what it rests on; the sampling
    batches are GPU jobs whose estimate stays in the CPU-rate column while no GPU rate is measured."""
    assert main(["plan", "--configfile", str(PRODUCTION[0]), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    rules = {row["rule"]: row for row in plan["rules"]}
    for rule in ("reference_label", "mlip_train", "mlip_explore", "sampling_batch", "profiles_aggregate", "cdft_train", "analysis_system"):
        row = rules[rule]
        assert row["unestimated_jobs"] == 0 and row["basis"], rule
        assert row["core_hours"] + row["gpu_hours"] + row["gpu_jobs_at_cpu_rate_core_hours"] > 0, rule
    batch = rules["sampling_batch"]
    assert batch["gpu_jobs"] == batch["jobs"] == 128 and batch["gpu_hours"] == 0 and batch["gpu_jobs_at_cpu_rate_core_hours"] > 0
    assert any("def2-TZVP" in basis for basis in rules["reference_label"]["basis"])
    costs = yaml.safe_load(COSTS.read_text())
    assert plan["costs"]["machine"] == costs["machine"] and plan["costs"]["date"] == costs["date"]


# benchmark file (the rules' `benchmark:` paths under benchmarks/{system}/) -> (rule, its wildcards)
BENCHMARK_PATHS = [
    (r"reference/iter(?P<iteration>\d{3})/label(?P<shard>\d{2})", "reference_label"),
    (r"mlip/iter(?P<iteration>\d{3})/train(?P<member>\d+)", "mlip_train"),
    (r"mlip/iter(?P<iteration>\d{3})/explore", "mlip_explore"),
    (r"sampling/batch(?P<batch>\d{4})", "sampling_batch"),
    (r"profiles", "profiles_aggregate"),
    (r"cdft/train", "cdft_train"),
    (r"analysis/run", "analysis_system"),
]


def _benchmarked_jobs() -> list[tuple[str, dict[str, str], float]]:
    """(rule, wildcards, measured CPU seconds) of every copied demo benchmark file."""
    found = []
    for tsv in sorted(DEMO_BENCHMARKS.rglob("*.tsv")):
        system, rest = tsv.relative_to(DEMO_BENCHMARKS).parts[0], tsv.relative_to(DEMO_BENCHMARKS).with_suffix("").as_posix().split("/", 1)[1]
        rule, match = next((rule, m) for pattern, rule in BENCHMARK_PATHS if (m := re.fullmatch(pattern, rest)))
        found.append((rule, {"system": system, **match.groupdict()}, float(pd.read_csv(tsv, sep="\t")["cpu_time"].iloc[0])))
    return found


def test_demo_estimate_is_within_a_factor_2_of_its_benchmarks():
    """Per stage, the plan's estimate of exactly the demo jobs that have a benchmark file vs their measured CPU seconds."""
    config = load_config([])
    planned = {(job.rule, tuple(sorted(job.wildcards.items()))): job for job in dry_run(config)}
    work, costs = Workload(config), load_costs()
    estimated: dict[str, float] = {}
    measured: dict[str, float] = {}
    for rule, wildcards, seconds in _benchmarked_jobs():
        cost = job_cost(planned[(rule, tuple(sorted(wildcards.items())))], work, costs)
        assert cost.core_seconds is not None or cost.gpu_seconds is not None, (rule, wildcards, cost.basis)
        stage = stage_of(rule)
        estimated[stage] = estimated.get(stage, 0.0) + (cost.core_seconds if cost.core_seconds is not None else cost.gpu_seconds)
        measured[stage] = measured.get(stage, 0.0) + seconds
    ratios = {stage: estimated[stage] / measured[stage] for stage in measured}
    print("estimate / measured CPU seconds of the demo's benchmarked jobs, per stage:", {k: round(v, 2) for k, v in ratios.items()})
    assert {"reference", "mlip"} <= set(ratios)
    assert all(0.5 <= r <= 2.0 for r in ratios.values()), ratios


def test_rates_follow_model_size_and_device():
    points = [{"macs_per_atom": 1e3, "seconds_per_step": 1.0, "measured_on": "small"}, {"macs_per_atom": 1e5, "seconds_per_step": 11.0, "measured_on": "large"}]
    assert sized_rate(points, "seconds_per_step", 1e3, "cpu", "x").seconds == 1.0
    assert sized_rate(points, "seconds_per_step", 5.05e4, "cpu", "x").seconds == pytest.approx(6.0)
    scaled = sized_rate(points, "seconds_per_step", 2e5, "cpu", "x")
    assert scaled.seconds == pytest.approx(22.0) and "scaled x2" in scaled.basis and "large" in scaled.basis
    gpu = sized_rate([*points, {"macs_per_atom": 1e5, "seconds_per_step": 0.1, "device": "gpu", "measured_on": "H100"}], "seconds_per_step", 1e5, "gpu", "x")
    assert (gpu.seconds, gpu.device) == (0.1, "gpu")
    assert sized_rate(points, "seconds_per_step", 1e5, "gpu", "x").device == "cpu"  # no GPU point: the CPU one, said so


def test_a_gpu_rate_gives_gpu_hours_and_an_unmeasured_level_is_not_estimated():
    config = load_config([])
    work = Workload(config)
    costs = yaml.safe_load(COSTS.read_text())
    batch = Job("sampling_batch", {"system": "water", "batch": "0000"}, threads=1, gpu=1)
    on_cpu = job_cost(batch, work, costs)
    assert on_cpu.gpu_seconds is None and on_cpu.core_seconds > 0
    fast = {**costs["units"]["deepmd_md"][0], "device": "gpu", "seconds_per_atom_step": costs["units"]["deepmd_md"][0]["seconds_per_atom_step"] / 100}
    on_gpu = job_cost(batch, work, {**costs, "units": {**costs["units"], "deepmd_md": [*costs["units"]["deepmd_md"], fast]}})
    assert on_gpu.core_seconds is None and on_gpu.gpu_seconds == pytest.approx(on_cpu.core_seconds / 100)
    label = Job("reference_label", {"system": "water", "iteration": "000", "shard": "00"})
    assert job_cost(label, Workload({**config, "reference": {**config["reference"], "method": {"xc": "B3LYP", "basis": "cc-pVQZ"}}}), costs).core_seconds is None


def test_dry_run_blocks_are_parsed_with_wildcards_threads_and_gpu():
    text = """[Wed Dec  2 02:57:01 2026]
rule mlip_train:
    input: results/co2/mlip/iter000/data
    wildcards: system=co2, iteration=000, member=0
    threads: 4
    resources: tmpdir=/tmp, runtime=30, cpus_per_task=4, gpu=1, mem_mb=4000, mem=4 GB, mem_mib=3815
[Wed Dec  2 02:57:01 2026]
localrule all:
    input: results/co2/analysis/summary.json
    jobid: 0
"""
    assert parse_dry_run(text) == [Job("mlip_train", {"system": "co2", "iteration": "000", "member": "0"}, 4, 1), Job("all", {}, 1, 0)]


def test_a_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling: {runs: -1}\n")
    assert main(["plan", "--configfile", str(bad)]) == 2
    assert "config key 'sampling.runs'" in capsys.readouterr().err
