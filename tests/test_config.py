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


RULES = [("reference", "label"), ("mlip", "train"), ("mlip", "explore"), ("sampling", None), ("cdft", None), ("analysis", None), ("coexistence", "run")]


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


# ---- a config is what it says: --configfile stands on the schema defaults, never on the demo -----------------

PRODUCTION = [["water.yaml"], ["co2.yaml"], ["lj.yaml"], ["pets.yaml"], ["pets.yaml", "pets_noisy.yaml"]]


def _leaves(node, prefix=()):
    """(key path, value) of every leaf of a nested mapping; lists and empty mappings are leaves."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _at(node, path):
    for key in path:
        node = node[key]
    return node


@pytest.mark.parametrize("names", PRODUCTION, ids="+".join)
def test_production_config_is_its_files_over_schema_defaults(names):
    """Every effective value is the last file's that sets it, else the schema default: nothing from the demo."""
    from liquidscale.config import effective_config

    paths = [str(ROOT / "config" / name) for name in names]
    effective = dict(_leaves(effective_config(paths, base_dir=ROOT)))
    set_by_files = {}
    for path in paths:
        set_by_files.update(_leaves(load_yaml(path)))
    defaults = dict(_leaves(fill_defaults({}, load_schema())))
    for key, value in effective.items():
        expected = set_by_files[key] if key in set_by_files else defaults[key]
        assert value == expected, f"{'.'.join(key)}: effective {value!r}, expected {expected!r}"
    assert set(set_by_files) <= set(effective)


def test_effective_config_merges_files_in_order_and_names_bad_keys(tmp_path):
    from liquidscale.config import effective_config

    (tmp_path / "a.yaml").write_text("systems: [lj]\nsampling: {runs: 16, replicas_per_job: 4}\n")
    (tmp_path / "b.yaml").write_text("sampling: {runs: 32}\n")
    config = effective_config([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert (config["sampling"]["runs"], config["sampling"]["replicas_per_job"]) == (32, 4)
    (tmp_path / "bad.yaml").write_text("sampling: {runs: many}\n")
    with pytest.raises(UserError, match=r"config key 'sampling.runs': 'many' is not of type 'integer'"):
        effective_config([str(tmp_path / "a.yaml"), str(tmp_path / "bad.yaml")])
    (tmp_path / "list.yaml").write_text("- systems\n")
    with pytest.raises(UserError, match=r"list.yaml: a config file must be a mapping"):
        effective_config([str(tmp_path / "list.yaml")])
    (tmp_path / "torch.yaml").write_text("sampling: {lj: {engine: torch, exchange_moves: 10}}\n")
    with pytest.raises(UserError, match=r"config key 'sampling.lj.exchange_moves': 10 moves need sampling.lj.engine lammps"):
        effective_config([str(tmp_path / "a.yaml"), str(tmp_path / "torch.yaml")])


def _dry_run(workdir: Path, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def _batch_jobs(dry_run_output: str) -> int:
    import re

    return int(re.search(r"^sampling_batch\s+(\d+)$", dry_run_output, re.M).group(1))


def test_demo_loads_only_without_configfile(tmp_path):
    """No --configfile: the demo (8 runs of 4 = 2 lj batches); a --configfile without sampling: the defaults' 64 of 8."""
    from liquidscale.config import effective_config

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("systems: [lj]\nsampling: {runs: 8, replicas_per_job: 4}\n")
    assert _batch_jobs(_dry_run(tmp_path)) == 2
    (tmp_path / "only_lj.yaml").write_text("systems: [lj]\n")
    sampling = effective_config([str(tmp_path / "only_lj.yaml")])["sampling"]
    expected = -(-sampling["runs"] // sampling["replicas_per_job"])
    assert expected != 2
    assert _batch_jobs(_dry_run(tmp_path, "--configfile", str(tmp_path / "only_lj.yaml"))) == expected


@pytest.mark.parametrize("names", [["water.yaml"], ["lj.yaml"], ["pets.yaml", "pets_noisy.yaml"]], ids="+".join)
def test_snakemake_jobs_get_the_effective_config(names, tmp_path):
    """The cdft and analysis settings a dry run of a production config hands its jobs (--settings) are the effective config's.

    (Those two stages pass their whole section; reference and mlip pass per-action extracts.)
    """
    import re
    import shlex

    from liquidscale.config import effective_config

    paths = [str(ROOT / "config" / name) for name in names]
    effective = effective_config(paths, base_dir=ROOT)
    (tmp_path / "config").symlink_to(ROOT / "config")  # as in a checkout: the demo's config/config.yaml is there
    output = _dry_run(tmp_path, "--configfile", *paths)
    compared = set()
    for quoted in set(re.findall(r"--settings ('[^']*')", output)):
        settings = json.loads(shlex.split(quoted)[0])
        for key, value in _leaves({k: v for k, v in settings.items() if k in ("cdft", "analysis", "system_settings")}):
            section = settings["system"] if key[0] == "system_settings" else key[0]
            expected = _at({**effective, section: effective.get(section, {})}, (section, *key[1:]))  # lj has no system block
            assert value == expected, f"{'.'.join((section, *key[1:]))}: a job gets {value!r}, the effective config has {expected!r}"
            compared.add((section, *key[1:]))
    assert {key[0] for key in compared} >= {"cdft", "analysis"}, sorted(compared)
