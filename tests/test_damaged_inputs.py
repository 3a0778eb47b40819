"""A damaged intermediate file stops the stage that reads it with one line: which file, and which rule remakes it.

Each test truncates a real file of the kind the upstream rule writes and runs the reading stage's CLI
as a subprocess (as the rules do): exit status 2, one error line naming the file and the rule, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liquidscale.cli import main
from liquidscale.config import rule_settings, validate_config
from builders import write_water_frames
from liquidscale.sampling.statepoints import batch_settings

torch = pytest.importorskip("torch")

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def liquidscale(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liquidscale", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, path: Path, rule: str, output: Path | None = None) -> None:
    """Exit 2, no traceback, one error line naming the damaged ``path``, what to delete (the rule's ``output``
    holding it, or the file itself) and the rule that remakes it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(error) == 1, result.stderr
    assert f"{path}: damaged " in error[0] and f"rule '{rule}'" in error[0], error[0]
    assert f"delete {'it' if output is None else output} and rerun snakemake" in error[0], error[0]


def truncate(source: Path, target: Path, fraction: float) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="module")
def lj_batch(tmp_path_factory):
    """One real sampling batch file of the LJ fluid and the profile settings that aggregate it."""
    root = tmp_path_factory.mktemp("batch")
    sampling = {"runs": 2, "replicas_per_job": 2, "minimisation_steps": 10, "equilibration_steps": 20, "production_steps": 40, "sample_every": 5, "check_every": 20, "threads": 1, "device": "cpu",
                "lj": {"box": [5.2, 5.2, 10.0], "density_range": [0.3, 0.5]}}
    config = validate_config({"systems": ["lj"], "sampling": sampling})
    settings = json.dumps(batch_settings(rule_settings(config, "lj", "sampling"), 0))
    assert main(["sampling", "batch", "--settings", settings, "--out", str(root / "batch0000.nc")]) == 0
    return root / "batch0000.nc", json.dumps(rule_settings(config, "lj", "profiles"))


@pytest.mark.parametrize("fraction", [0.005, 0.5, 0.98])
def test_truncated_batch_file_stops_aggregation(lj_batch, tmp_path, fraction):
    batch, settings = lj_batch
    damaged = truncate(batch, tmp_path / "batch0001.nc", fraction)
    for order in ([batch, damaged], [damaged, batch]):
        result = liquidscale("sampling", "aggregate", "--settings", settings, "--out", tmp_path / "profiles.nc", *order)
        assert_one_line_error(result, damaged, "sampling_batch")
        assert not (tmp_path / "profiles.nc").exists()


@pytest.fixture(scope="module")
def torchscript_archive(tmp_path_factory):
    """A TorchScript archive as ``dp --pt freeze`` writes (zip container), from a traced module."""
    path = tmp_path_factory.mktemp("jit") / "module.pth"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(3, 1).double(), torch.zeros(1, 3, dtype=torch.float64)), str(path))
    return path


def test_truncated_frozen_model_stops_the_sampling_batch(torchscript_archive, tmp_path):
    config = validate_config({"systems": ["water"], "sampling": {"runs": 1, "replicas_per_job": 1, "device": "cpu", "water": {"density_range": [0.005, 0.005]}}})
    settings = json.dumps(batch_settings(rule_settings(config, "water", "sampling"), 0))
    model = truncate(torchscript_archive, tmp_path / "results/water/mlip/final/model0.pth", 0.6)
    result = liquidscale("sampling", "batch", "--settings", settings, "--model", model, "--out", tmp_path / "batch0000.nc")
    assert_one_line_error(result, model, "mlip_final")
    assert not (tmp_path / "batch0000.nc").exists()


def test_a_foreign_or_truncated_member_model_names_mlip_train(torchscript_archive, tmp_path):
    """Exploration and the ensemble load members from mlip/iter{i}/model{m}/model.pth, which mlip_train writes."""
    from liquidscale.errors import UserError
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    foreign = tmp_path / "iter000/model0/model.pth"
    foreign.parent.mkdir(parents=True)
    shutil.copy(torchscript_archive, foreign)  # readable TorchScript, but not a DeePMD model
    truncated = truncate(torchscript_archive, tmp_path / "iter000/model1/model.pth", 0.3)
    for path in (foreign, truncated):
        with pytest.raises(UserError) as info:
            DeepMDPotential(path, ["O", "H", "H"])
        assert str(info.value).startswith(f"{path}: damaged frozen DeePMD model") and "rule 'mlip_train'" in str(info.value)
        assert f"delete {path.parent} and rerun" in str(info.value)  # the rule's output is the member folder
        assert "\n" not in str(info.value)


MLIP_CONFIG = {"systems": ["water"], "mlip": {"descriptor": {"rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2}, "fitting_neuron": [8], "training": {"steps": 10, "decay_steps": 5}}}


@pytest.mark.parametrize("damage", ["truncate set.000/coord.npy", "truncate set.000/energy.npy", "remove set.000/force.npy"])
def test_damaged_reference_data_stops_mlip_data(tmp_path, damage):
    folder = tmp_path / "reference/iter000/data/O1H2"
    write_water_frames(folder)
    action, name = damage.split()
    if action == "truncate":
        truncate(folder / name, folder / name, 0.5)
    else:
        (folder / name).unlink()
    settings = json.dumps(rule_settings(validate_config(MLIP_CONFIG), "water", "mlip", "data"))
    result = liquidscale("mlip", "data", "--settings", settings, "--reference", tmp_path / "reference/iter000/data", "--out", tmp_path / "mlip/iter000/data")
    assert_one_line_error(result, folder, "reference_collect", tmp_path / "reference/iter000/data")


def test_damaged_training_data_stops_mlip_train_before_deepmd(tmp_path):
    write_water_frames(tmp_path / "reference/iter000/data/O1H2", frames=12)
    config = validate_config(MLIP_CONFIG)
    data = tmp_path / "mlip/iter000/data"
    assert main(["mlip", "data", "--settings", json.dumps(rule_settings(config, "water", "mlip", "data")), "--reference", str(tmp_path / "reference/iter000/data"), "--out", str(data)]) == 0
    (train,) = [p.parent for p in (data / "train").rglob("type.raw")]
    truncate(train / "set.000/coord.npy", train / "set.000/coord.npy", 0.5)
    result = liquidscale("mlip", "train", "--settings", json.dumps(rule_settings(config, "water", "mlip", "train")), "--member", 0, "--data", data, "--out", tmp_path / "mlip/iter000/model0")
    assert_one_line_error(result, train, "mlip_data", data)
    assert "$ dp --pt" not in result.stderr  # stopped before DeePMD started


@pytest.fixture(scope="module")
def saved_functional(tmp_path_factory):
    """A saved neural c1 functional (untrained weights: loading is what is tested)."""
    from liquidscale.cdft.model import NeuralC1, save_model

    folder = tmp_path_factory.mktemp("cdft")
    save_model(NeuralC1(0.1, 1.0, [4, 4], 0.5, [1.0, 1.0]), {"system": "hard_rods"}, folder)
    return folder


@pytest.mark.parametrize("name,what,fraction", [("model.json", "model metadata", 0.6), ("model.safetensors", "model weights", 0.02), ("model.safetensors", "model weights", 0.6)])
def test_truncated_functional_stops_the_analysis(saved_functional, tmp_path, name, what, fraction):
    model = tmp_path / "cdft"
    shutil.copytree(saved_functional, model)
    truncate(model / name, model / name, fraction)
    settings = json.dumps(rule_settings(validate_config({"systems": ["hard_rods"]}), "hard_rods", "analysis"))
    result = liquidscale("analysis", "run", "--settings", settings, "--model", model, "--out", tmp_path / "analysis")
    assert_one_line_error(result, model / name, "cdft_train")
    assert f"damaged {what}" in result.stderr


def test_truncated_learning_curve_names_the_member_folder(tmp_path):
    """``lcurve.out`` as DeePMD writes it; cut inside its header or inside a data row."""
    from liquidscale.errors import UserError
    from liquidscale.mlip.training import read_lcurve

    rows = "".join(f"{step:7d}      3.29e+01      2.91e-01      1.04e+00    1.0e-03\n" for step in range(1, 11))
    text = "# step       rmse_trn    rmse_e_trn    rmse_f_trn   lr      \n# If there is no available reference data, rmse_*_{val,trn} will print nan\n" + rows
    member = tmp_path / "iter000/model0"
    member.mkdir(parents=True)
    (member / "lcurve.out").write_text(text)
    assert list(read_lcurve(member / "lcurve.out")["step"]) == list(range(1, 11))
    for cut, reason in ((20, "no data rows"), (text.index("2.91e-01", 200), "number of columns changed")):
        (member / "lcurve.out").write_text(text[:cut])
        with pytest.raises(UserError) as info:
            read_lcurve(member / "lcurve.out")
        message = str(info.value)
        assert message.startswith(f"{member / 'lcurve.out'}: damaged DeePMD learning curve (") and reason in message and f"delete {member} and rerun" in message


@pytest.mark.parametrize("name,fraction,damaged", [("trajectory.extxyz", 0.6, "trajectory.extxyz"), ("model_devi.csv", 0.6, "model_devi.csv"), ("trajectory.extxyz", 0.5, ".")],
                         ids=["trajectory-mid-frame", "table-mid-row", "trajectory-whole-frames"])
def test_truncated_exploration_stops_the_selection(tmp_path, name, fraction, damaged):
    """A cut inside a record names the file; a cut between frames leaves a readable file that disagrees with the table: the folder is named."""
    from liquidscale.mlip.exploration import Replica, Trajectory, read_exploration, write_exploration
    from liquidscale.molecules import WATER

    explore = tmp_path / "iter000/explore"
    explore.mkdir(parents=True)
    rng = np.random.default_rng(1)
    molecules = WATER.geometry()[None] + np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])[:, None]
    frames = [molecules.reshape(-1, 3) + 0.05 * rng.normal(size=(6, 3)) for _ in range(4)]
    trajectory = Trajectory(frames, [np.full(3, 9.0)] * 4, [0, 0, 1, 1], [10, 20, 10, 20])
    replicas = [Replica("bulk", 300.0, 0.01, (9.0, 9.0, 9.0), 1.0, None, 1), Replica("bulk", 350.0, 0.01, (9.0, 9.0, 9.0), 1.0, None, 2)]
    write_exploration(explore, list(WATER.symbols) * 2, trajectory, replicas, rng.uniform(0, 1, 4), np.zeros(4, dtype=int))
    (explore / "explore.json").write_text(json.dumps({"missing_frames": 0}))
    symbols, positions, cells, deviation, _ = read_exploration(explore)  # intact, it reads back
    assert symbols == list(WATER.symbols) * 2 and np.allclose(positions, frames) and np.allclose(cells, 9.0) and len(deviation) == 4
    truncate(explore / name, explore / name, fraction)
    settings = json.dumps(rule_settings(validate_config({"systems": ["water"]}), "water", "mlip", "select"))
    metrics = tmp_path / "iter000/metrics.json"
    metrics.write_text(json.dumps({"bulk_mean": {"force_rmse": 0.1}}))
    result = liquidscale("mlip", "select", "--settings", settings, "--explore", explore, "--metrics", metrics, "--out", tmp_path / "selected.extxyz", "--report", tmp_path / "selection.json")
    assert_one_line_error(result, (explore / damaged) if damaged != "." else explore, "mlip_explore", explore)
