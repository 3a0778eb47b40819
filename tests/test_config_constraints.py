"""Settings that pass the schema but cannot work together fail at config validation (snakemake's DAG
build), with one line naming the key, instead of inside a job hours later."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liquidscale.config import load_yaml, validate_config
from liquidscale.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DEMO = load_yaml(ROOT / "config" / "config.yaml")


def _with(config: dict, **dotted) -> dict:
    config = copy.deepcopy(config)
    for key, value in dotted.items():
        *parents, leaf = key.split("__")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


LJ = {"systems": ["lj"], "sampling": {"lj": {"box": [6.0, 6.0, 20.0]}}}

IMPOSSIBLE = [
    # (config, key named, fragment of the reason)
    (_with(LJ, sampling__lj__cutoff=10.0), "sampling.lj.box", "twice sampling.lj.cutoff (10.0)"),
    (_with(DEMO, mlip__descriptor={**DEMO["mlip"]["descriptor"], "rcut": 6.0}), "sampling.water.box", "twice the DeePMD cutoff mlip.descriptor.rcut (6.0"),
    (_with(DEMO, sampling__co2={**DEMO["sampling"]["co2"], "box": [7.5, 10.2, 16.0]}), "sampling.co2.box", "shortest edge 7.5"),
    (_with(DEMO, mlip__descriptor={**DEMO["mlip"]["descriptor"], "rcut_smth": 4.0}), "mlip.descriptor.rcut_smth", "must be below"),
    (_with(DEMO, mlip__descriptor={**DEMO["mlip"]["descriptor"], "sel": [40]}), "mlip.descriptor.sel", "one count per element"),
    (_with(DEMO, mlip__training={**DEMO["mlip"]["training"], "decay_steps": 5000}), "mlip.training.decay_steps", "exceeds mlip.training.steps (1500)"),
    (_with(DEMO, mlip__explore={**DEMO["mlip"]["explore"], "molecules": 8}), "mlip.explore.molecules", "shorter than twice mlip.descriptor.rcut"),
    (_with(DEMO, sampling__water={**DEMO["sampling"]["water"], "density_range": [0.033, 0.003]}), "sampling.water.density_range", "exceeds upper bound"),
    (_with(DEMO, sampling__production_steps=10, sampling__sample_every=10), "sampling.production_steps", "at least 2"),
    (_with(LJ, sampling__lj__bin_width=15.0), "sampling.lj.bin_width", "fewer than two bins"),
    (_with(LJ, cdft__window={"lj": 25.0}), "cdft.window.lj", "exceeds the periodic box length 20.0"),
    (_with({"systems": ["hard_rods"]}, hard_rods__box_length=10.05), "hard_rods.box_length", "not a multiple of the grid spacing"),
    (_with({"systems": ["pets"]}, pets__padding=4.05), "pets.padding", "not a multiple of the grid spacing"),
]


@pytest.mark.parametrize("config,key,fragment", IMPOSSIBLE, ids=[case[1] for case in IMPOSSIBLE])
def test_impossible_settings_fail_validation_naming_the_key(config, key, fragment):
    with pytest.raises(UserError) as info:
        validate_config(config, base_dir=ROOT)
    message = str(info.value)
    assert message.startswith(f"config key '{key}': "), message
    assert fragment in message, message
    assert "\n" not in message


def test_the_boundary_is_the_engines():
    """Validation accepts exactly the boxes the MD engine accepts: edge == 2 cutoff passes both, just below fails both."""
    torch = pytest.importorskip("torch")
    from liquidscale.md.potential import check_box

    for edge, ok in ((5.0, True), (4.99, False)):
        config = _with(LJ, sampling__lj={"box": [edge, 6.0, 20.0], "cutoff": 2.5})
        engine_ok = validation_ok = True
        try:
            check_box(torch.tensor([[edge, 6.0, 20.0]]), 2.5)
        except UserError:
            engine_ok = False
        try:
            validate_config(config)
        except UserError:
            validation_ok = False
        assert engine_ok == validation_ok == ok


@pytest.mark.parametrize("key", ["sampling.lj.box", "sampling.water.box"])
def test_snakemake_dry_run_stops_with_one_line(tmp_path, key):
    (config,) = [case[0] for case in IMPOSSIBLE if case[1] == key]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory", str(ROOT)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if f"config key '{key}'" in line]
    assert line.startswith("liquidscale: config key")
