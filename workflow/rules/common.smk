# Helpers shared by the stage rules: config validation, per-stage settings, target lists.
# No science here: rules call the `liquidscale` CLI, which lives in src/liquidscale.
import json
import sys

from liquidscale.config import MOLECULAR_SYSTEMS, stage_settings, validate_config
from liquidscale.errors import UserError

try:
    _validated = validate_config(config, base_dir=".")
except UserError as _error:
    sys.exit(f"liquidscale: {_error}")
config.clear()
config.update(_validated)

SYSTEMS = list(config["systems"])
MOLECULAR = [s for s in SYSTEMS if s in MOLECULAR_SYSTEMS]
LOGS = "logs"


wildcard_constraints:
    system="|".join(SYSTEMS) or "none",
    iteration=r"\d{3}",
    shard=r"\d{2}",


def settings_json(system, stage):
    """The JSON the `liquidscale` CLI receives as --settings; also the rule's params, so a change reruns the job."""
    return json.dumps(stage_settings(config, system, stage), sort_keys=True)


def settings_of(stage):
    """An input function giving `settings_json(wildcards.system, stage)` (rules may not use lambdas)."""

    def settings(wildcards):
        return settings_json(wildcards.system, stage)

    return settings
