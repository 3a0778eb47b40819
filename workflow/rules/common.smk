# Helpers shared by the stage rules: config validation, per-stage settings, target lists.
# No science here: rules call the `liquidscale` CLI, which lives in src/liquidscale.
import json
import sys

from liquidscale.config import MOLECULAR_SYSTEMS, rule_settings, validate_config
from liquidscale.errors import UserError
from liquidscale.io import canonical_hash

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
        "stage_hashes": {s: {stage: canonical_hash(rule_settings(validated, s, stage)) for stage in ("cdft", "analysis")} for s in validated["systems"]},
    }


config["report_overview"] = report_overview(_validated)

SYSTEMS = list(config["systems"])
MOLECULAR = [s for s in SYSTEMS if s in MOLECULAR_SYSTEMS]


wildcard_constraints:
    system="|".join(SYSTEMS) or "none",
    iteration=r"\d{3}",
    shard=r"\d{2}",


def settings_json(system, stage, action=None):
    """The JSON the `liquidscale` CLI receives as --settings; also the rule's params, so a change reruns the job."""
    return json.dumps(rule_settings(config, system, stage, action), sort_keys=True)


def settings_of(stage, action=None):
    """An input function giving `settings_json(wildcards.system, stage, action)` (rules may not use lambdas)."""

    def settings(wildcards):
        return settings_json(wildcards.system, stage, action)

    return settings


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


def sampling_gpus():
    """Sampling jobs ask for a GPU unless the config pins them to the CPU."""
    return 0 if config["sampling"]["device"] == "cpu" else 1


# ---- analysis (thermodynamics from the functional) -------------------------------------------
from liquidscale.analysis.figures import FIGURES as ANALYSIS_FIGURES  # noqa: E402  (figure names; numpy-only import)
