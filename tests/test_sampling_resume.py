"""A sampling job killed mid-run continues from its checkpoint and writes the file an uninterrupted run writes.

The batch (lj, CPU) has a replica under an external potential, one without and one that blows up and is
dropped mid-run, so positions, velocities, every replica's random stream, the Verlet list, the failed
replicas and the profile accumulators all have to survive the restart. The job is really killed
(SIGKILL, as SLURM does at the time limit after its grace period) once a checkpoint exists. Budget: ~30 s.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from liquidscale.config import stage_settings, validate_config
from liquidscale.dataset import STATUS_FAILED, STATUS_OK
from liquidscale.sampling.batch import checkpoint_path, run_batch
from liquidscale.sampling.checkpoint import Checkpoint
from liquidscale.sampling.statepoints import statepoint_table, system_sampling

torch = pytest.importorskip("torch")

EQUILIBRATION, PRODUCTION = 40, 1500
RUNNER = """
import json, sys
import pandas as pd
from liquidscale.sampling.batch import run_batch
settings = json.loads(open(sys.argv[1]).read())
run_batch(settings, pd.read_csv(sys.argv[2]), 0, sys.argv[3], checkpoint_minutes=0)
"""


def _settings() -> dict:
    sampling = {"runs": 3, "replicas_per_job": 3, "minimisation_steps": 10, "equilibration_steps": EQUILIBRATION, "production_steps": PRODUCTION}
    sampling.update({"sample_every": 2, "check_every": 10, "device": "cpu", "lj": {"box": [5.2, 5.2, 10.0], "density_range": [0.3, 0.5]}})
    return stage_settings(validate_config({"systems": ["lj"], "seed": 11, "sampling": sampling}), "lj", "sampling")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The table (replica 2 too hot: it fails mid-run) and the batch file of one run without a checkpoint."""
    root = tmp_path_factory.mktemp("uninterrupted")
    table = statepoint_table(system_sampling(_settings()))
    table.loc[table["replica"] == 2, "T"] = 400.0
    out = root / "batch0000.nc"
    run_batch(_settings(), table, 0, out, checkpoint_minutes=1e9)
    assert not checkpoint_path(out).exists()
    with xr.open_dataset(out) as ds:
        assert ds["status"].values.tolist() == [STATUS_OK, STATUS_OK, STATUS_FAILED], "replica 2 should fail alone"
    return table, out.read_bytes()


def _resumed_step(caplog) -> int:
    found = [int(m.group(1)) for m in (re.search(r"resuming after MD step (\d+)", r.getMessage()) for r in caplog.records) if m]
    assert len(found) == 1, caplog.text
    return found[0]


def test_killed_job_resumes_bit_for_bit(uninterrupted, tmp_path, caplog):
    table, expected = uninterrupted
    settings_file, table_file, out = tmp_path / "settings.json", tmp_path / "table.csv", tmp_path / "batch0000.nc"
    settings_file.write_text(json.dumps(_settings()))
    table.to_csv(table_file, index=False)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    job = subprocess.Popen([sys.executable, "-c", RUNNER, str(settings_file), str(table_file), str(out)], env=env)
    deadline = time.monotonic() + 120
    while not checkpoint_path(out).exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # let it checkpoint a few more times, into production
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL, "the job finished before it could be killed: lengthen PRODUCTION"
    assert checkpoint_path(out).exists() and not out.exists()

    with caplog.at_level(logging.INFO, logger="liquidscale.sampling"):
        run_batch(_settings(), table, 0, out, checkpoint_minutes=0)
    step = _resumed_step(caplog)
    assert EQUILIBRATION < step < EQUILIBRATION + PRODUCTION, f"killed at step {step}: not inside production"
    assert out.read_bytes() == expected, "the resumed batch file differs from the uninterrupted one"
    assert not checkpoint_path(out).exists(), "the checkpoint must be removed once the batch file is complete"


def test_checkpoint_of_other_settings_is_not_used(uninterrupted, tmp_path, caplog):
    table, expected = uninterrupted
    out = tmp_path / "batch0000.nc"
    Checkpoint(checkpoint_path(out), "fingerprint of another config", 0).save({"done": 100})
    with caplog.at_level(logging.INFO, logger="liquidscale.sampling"):
        run_batch(_settings(), table, 0, out, checkpoint_minutes=1e9)
    assert "fingerprint mismatch" in caplog.text and "starting the job over" in caplog.text and str(checkpoint_path(out)) in caplog.text
    assert "resuming" not in caplog.text
    assert out.read_bytes() == expected


def test_damaged_checkpoint_is_named_and_the_job_starts_over(uninterrupted, tmp_path, caplog):
    table, expected = uninterrupted
    out = tmp_path / "batch0000.nc"
    saved = Path(checkpoint_path(out))
    Checkpoint(saved, "x", 0).save({"done": 100, "payload": torch.zeros(10000)})
    with saved.open("r+b") as handle:
        handle.truncate(saved.stat().st_size // 2)
    with caplog.at_level(logging.INFO, logger="liquidscale.sampling"):
        run_batch(_settings(), table, 0, out, checkpoint_minutes=1e9)
    lines = [r.getMessage() for r in caplog.records if "damaged checkpoint" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(str(saved)) and "\n" not in lines[0], caplog.text
    assert out.read_bytes() == expected
