"""The MD engine and a sampling batch with a real (tiny) DeePMD model of water.

The model is trained in a fixture on PySCF HF/sto-3g labels of water monomers and dimers through
the mlip stage's own commands; it is crude, but it is a genuine frozen DeePMD model, which is all
these tests need: forces must equal those of DeePMD's ASE calculator on the same frame, and the
molecular sampling path (placement, O-site profiles, dissociation checks) must run end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("deepmd")
torch = pytest.importorskip("torch")

from liquidscale.cli import main  # noqa: E402
from liquidscale.config import stage_settings, validate_config  # noqa: E402
from liquidscale.molecules import WATER  # noqa: E402
from liquidscale.sampling.statepoints import batch_settings  # noqa: E402

pytestmark = pytest.mark.slow  # the fixture labels and trains a model (~1 min)

METHOD = {"xc": "HF", "basis": "sto-3g", "density_fit": False, "conv_tol": 1e-8}


@pytest.fixture(scope="module")
def water_model(tmp_path_factory):
    from liquidscale.mlip.settings import rule_settings
    from liquidscale.reference.configurations import initial_clusters
    from liquidscale.reference.output import to_multisystems
    from liquidscale.reference.qm import label_shard
    from liquidscale.reference.configurations import number_frames

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dp")
    config = validate_config(
        {
            "systems": ["water"],
            "seed": 5,
            "reference": {"method": METHOD, "initial": {"cluster_sizes": [1, 2], "frames_per_size": 6}, "shards": 1},
            "mlip": {
                "ensemble_size": 2,
                "descriptor": {"rcut": 4.0, "rcut_smth": 0.5, "neuron": [8, 16], "axis_neuron": 4},
                "fitting_neuron": [16, 16],
                "training": {"steps": 200, "decay_steps": 20, "start_lr": 0.01, "stop_lr": 1e-3, "test_fraction": 0.2},
            },
        }
    )
    atoms, failures = label_shard(number_frames(initial_clusters(WATER, config["reference"]["initial"], config["seed"])), config["reference"]["method"], WATER.type_map, 0, log=lambda *_: None)
    assert not failures
    to_multisystems(atoms, WATER.type_map, config["reference"]["environment"]["shell_force_weight"]).to_deepmd_npy(str(root / "labels"))

    def mlip(action, *args):
        settings = json.dumps(rule_settings(config, "water", action))
        assert main(["mlip", action, "--settings", settings, "--iteration", "0", *args]) == 0

    mlip("data", "--reference", str(root / "labels"), "--out", str(root / "data"))
    mlip("train", "--member", "0", "--data", str(root / "data"), "--out", str(root / "model0"))
    return root / "model0" / "model.pth"


def _water_box(n_molecules: int, box: float, seed: int) -> tuple[list[str], np.ndarray]:
    from liquidscale.sampling.initial import place_molecules

    positions = place_molecules(WATER.geometry(), n_molecules, np.full(3, box), np.random.default_rng(seed), 2.8)
    return list(WATER.symbols) * n_molecules, positions


def test_engine_forces_equal_ase_deepmd_calculator(water_model):
    from ase import Atoms
    from deepmd.calculator import DP

    from liquidscale.md.engine import LangevinEngine
    from liquidscale.md.potential import METAL
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    box = 9.0
    symbols, positions = _water_box(8, box, 1)
    engine = LangevinEngine(
        DeepMDPotential(water_model, symbols),
        symbols,
        np.tile(WATER.masses, 8),
        [s == "O" for s in symbols],
        positions[None],
        np.full((1, 3), box),
        [300.0],
        [1],
        METAL,
        0.0005,
        5.0,
    )
    atoms = Atoms(symbols, positions=positions, cell=np.eye(3) * box, pbc=True)
    atoms.calc = DP(model=str(water_model))
    np.testing.assert_allclose(engine.forces[0].numpy(), atoms.get_forces(), atol=1e-8)
    assert engine.energy[0].item() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)


def test_float32_networks_stay_close_to_float64(water_model):
    """The precision option rebuilds the frozen model's networks in float32; forces move by far less
    than a model's error (measured: 1e-6 of rms |F| for this model, bench_precision.py for the demo's)."""
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    symbols, positions = _water_box(8, 9.0, 1)
    x, cell = torch.tensor(positions[None]), torch.full((1, 3), 9.0, dtype=torch.float64)
    single = DeepMDPotential(water_model, symbols, precision="float32")
    assert {p.dtype for p in single.model.parameters()} == {torch.float32}
    energy32, forces32 = single(x.float(), cell.float())
    energy64, forces64 = DeepMDPotential(water_model, symbols)(x, cell)
    assert forces32.dtype == torch.float32
    rms = forces64.pow(2).sum(-1).mean().sqrt()
    assert 0 < (forces32.double() - forces64).norm(dim=-1).max() / rms < 1e-4
    assert abs(energy32.item() - energy64.item()) / len(symbols) < 1e-6


def test_water_batch_samples_oxygen_profiles(water_model, tmp_path):
    import pandas as pd

    from liquidscale.dataset import STATUS_OK

    config = validate_config(
        {
            "systems": ["water"],
            "water": {"temperature_range": [280.0, 320.0]},
            "mlip": {"descriptor": {"rcut": 4.0, "rcut_smth": 0.5}},  # the cutoff water_model was trained with
            "sampling": {
                "runs": 2,
                "replicas_per_job": 2,
                "minimisation_steps": 0,
                "equilibration_steps": 20,
                "production_steps": 40,
                "sample_every": 2,
                "check_every": 10,
                "slab_fraction": 0.0,
                "device": "cpu",
                "water": {"box": [8.5, 8.5, 12.0], "density_range": [0.008, 0.01], "slab_density": 0.033, "timestep": 0.00025, "friction": 5.0, "bin_width": 0.05, "min_separation": 2.8, "min_distance": 0.7, "max_displacement": 0.05, "md_wall_softness": 0.1, "potential_lengths": {"wall_softness": 0.3, "min_wall_thickness": 2.0}},
            },
        }
    )
    settings = json.dumps(stage_settings(config, "water", "sampling"))
    table = tmp_path / "statepoints.csv"
    assert main(["sampling", "statepoints", "--settings", settings, "--out", str(table)]) == 0
    out = tmp_path / "batch0000.nc"
    job = json.dumps(batch_settings(stage_settings(config, "water", "sampling"), 0))
    assert main(["sampling", "batch", "--settings", job, "--model", str(water_model), "--out", str(out)]) == 0
    import xarray as xr

    ds = xr.load_dataset(out)
    n = pd.read_csv(table)["n_molecules"].iloc[0]
    assert ds.attrs["site"] == "O" and ds.attrs["energy_unit"] == "eV" and ds["rho"].attrs["units"] == "angstrom^-3"
    assert float(ds["z"][1] - ds["z"][0]) <= 0.05 + 1e-12
    ok = ds["status"].values == STATUS_OK
    dz = float(ds["z"][1] - ds["z"][0])
    np.testing.assert_allclose((ds["rho"] * ds["area"]).sum("z").values[ok] * dz, n, rtol=1e-10)
    assert ok.any(), ds["failure_reason"].values
    assert json.loads(ds.attrs["provenance"])["upstream_hashes"]["model"] == ds.attrs["model_hash"]
