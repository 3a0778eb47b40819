"""Config validation: every key documented with a default, every shipped config valid, bad configs fail clearly."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from liquidscale.config import fill_defaults, load_schema, load_yaml, validate_config
from liquidscale.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "config").glob("*.yaml"))


def _walk(schema, root, path="config"):
    """Yield (path, node) for every property node of the schema, following local $refs."""
    from liquidscale.config import _resolve

    node = _resolve(schema, root)
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, root)
        yield f"{path}.{key}", sub
        yield from _walk(sub, root, f"{path}.{key}")
    if "items" in node and isinstance(node["items"], dict):
        yield from _walk(node["items"], root, f"{path}[]")


def test_every_key_has_description_and_default():
    schema = load_schema()
    missing = []
    for path, node in _walk(schema, schema):
        if "[]" in path or path.startswith("config.reference.extra_configurations."):
            continue  # list items and optional per-system file paths have no meaningful default
        if not node.get("description"):
            missing.append(f"{path}: description")
        if "default" not in node:
            missing.append(f"{path}: default")
    assert not missing, "schema keys without description/default:\n" + "\n".join(missing)


def test_schema_defaults_are_themselves_valid():
    """An empty config, completed from the schema's defaults, is a valid campaign (pypsa-eur style)."""
    config = validate_config({})
    assert config == fill_defaults({}, load_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    validate_config(load_yaml(path), base_dir=ROOT)


def _set(config, dotted, value):
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return config


BAD = [
    ("seed", "abc", "seed", "not of type 'integer'"),
    ("systems", ["water", "argon"], "systems[1]", "'argon' is not one of"),
    ("systems", [], "systems", "should be non-empty"),
    ("water.temperature_range", [-10.0, 300.0], "water.temperature_range[0]", "less than or equal to the minimum"),
    ("co2.temperature_range", [320.0, 220.0], "co2.temperature_range", "lower bound 320.0 exceeds upper bound 220.0"),
    ("reference.method.xc", "NOT-A-FUNCTIONAL", "reference.method.xc", "NOT-A-FUNCTIONAL"),
    ("reference.method.basis", "def2-XYZ", "reference.method.basis", "def2-XYZ"),
    ("reference.method.dispersion", "d5", "reference.method.dispersion", "'d5' is not one of"),
    ("reference.shards", 0, "reference.shards", "less than the minimum of 1"),
    ("reference.initial.cluster_sizes", [], "reference.initial.cluster_sizes", "should be non-empty"),
    ("reference.extra_configurations", {"water": "no/such/file.extxyz"}, "reference.extra_configurations.water", "not found"),
    ("reference.bogus", 1, "reference", "unknown key(s) ('bogus' was unexpected)"),
    ("systems", ["water", "water"], "systems", "listed twice"),
    ("reference.method.conv_tol", 0.1, "reference.method.conv_tol", "greater than the maximum"),
]


@pytest.mark.parametrize("dotted,value,key,fragment", BAD, ids=[b[0] + "=" + str(b[1]) for b in BAD])
def test_bad_config_names_key_and_problem(dotted, value, key, fragment):
    config = _set(copy.deepcopy(load_yaml(ROOT / "config" / "config.yaml")), dotted, value)
    with pytest.raises(UserError) as info:
        validate_config(config, base_dir=ROOT)
    message = str(info.value)
    assert f"'{key}'" in message, message
    assert fragment in message, message
    assert "\n" not in message


def test_bad_config_stops_snakemake_with_one_line(tmp_path):
    """The Snakefile validates at DAG build: one line naming the key, no traceback, non-zero exit."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("systems: [water, argon]\n")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--directory", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "config key 'systems[1]'" in output
    assert "Traceback" not in output


def test_cli_config_check_prints_filled_config(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("systems: [water]\n")
    run = subprocess.run(
        [sys.executable, "-m", "liquidscale", "config", str(good)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "basis: def2-SVP" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "liquidscale", "config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "missing.yaml: file not found" in run.stderr
    assert "Traceback" not in run.stderr


def test_config_readme_lists_every_key():
    """config/README.md's key reference is the schema's, regenerated with `liquidscale config --docs`."""
    from liquidscale.config import schema_markdown

    readme = (ROOT / "config" / "README.md").read_text()
    begin = readme.index("<!-- BEGIN GENERATED: liquidscale config --docs -->\n")
    end = readme.index("<!-- END GENERATED -->")
    generated = readme[begin:end].split("\n", 1)[1]
    assert generated == schema_markdown(), "config/README.md is stale: regenerate the key reference with `liquidscale config --docs`"


RULES = [("reference", "label"), ("mlip", "train"), ("mlip", "explore"), ("sampling", None), ("cdft", None), ("analysis", None)]


@pytest.mark.parametrize("stage,action", RULES, ids=[f"{s}-{a}" for s, a in RULES])
def test_job_resources_do_not_change_rule_params(stage, action):
    """A longer runtime or more memory for a job must not rerun it: rule params hold no mem_mb/runtime."""
    from liquidscale.config import rule_settings

    config = validate_config(load_yaml(ROOT / "config" / "config.yaml"), base_dir=ROOT)
    before = rule_settings(config, "water", stage, action)
    changed = copy.deepcopy(config)
    for section in changed.values():
        for node in [section, *section.values()] if isinstance(section, dict) else []:
            if isinstance(node, dict):
                for key in ("mem_mb", "runtime"):
                    if key in node:
                        node[key] = node[key] * 2
    assert rule_settings(changed, "water", stage, action) == before
    assert "runtime" not in json.dumps(before) and "mem_mb" not in json.dumps(before)
