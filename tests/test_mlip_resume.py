"""A DeePMD training job killed mid-run is continued by its retry (``dp --pt train --restart``), not redone.

The member trains in ``<output>.training`` beside its output, which outlives the killed job; the retry
restarts from DeePMD's latest checkpoint there, the learning curve continues from that step, and the
folder is removed once the member is complete. The job is killed with SIGKILL (its whole process
group, dp included, as SLURM kills a job at its time limit). Budget: ~1.5 min on one core.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_mlip_training import label_into, make_config

from liquidscale.cli import main
from liquidscale.mlip.settings import rule_settings
from liquidscale.mlip.training import CHECKPOINTS_PER_TRAINING, read_lcurve, training_folder
from liquidscale.molecules import WATER

pytestmark = pytest.mark.slow

STEPS = 400
CLI = "import sys; from liquidscale.cli import main; sys.exit(main(sys.argv[1:]))"


def _train_args(config, data_dir, out) -> list[str]:
    settings = json.dumps(rule_settings(config, "water", "train"))
    return ["mlip", "train", "--settings", settings, "--member", "0", "--data", str(data_dir), "--out", str(out)]


def test_killed_training_restarts_from_its_checkpoint(tmp_path, caplog):
    from liquidscale.reference.configurations import initial_clusters

    config = make_config(STEPS)
    config["reference"]["initial"]["frames_per_size"] = 6
    label_into(initial_clusters(WATER, config["reference"]["initial"], config["seed"]), tmp_path / "reference")
    data_dir, out = tmp_path / "data", tmp_path / "model0"
    assert main(["mlip", "data", "--settings", json.dumps(rule_settings(config, "water", "data")), "--reference", str(tmp_path / "reference"), "--out", str(data_dir)]) == 0

    folder = training_folder(out)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    job = subprocess.Popen([sys.executable, "-c", CLI, *_train_args(config, data_dir, out)], env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (folder / "checkpoint").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL, "the training finished before it could be killed: raise STEPS"
    assert folder.is_dir() and not out.exists()

    with caplog.at_level(logging.INFO, logger="liquidscale.mlip"):
        assert main(_train_args(config, data_dir, out)) == 0
    restarts = [re.search(r"from model\.ckpt-(\d+)\.pt", r.getMessage()) for r in caplog.records]
    steps = [int(m.group(1)) for m in restarts if m]
    assert len(steps) == 1, caplog.text
    restarted_at = steps[0]
    assert 0 < restarted_at < STEPS and restarted_at % (STEPS // CHECKPOINTS_PER_TRAINING) == 0

    lcurve = (out / "lcurve.out").read_text()
    assert lcurve.count("# step") == 2, "one header per attempt: the second attempt appended to the first's curve"
    recorded = read_lcurve(out / "lcurve.out")["step"]
    assert np.all(np.diff(recorded) > 0), "the learning curve continues from the checkpoint without repeating steps"
    second_attempt = [line for line in lcurve.split("# step")[2].splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert int(second_attempt[0].split()[0]) > restarted_at, "the retry did not start over from step 0"
    assert recorded[-1] == STEPS
    assert (out / "model.pth").is_file() and not folder.exists()
