"""Long jobs write progress lines to their log while they run (item: logs you can follow).

Each test runs a stage command as the rules do (``liquidscale ... > {log} 2>&1``): a subprocess whose
stdout and stderr go to one file, read while and after it runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liquidscale.config import rule_settings, validate_config
from liquidscale.sampling.statepoints import batch_settings, batch_table
from builders import write_water_frames

pytest.importorskip("torch")

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def start(log: Path, *args: str) -> subprocess.Popen:
    """``liquidscale ARGS > log 2>&1`` in the background."""
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, "-m", "liquidscale", *args], stdout=handle, stderr=subprocess.STDOUT, env=ENV)


def run(log: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    process = start(log, *args)
    return process.wait(timeout), log.read_text()


def lj_sampling_settings(**sampling) -> str:
    base = {"runs": 3, "replicas_per_job": 3, "minimisation_steps": 20, "equilibration_steps": 100, "production_steps": 200, "sample_every": 5, "check_every": 20, "slab_fraction": 0.0, "threads": 1, "device": "cpu"}
    base.update(sampling, lj={"box": [5.2, 5.2, 10.0], "density_range": [0.3, 0.6]})
    return json.dumps(rule_settings(validate_config({"systems": ["lj"], "sampling": base}), "lj", "sampling"))


MD_LINE = re.compile(
    r"(?P<phase>\w+) step (?P<step>\d+)/(?P<total>\d+): mean kinetic T (?P<T>[\d.]+) \S+, (?P<alive>\d+)/(?P<replicas>\d+) replicas alive, "
    r"(?P<rate>[\d.e+]+) atom-steps/s, ETA (?P<eta>\S+)"
)


def test_sampling_batch_streams_md_progress_with_failures(tmp_path):
    settings = batch_settings(json.loads(lj_sampling_settings(production_steps=3000)), 0)
    table = tmp_path / "rows.csv"
    runs = batch_table(settings)
    runs.loc[runs["run"] == 1, "T"] = 400.0  # far beyond what the timestep integrates: run 1 blows up
    runs.to_csv(table, index=False)
    log = tmp_path / "batch0.log"
    # the batch job with one planted row (the CLI derives its rows from the settings), logging as the CLI sets it up
    job = (
        "import json, sys; import pandas as pd; from liquidscale.logs import setup_logging; from liquidscale.sampling.batch import run_batch; "
        "setup_logging(); run_batch(json.loads(sys.argv[1]), pd.read_csv(sys.argv[2]), 0, sys.argv[3])"
    )
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-c", job, json.dumps(settings), str(table), str(tmp_path / "batch0.nc")], stdout=handle, stderr=subprocess.STDOUT, env=ENV)
    # the first progress line is in the file while the job is still running: lines are flushed as written
    deadline = time.monotonic() + 120
    while "production: 3000 steps" not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    seen_while_running = log.read_text()
    assert process.poll() is None and "thermalisation step" in seen_while_running
    assert process.wait(300) == 0, log.read_text()
    text = log.read_text()
    lines = {(m["phase"], int(m["step"])): m for m in MD_LINE.finditer(text)}
    assert {phase for phase, _ in lines} == {"thermalisation", "equilibration", "production"}
    final = lines[("production", 3000)]
    assert int(final["total"]) == 3000 and final["alive"] == "2" and final["replicas"] == "3" and final["eta"] == "0s"
    assert 0.3 < float(final["T"]) < 3.0 and float(final["rate"]) > 0
    assert re.search(r"thermalisation: replica 1 failed: ", text)
    assert "lj batch 0: 2 runs ok, 1 failed" in text


@pytest.mark.slow
def test_cdft_training_logs_every_epoch(tmp_path):
    config = validate_config({"systems": ["hard_rods"], "hard_rods": {"runs": 24}, "cdft": {"max_epochs": 3, "channels": [4, 4], "warmup_passes": 2}})
    profiles = tmp_path / "profiles.nc"
    code, text = run(tmp_path / "data.log", "cdft", "fluid-data", "--settings", json.dumps(rule_settings(config, "hard_rods", "profiles")), "--out", str(profiles))
    assert code == 0, text
    code, text = run(tmp_path / "train.log", "cdft", "train", "--settings", json.dumps(rule_settings(config, "hard_rods", "cdft")), "--profiles", str(profiles), "--out", str(tmp_path / "cdft"))
    assert code == 0, text
    epochs = re.findall(r"epoch (\d+)/3: train loss ([\d.e+-]+), val loss ([\d.e+-]+) \(best ([\d.e+-]+)", text)
    assert [int(e[0]) for e in epochs] == [1, 2, 3]
    curve = pd.read_csv(tmp_path / "cdft" / "training.csv")
    np.testing.assert_allclose([float(e[2]) for e in epochs], curve["val_mse_c1"], rtol=1e-3)  # the logged numbers are the curve's
    assert "held-out metrics" in text


def _water_reference(tmp_path: Path, **method) -> tuple[dict, Path]:
    config = validate_config(
        {"systems": ["water"], "reference": {"method": {"xc": "HF", "basis": "sto-3g", "density_fit": False, **method}, "initial": {"cluster_sizes": [1], "frames_per_size": 2}, "shards": 1}}
    )
    configurations = tmp_path / "configurations.extxyz"
    code, text = run(tmp_path / "conf.log", "reference", "configurations", "--settings", json.dumps(rule_settings(config, "water", "reference", "configurations")), "--out", str(configurations))
    assert code == 0, text
    return config, configurations


def _label(tmp_path: Path, config: dict, configurations: Path) -> str:
    settings = json.dumps(rule_settings(config, "water", "reference", "label"))
    code, text = run(tmp_path / "label.log", "reference", "label", "--settings", settings, "--configurations", str(configurations), "--shard", "0", "--out", str(tmp_path / "shard00"))
    assert code == 0, text
    return text


def test_pyscf_labelling_logs_frame_i_of_n_with_scf_cycles(tmp_path):
    text = _label(tmp_path, *_water_reference(tmp_path))
    cycles = re.findall(r"frame (\d) of 2 \(id \d+, O1H2\): E = -[\d.]+ eV, converged with diis in (\d+) SCF cycles", text)
    assert [c[0] for c in cycles] == ["1", "2"] and all(int(c[1]) > 1 for c in cycles)


def test_pyscf_labelling_logs_each_retry(tmp_path):
    text = _label(tmp_path, *_water_reference(tmp_path, max_cycle=1))
    for attempt, following in [("diis", "damping"), ("damping", "level_shift"), ("level_shift", "newton")]:
        assert re.search(rf"SCF \({attempt}\) not converged after 1 cycles \(E = .*\); retrying with {following}", text), text
    assert re.search(r"frame 2 of 2 \(id \d+, O1H2\): FAILED, SCF not converged after attempts", text)


@pytest.mark.slow
def test_deepmd_output_reaches_the_job_log_and_survives_a_failed_training(tmp_path):
    """dp's own output goes to the job's log as it comes; a failing dp leaves it there (the member's
    temporary folder, where dp.log lived, is deleted) and the job ends with one line."""
    write_water_frames(tmp_path / "reference/data/O1H2")
    config = validate_config({"systems": ["water"], "mlip": {"descriptor": {"rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2}, "fitting_neuron": [8], "training": {"steps": 10, "decay_steps": 5}}})
    data = tmp_path / "mlip/data"
    code, text = run(tmp_path / "data.log", "mlip", "data", "--settings", json.dumps(rule_settings(config, "water", "mlip", "data")), "--reference", str(tmp_path / "reference/data"), "--out", str(data))
    assert code == 0, text
    settings = rule_settings(config, "water", "mlip", "train")
    settings["mlip"]["training"]["start_lr"] = "fast"  # DeePMD's input check rejects it: dp train exits 1
    code, text = run(tmp_path / "train.log", "mlip", "train", "--settings", json.dumps(settings), "--member", "0", "--data", str(data), "--out", str(tmp_path / "mlip/model0"))
    assert code == 2
    assert "$ dp --pt train" in text
    assert "key `start_lr` gets wrong value type" in text  # DeePMD's own message, from its own output
    last = text.strip().splitlines()[-1]
    assert last.startswith("liquidscale mlip: error: dp --pt train failed with status 1") and "job's log" in last
    assert not (tmp_path / "mlip/model0").exists() and not list((tmp_path / "mlip").glob(".model0*"))
