"""Partial reruns, stage targets, lint and determinism of the real workflow (marker ``workflow``).

Rerun decisions are read from dry runs (``snakemake -n`` job-stats table). Stages that need expensive
jobs (mlip, sampling, cdft) are brought up to date with ``snakemake --touch`` over placeholder outputs:
Snakemake then records the same metadata (params, code, input) it records after a real job, so the
dry run after a config change shows exactly what a real campaign would rerun. The reference stage,
cheap in the reduced config, is also run for real (second run does nothing; two runs give identical
outputs). Budget: ~1.5 min on 2 cores (two real reference runs of ~25 s, dry runs of ~4 s).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
from slurm.harness import (
    REDUCED_CONFIG,
    REPO,
    existing_stage_targets,
    mtimes,
    planned_jobs,
    result_hashes,
    run_locally,
    slurm_campaign_targets,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow

LATER_STAGES = ("mlip", "sampling", "profiles", "cdft", "analysis", "coexistence")


def _with(config: dict, path: str, value) -> dict:
    """A copy of ``config`` with the dotted key ``path`` set to ``value``."""
    changed = copy.deepcopy(config)
    node = changed
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return changed


def _touch_complete(workdir: Path, configfile: Path, targets: list[str]) -> None:
    """Bring ``targets`` up to date without running a job: placeholder outputs, then ``snakemake --touch``.

    Outputs without a suffix are directory() outputs in this workflow (shard folders, deepmd data).
    """
    summary = snakemake(workdir, configfile, ["--summary", *targets], timeout=300, check=True)
    for line in summary.stdout.splitlines()[1:]:
        output = workdir / line.split("\t")[0]
        if output.suffix:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.touch()
        else:
            output.mkdir(parents=True, exist_ok=True)
    snakemake(workdir, configfile, ["--touch", "--forceall", "--cores", "1", *targets], timeout=300, check=True)
    assert not planned_jobs(workdir, configfile, targets), "placeholders + --touch should leave nothing to do"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A workdir where every existing stage of the reduced campaign is up to date (via --touch)."""
    root = tmp_path_factory.mktemp("touched")
    configfile = write_config(root, REDUCED_CONFIG)
    targets = existing_stage_targets(configfile, root / "work")
    _touch_complete(root / "work", configfile, targets)
    return root / "work", configfile, targets


def _a_hyperparameter(section: str) -> tuple[str, float]:
    """The first floating-point key of the schema's ``section`` (depth first) and a changed value for it."""
    from liquidscale.config import _resolve, load_schema

    schema = load_schema()

    def walk(node, path):
        node = _resolve(node, schema)
        if node.get("type") == "number" and isinstance(node.get("default"), float):
            return path, node["default"] * 1.5
        for key, sub in node.get("properties", {}).items():
            found = walk(sub, f"{path}.{key}")
            if found:
                return found
        return None

    found = walk(schema["properties"][section], section)
    assert found, f"no floating-point hyperparameter in the schema's '{section}' section"
    return found


def _plan_after_change(campaign, key: str, value, tmp_path: Path):
    workdir, _, targets = campaign
    changed = write_config(tmp_path, _with(REDUCED_CONFIG, key, value))
    return planned_jobs(workdir, changed, targets)


def _require_stage(campaign, stage: str) -> None:
    if stage not in campaign[2]:
        pytest.skip(f"the '{stage}' stage's rules (workflow/rules/{stage}.smk, target rule '{stage}') do not exist yet")


def test_new_basis_reruns_labelling_and_everything_after_it(campaign, tmp_path):
    workdir, configfile, targets = campaign
    plan = _plan_after_change(campaign, "reference.method.basis", "6-31g", tmp_path)
    assert plan["reference_label"] == REDUCED_CONFIG["reference"]["shards"]
    assert "reference_collect" in plan
    assert "reference_configurations" not in plan, "the clusters do not depend on the basis"
    # Exactly what forcing the labelling would rerun: every job downstream of it, nothing else.
    assert plan == planned_jobs(workdir, configfile, targets, ["--forcerun", "reference_label"])
    for stage in LATER_STAGES:
        if stage in targets:
            assert stage in plan, f"a new basis must rerun the '{stage}' stage"


def test_cdft_hyperparameter_reruns_only_cdft_and_analysis(campaign, tmp_path):
    _require_stage(campaign, "cdft")
    workdir, configfile, targets = campaign
    key, value = _a_hyperparameter("cdft")
    plan = _plan_after_change(campaign, key, value, tmp_path)
    assert plan, f"a new {key} must rerun cdft"
    stages = {rule.split("_")[0] for rule in plan} - {"all"}
    assert stages <= {"cdft", "analysis"}, f"jobs outside cdft/analysis were planned: {sorted(plan)}"
    assert "cdft" in stages


def _batches_per_system(runs: int) -> int:
    per_job = REDUCED_CONFIG["sampling"]["replicas_per_job"]
    return -(-runs // per_job)


def test_more_runs_add_batches_and_rerun_none(campaign, tmp_path):
    """4 -> 7 runs (2 per job): batches 2 and 3 are new, batches 0 and 1 keep their results."""
    _require_stage(campaign, "sampling")
    workdir, _, targets = campaign
    runs = REDUCED_CONFIG["sampling"]["runs"] + 3
    plan = _plan_after_change(campaign, "sampling.runs", runs, tmp_path)
    sampled = [s for s in REDUCED_CONFIG["systems"] if s in ("water", "co2", "lj")]
    new_batches = _batches_per_system(runs) - _batches_per_system(REDUCED_CONFIG["sampling"]["runs"])
    assert plan["sampling_batch"] == new_batches * len(sampled), f"finished batches were planned again: {dict(plan)}"
    assert not [rule for rule in plan if rule.split("_")[0] in {"reference", "mlip"}], sorted(plan)


def test_partial_last_batch_reruns_when_it_grows(campaign, tmp_path):
    """4 -> 5 runs adds a one-replica batch; 5 -> 6 fills it: only that batch's content changes."""
    _require_stage(campaign, "sampling")
    workdir, _, targets = campaign
    five = write_config(tmp_path / "five", _with(REDUCED_CONFIG, "sampling.runs", 5))
    _touch_complete(workdir, five, targets)
    try:
        six = write_config(tmp_path / "six", _with(REDUCED_CONFIG, "sampling.runs", 6))
        plan = planned_jobs(workdir, six, targets)
        sampled = [s for s in REDUCED_CONFIG["systems"] if s in ("water", "co2", "lj")]
        assert plan["sampling_batch"] == len(sampled), f"only the grown last batch may rerun: {dict(plan)}"
    finally:
        # leave the module's campaign as the reduced config has it (4 runs) for the other tests
        _touch_complete(workdir, write_config(tmp_path / "four", REDUCED_CONFIG), targets)


@pytest.mark.parametrize(
    "key, value",
    [
        ("sampling.threads", 2),
        ("sampling.runtime", 999),
        ("sampling.mem_mb", 1234),
        ("sampling.checkpoint_minutes", 1),
        ("mlip.training.threads", 2),
        ("mlip.training.runtime", 999),
        ("mlip.training.mem_mb", 1234),
        ("mlip.explore.threads", 2),
        ("mlip.explore.runtime", 999),
        ("reference.threads", 2),
        ("reference.runtime", 999),
        ("reference.mem_mb", 1234),
        ("cdft.threads", 2),
        ("cdft.runtime", 999),
        ("cdft.mem_mb", 1234),
        ("coexistence.threads", 2),
        ("coexistence.runtime", 999),
        ("coexistence.mem_mb", 1234),
    ],
)
def test_resources_rerun_nothing(campaign, tmp_path, key, value):
    """Threads, wall time and memory decide what SLURM grants, not a result: a finished campaign stays finished."""
    from liquidscale.config import _resolve, load_schema

    schema = load_schema()
    node = schema
    for part in key.split("."):
        node = _resolve(node, schema).get("properties", {}).get(part)
        if node is None:
            pytest.skip(f"config key '{key}' is not in the schema")
    plan = _plan_after_change(campaign, key, value, tmp_path)
    assert not plan, f"changing {key} reran {dict(plan)}"


def test_a_retried_job_gets_runtime_times_attempt(campaign, tmp_path):
    """A job that fails (here: a water batch with the campaign's empty placeholder model) is retried with
    runtime x attempt, so a job killed at its wall time gets longer the next time (and resumes)."""
    _require_stage(campaign, "sampling")
    workdir, configfile, _ = campaign
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True)
    # `--forcerun=RULE`: with a space, --forcerun (a list option) would swallow the target and run every batch
    result = snakemake(copy, configfile, ["--cores", "1", "--retries", "1", "--forcerun=sampling_batch", "results/water/sampling/batch0000.nc"], timeout=300)
    assert result.returncode != 0, "the batch cannot run with an empty model file"
    output = result.stdout + result.stderr
    runtimes = [int(m) for m in re.findall(r"rule sampling_batch:\n(?:    .*\n)*?    resources: .*?runtime=(\d+)", output)]
    minutes = REDUCED_CONFIG["sampling"]["runtime"]
    assert runtimes == [minutes, 2 * minutes], output[-3000:]


def test_until_profiles_stops_there(tmp_path):
    configfile = write_config(tmp_path, REDUCED_CONFIG)
    targets = existing_stage_targets(configfile, tmp_path / "work")
    if "profiles" not in targets:
        pytest.skip("the 'profiles' rule (workflow/rules/sampling.smk or profiles.smk) does not exist yet")
    plan = planned_jobs(tmp_path / "work", configfile, ["all"], ["--until", "profiles"])
    assert "profiles" in plan or any(rule.startswith("profiles") for rule in plan)
    assert not [rule for rule in plan if rule.split("_")[0] in {"cdft", "analysis"}], sorted(plan)


def test_lint_prints_no_warnings(tmp_path):
    result = snakemake(tmp_path, REPO / "config" / "config.yaml", ["--lint"], timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The reduced campaign's cheap part (reference; lj sampling and profiles) run for real, twice, in two workdirs."""
    root = tmp_path_factory.mktemp("reference_runs")
    configfile = write_config(root, REDUCED_CONFIG)
    targets = slurm_campaign_targets(configfile, root / "probe")
    first, second = root / "first", root / "second"
    run_locally(first, configfile, targets)
    run_locally(second, configfile, targets)
    return first, second, configfile


def test_second_reference_run_does_nothing(reference_runs):
    first, _, configfile = reference_runs
    assert planned_jobs(first, configfile, ["reference"]) == {}
    assert planned_jobs(first, configfile, slurm_campaign_targets(configfile, first)) == {}


def test_same_config_gives_identical_outputs(reference_runs):
    """Compared: every file under results/ (reference: deepmd/npy energies, forces, coordinates, type maps,
    the generated clusters, summary.csv minus its wall-time column, failures.csv; lj: every sampling
    batch (each derives its own state points) and the profile dataset profiles.nc, value for value), byte for byte or, for netCDF,
    every variable's values. Not compared: provenance.json and netCDF attributes (git commit, times),
    labels.extxyz (per-frame wall time)."""
    first, second, configfile = reference_runs
    hashes = result_hashes(first)
    assert any(name.endswith("energy.npy") for name in hashes), sorted(hashes)
    if "profiles" in existing_stage_targets(configfile, first):
        assert "results/lj/profiles.nc" in hashes, sorted(hashes)
    assert hashes == result_hashes(second)


@pytest.fixture
def corrupted_campaign(reference_runs, tmp_path) -> tuple[Path, Path, Path, dict[str, int]]:
    """A copy of a finished reference run with one labelling shard's labels.extxyz truncated to half."""
    first, _, configfile = reference_runs
    workdir = tmp_path / "work"
    shutil.copytree(first, workdir, symlinks=True)
    victim = workdir / "results/water/reference/iter000/shards/shard00/labels.extxyz"
    before = mtimes(workdir)
    with victim.open("r+b") as handle:
        handle.truncate(victim.stat().st_size // 2)
    return workdir, configfile, victim, before


def test_corrupted_shard_gives_an_error_naming_it(corrupted_campaign):
    workdir, configfile, victim, _ = corrupted_campaign
    result = snakemake(workdir, configfile, ["--profile", "profiles/local", "--cores", "1", "reference", "--forcerun", "reference_collect"], timeout=300)
    assert result.returncode != 0, "collecting a truncated shard must fail"
    log = (workdir / "logs/water/reference/iter000/collect.log").read_text()
    assert str(victim.relative_to(workdir)) in log, log[-3000:]


def test_forcerun_of_the_producer_repairs_a_corrupted_shard(corrupted_campaign, reference_runs):
    workdir, configfile, victim, before = corrupted_campaign
    assert planned_jobs(workdir, configfile, ["reference"]) == {}, "Snakemake cannot see the corruption (same mtime)"
    plan = planned_jobs(workdir, configfile, ["reference"], ["--forcerun", "reference_label"])
    assert set(plan) == {"reference_label", "reference_collect", "reference"}, plan
    run_locally(workdir, configfile, ["reference", "--forcerun", "reference_label"])
    assert result_hashes(workdir) == result_hashes(reference_runs[0])
    configurations = "results/water/reference/iter000/configurations.extxyz"
    assert mtimes(workdir)[configurations] == before[configurations], "the finished configurations job was redone"
