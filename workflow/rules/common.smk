# Helpers shared by the stage rules: config validation, per-stage settings, target lists.
# No science here: rules call the `liquidscale` CLI, which lives in src/liquidscale.
import json
import os
import sys

from snakemake.settings.types import DeploymentMethod

from liquidscale.cli import WORKFLOW_CONFIGFILES_ENV, command_settings
from liquidscale.config import MOLECULAR_SYSTEMS, validate_config
from liquidscale.deployment import job_environment
from liquidscale.errors import UserError
from liquidscale.io import canonical_hash

# Jobs find `liquidscale` without an activated .venv, and conda jobs run this checkout's src/ (deployment.py).
_CONDA_JOBS = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
os.environ.update(job_environment(os.environ, workflow.basedir, sys.executable, _CONDA_JOBS))

try:
    _validated = validate_config(config, base_dir=".")
except UserError as _error:
    sys.exit(f"liquidscale: {_error}")
config.clear()
config.update(_validated)


def report_overview(validated):
    """The hashes the report's front page quotes (workflow/report/workflow.rst can read only `config`): the validated
    config's, and per system the config_hash its cdft and analysis outputs record in their provenance."""
    return {
        "config_hash": canonical_hash(validated),
        "stage_hashes": {
            s: {stage: canonical_hash(command_settings(validated, s, stage, action)) for stage, action in (("cdft", "train"), ("analysis", "run"))}
            for s in validated["systems"]
        },
    }


config["report_overview"] = report_overview(_validated)

SYSTEMS = list(config["systems"])
MOLECULAR = [s for s in SYSTEMS if s in MOLECULAR_SYSTEMS]


wildcard_constraints:
    system="|".join(SYSTEMS) or "none",
    iteration=r"\d{3}",
    shard=r"\d{2}",


# A failed job's log names these files in the command that reruns it by hand (liquidscale.cli.rerun_command).
os.environ[WORKFLOW_CONFIGFILES_ENV] = json.dumps([str(p) for p in workflow.overwrite_configfiles or workflow.configfiles])


def settings_of(stage, action):
    """Input function: the --settings JSON of `liquidscale <stage> <action>` for the job's system.

    It is also the rule's params, so a change reruns the job; by hand the same command builds the same
    settings from `--configfile ... --system ...` (liquidscale.cli.command_settings).
    """

    def settings(wildcards):
        batch = int(wildcards.batch) if "batch" in wildcards.keys() else None
        return json.dumps(command_settings(config, wildcards.system, stage, action, batch=batch), sort_keys=True)

    return settings


def gpu_count(device):
    """The `gpu` resource for a stage's `device` setting. One GPU for auto and cuda, none for cpu,
    so that SLURM never holds a GPU (or a GPU partition's queue) for a CPU job."""
    return 0 if device == "cpu" else 1


def runtime_by_attempt(minutes):
    """A `runtime` resource that grows with Snakemake's attempt: a job retried after hitting the wall time
    gets minutes x attempt, and resumes from its checkpoint instead of starting over."""

    def runtime(wildcards, attempt):
        return minutes * attempt

    return runtime


# ---- mlip (concurrent learning) --------------------------------------------------------------
def mlip_members():
    return list(range(config["mlip"]["ensemble_size"]))


def mlip_iteration_dirs(system):
    return [f"results/{system}/mlip/iter{k:03d}" for k in range(config["mlip"]["iterations"])]


def mlip_reference_data(wildcards):
    """reference/iter{k}/data for k = 0..iteration: iteration i trains on every label so far."""
    return [f"results/{wildcards.system}/reference/iter{k:03d}/data" for k in range(int(wildcards.iteration) + 1)]


def mlip_member_dirs(wildcards):
    return [f"results/{wildcards.system}/mlip/iter{wildcards.iteration}/model{m}" for m in mlip_members()]


def mlip_previous_member(wildcards):
    """The same member one iteration earlier (reused when no data were added); none for iteration 0."""
    i = int(wildcards.iteration)
    return [] if i == 0 else [f"results/{wildcards.system}/mlip/iter{i - 1:03d}/model{wildcards.member}"]


def mlip_previous_member_arg(wildcards):
    previous = mlip_previous_member(wildcards)
    return f"--previous {previous[0]}" if previous else ""


def mlip_previous_selection(wildcards):
    """Iteration i's configurations to label are the clusters iteration i-1 selected."""
    return f"results/{wildcards.system}/mlip/iter{int(wildcards.iteration) - 1:03d}/selected.extxyz"


def mlip_final_inputs(wildcards):
    iterations = mlip_iteration_dirs(wildcards.system)
    return {
        "metrics": [f"{d}/metrics.json" for d in iterations],
        "selection": [f"{d}/selection.json" for d in iterations],
        "models": [f"{iterations[-1]}/model{m}" for m in mlip_members()],
    }


def mlip_iterations_arg(wildcards):
    return " ".join(mlip_iteration_dirs(wildcards.system))


# ---- reference (PySCF labels) ----------------------------------------------------------------
def reference_extra_configurations(wildcards):
    """The system's extra extxyz file from reference.extra_configurations, if any."""
    path = (config["reference"]["extra_configurations"] or {}).get(wildcards.system)
    return [path] if path else []


def reference_shard_dirs(wildcards):
    return [f"results/{wildcards.system}/reference/iter{wildcards.iteration}/shards/shard{k:02d}" for k in range(config["reference"]["shards"])]


# ---- sampling (MD under random external potentials) and profiles ----------------------------
SAMPLED = [s for s in SYSTEMS if s in ("water", "co2", "lj")]
# Reference fluids whose profiles come from a known functional instead of simulation.
REFERENCE_FLUIDS = [s for s in SYSTEMS if s in ("hard_rods", "pets")]


def sampling_batches():
    """Batch indices of every sampled system: ceil(sampling.runs / sampling.replicas_per_job)."""
    runs, per_job = config["sampling"]["runs"], config["sampling"]["replicas_per_job"]
    return [f"{b:04d}" for b in range(-(-runs // per_job))]


def sampling_batch_files(wildcards):
    return expand("results/{system}/sampling/batch{batch}.nc", system=wildcards.system, batch=sampling_batches())


def sampling_model(wildcards):
    """The final DeePMD model the molecular systems run with (first ensemble member); none for lj."""
    if wildcards.system in MOLECULAR:
        return [f"results/{wildcards.system}/mlip/final/model0.pth"]
    return []


def sampling_model_arg(wildcards):
    return " ".join(f"--model {path}" for path in sampling_model(wildcards))


# ---- coexistence (slab MD of the system's own potential) --------------------------------------
def coexistence_gpus(wildcards):
    """The coexistence job's `gpu` resource: none for LAMMPS (CPU only), else as coexistence.device."""
    if wildcards.system == "lj" and config["sampling"]["lj"]["engine"] == "lammps":
        return 0
    return gpu_count(config["coexistence"]["device"])


# ---- analysis (thermodynamics from the functional) -------------------------------------------
from liquidscale.analysis.figures import FIGURES as ANALYSIS_FIGURES  # noqa: E402  (figure names; numpy-only import)
