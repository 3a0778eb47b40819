"""Config loading and validation against ``workflow/schemas/config.schema.yaml``.

The schema gives every key a description and a default. Validation fills the defaults, then reports
the first problem as one line that names the key, e.g.
``config key 'reference.method.basis': 'def2-XYZ' is not a basis set PySCF knows``.
Snakemake's Snakefile and the CLI both call :func:`validate_config`, so they agree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UserError

# Package data: in a checkout a link to workflow/schemas/config.schema.yaml, in an installed package a copy.
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "config.schema.yaml"
MOLECULAR_SYSTEMS = ("water", "co2")


def load_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None


def load_schema() -> dict[str, Any]:
    return load_yaml(SCHEMA_PATH)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/definitions/...``), keeping the referring node's own keys."""
    if "$ref" not in schema:
        return schema
    target: Any = root
    for part in schema["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def fill_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """Return ``instance`` with every missing key that has a schema default filled in (recursively)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if schema.get("type") == "array" and isinstance(instance, list) and "items" in schema:
        return [fill_defaults(item, schema["items"], root) for item in instance]
    if schema.get("type") != "object" or not isinstance(instance, dict):
        return instance
    out = dict(instance)
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in out:
            if "default" not in sub:
                continue
            out[key] = copy.deepcopy(sub["default"])
        out[key] = fill_defaults(out[key], sub, root)
    return out


def _key_path(path) -> str:
    parts = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(schema: Mapping[str, Any], path) -> str:
    """The schema description of the key at ``path`` (for error messages)."""
    node: Mapping[str, Any] = schema
    for item in path:
        node = _resolve(node, schema)
        if isinstance(item, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(item, {})
    return _resolve(node, schema).get("description", "")


def validate_config(config: Mapping[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Validate ``config`` (defaults filled) and return the completed config; raise UserError on the first problem."""
    import jsonschema

    schema = load_schema()
    config = fill_defaults(coerce_strings(dict(config or {}), schema), schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = errors[0]
        key = list(err.absolute_path)
        if err.validator == "additionalProperties":
            message = err.message.replace("Additional properties are not allowed", "unknown key(s)")
        else:
            message = err.message
        description = _describe(schema, key)
        hint = f" ({description})" if description else ""
        raise UserError(f"config key '{_key_path(key)}': {message}{hint}")
    _check_semantics(config, Path(base_dir))
    from .constraints import check_feasible

    check_feasible(config)
    return config


# ---- values written as strings (snakemake --config) ------------------------------------------------
# `snakemake --config 'cdft={"max_epochs": 500}'` reads the value with YAML's BaseLoader, which keeps every
# nested scalar a string ('500', 'true', 'null'). Such strings take the type the schema asks for before
# validation; one that is no such value fails naming its key (in jsonschema's words).
def _parse_null(text: str) -> None:
    if text not in ("null", "Null", "NULL", "~"):
        raise ValueError(text)


def _parse_boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


# schema type -> parser of its string form (raises ValueError when the string is not one)
_STRING_PARSERS = {"null": _parse_null, "boolean": _parse_boolean, "integer": int, "number": _parse_number}


def _alternatives(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The node itself and its oneOf/anyOf branches, resolved."""
    return [schema] + [_resolve(branch, root) for branch in schema.get("oneOf", []) + schema.get("anyOf", [])]


def _types(node: Mapping[str, Any]) -> list[str]:
    kind = node.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def coerce_strings(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, path: tuple = ()) -> Any:
    """``instance`` with every string that stands for a schema integer, number, boolean or null converted to it."""
    root = schema if root is None else root
    nodes = _alternatives(_resolve(schema, root), root)
    if isinstance(instance, dict):
        node = next((n for n in nodes if "properties" in n), {})
        return {key: coerce_strings(value, node["properties"][key], root, (*path, key)) if key in node.get("properties", {}) else value
                for key, value in instance.items()}
    if isinstance(instance, list):
        node = next((n for n in nodes if isinstance(n.get("items"), Mapping)), None)
        return instance if node is None else [coerce_strings(item, node["items"], root, (*path, k)) for k, item in enumerate(instance)]
    if not isinstance(instance, str):
        return instance
    wanted = [kind for node in nodes for kind in _types(node)]
    strings = [node for node in nodes if "string" in _types(node)]
    if any(instance in node.get("enum", [instance]) for node in strings):
        return instance  # a string the schema accepts as it is
    parsers = [kind for kind in _STRING_PARSERS if kind in wanted]
    for kind in parsers:
        try:
            return _STRING_PARSERS[kind](instance)
        except ValueError:
            continue
    if parsers and not strings:
        raise UserError(f"config key '{_key_path(path)}': {instance!r} is not of type {', '.join(map(repr, parsers))}")
    return instance


def _check_semantics(config: Mapping[str, Any], base_dir: Path) -> None:
    """Checks a JSON schema cannot express: ordered ranges, existing files, names PySCF knows."""
    for system in config["systems"]:
        block = config.get(system, {})
        t_range = block.get("temperature_range")
        if t_range and t_range[0] > t_range[1]:
            raise UserError(f"config key '{system}.temperature_range': lower bound {t_range[0]} exceeds upper bound {t_range[1]}")
    if len(set(config["systems"])) != len(config["systems"]):
        raise UserError(f"config key 'systems': a system is listed twice: {config['systems']}")
    for system, path in (config["reference"].get("extra_configurations") or {}).items():
        if not (base_dir / path).is_file():
            raise UserError(f"config key 'reference.extra_configurations.{system}': file '{path}' not found")
    lj = config["sampling"]["lj"]
    if "lj" in config["systems"] and lj["exchange_moves"] and lj["engine"] != "lammps":
        raise UserError(f"config key 'sampling.lj.exchange_moves': {lj['exchange_moves']} moves need sampling.lj.engine lammps (the torch engine has none)")
    if any(s in MOLECULAR_SYSTEMS for s in config["systems"]):
        from .reference.qm import check_method

        check_method(config["reference"]["method"])


def stage_settings(config: Mapping[str, Any], system: str, stage: str) -> dict[str, Any]:
    """What a stage job for ``system`` depends on: the stage section, the system block and the seed.

    Rules pass this to the CLI (``--settings``) and as ``params``, so changing a key reruns exactly
    the stages that read it; its hash is the config hash recorded in provenance.
    """
    return {
        "system": system,
        "seed": config["seed"],
        "system_settings": config.get(system, {}),
        stage: config.get(stage, {}),
    }


def schema_markdown() -> str:
    """One markdown table per top-level section of the schema: key, default, description (for config/README.md)."""
    import json

    schema = load_schema()
    blocks = []
    for section, node in schema["properties"].items():
        rows = [(section, node)] if _resolve(node, schema).get("type") != "object" else []
        rows += list(_properties(_resolve(node, schema), schema, section))
        lines = [f"### `{section}`", "", _resolve(node, schema).get("description", ""), ""]
        lines += ["| key | default | description |", "| --- | --- | --- |"]
        for key, sub in rows:
            default = json.dumps(sub["default"]) if "default" in sub else ""
            lines.append(f"| `{key}` | `{default}` | {' '.join(sub.get('description', '').split())} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _properties(node: Mapping[str, Any], root: Mapping[str, Any], prefix: str):
    """(dotted key, schema node) of every leaf; a parent's own default overrides a shared definition's."""
    parent_default = node.get("default") if isinstance(node.get("default"), dict) else {}
    for key, sub in node.get("properties", {}).items():
        sub = dict(_resolve(sub, root))
        if key in parent_default:
            sub["default"] = parent_default[key]
        if sub.get("type") == "object" and sub.get("properties"):
            yield from _properties(sub, root, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", sub


# Stages whose rules pass only the keys one action reads (so e.g. a new trust level reselects without
# retraining): stage -> "module:function(config, system, action)".
ACTION_SETTINGS = {
    "reference": "liquidscale.reference:action_settings",
    "mlip": "liquidscale.mlip.settings:rule_settings",
    "coexistence": "liquidscale.coexistence.run:coexistence_settings",
}


# Job resources: they set what SLURM grants or how often a job checkpoints, never a result, so they stay
# out of rule params (a longer runtime must not retrain a model, more threads must not resample). Rules
# pass them as command-line options (--threads, --checkpoint-minutes).
RESOURCE_KEYS = frozenset({"mem_mb", "runtime", "threads", "checkpoint_minutes"})


def _without_resources(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_resources(value) for key, value in node.items() if key not in RESOURCE_KEYS}
    return node


def rule_settings(config: Mapping[str, Any], system: str, stage: str, action: str | None = None) -> dict[str, Any]:
    """The settings one rule passes to the CLI and holds as params: per action where the stage defines it."""
    if action is None:
        settings = stage_settings(config, system, stage)
    else:
        import importlib

        module, function = ACTION_SETTINGS[stage].split(":")
        settings = getattr(importlib.import_module(module), function)(config, system, action)
    return _without_resources(settings)


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merged key by key, anything else replaced (Snakemake's rule for --configfile)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def effective_config(paths: list[str], base_dir: str | Path = ".") -> dict[str, Any]:
    """The config ``snakemake --configfile PATHS...`` runs with: the files merged in order over the schema defaults, validated.

    Nothing else is merged in: the demo's config/config.yaml is read only when no --configfile is given.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        data = load_yaml(path)
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise UserError(f"{path}: a config file must be a mapping of keys to values, not a {type(data).__name__}")
        merged = merge_configs(merged, data)
    return validate_config(merged, base_dir=base_dir)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config", help="print the effective config of config files (merged in order over the schema defaults, validated)"
    )
    parser.add_argument("configfiles", nargs="*", metavar="FILE", help="YAML configs, later ones over earlier (as --configfile)")
    parser.add_argument("--docs", action="store_true", help="print the markdown reference of every key instead")
    parser.set_defaults(func=_run_check)


def _run_check(args) -> None:
    import yaml

    if args.docs:
        print(schema_markdown(), end="")
        return
    if not args.configfiles:
        raise UserError("give one or more config files to check, or --docs")
    config = effective_config(args.configfiles)
    print(yaml.safe_dump(config, sort_keys=False), end="")
