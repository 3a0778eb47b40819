"""The same sampling batch gives bit-identical arrays: run twice in one process and with another torch thread count.

The batch mixes a replica under an external potential (BatchedExternal), one without, and one that blows
up mid-run (dropped from the batch), so the per-replica RNG streams, the Verlet list rebuilt after the drop
and the profile accumulation all have to be order- and thread-independent. Budget: ~5 s.
"""

import numpy as np
import pytest
import xarray as xr

from liquidscale.config import stage_settings, validate_config
from liquidscale.dataset import STATUS_FAILED, STATUS_OK
from liquidscale.sampling.batch import run_batch
from liquidscale.sampling.statepoints import statepoint_table, system_sampling

torch = pytest.importorskip("torch")


def _settings() -> dict:
    sampling = {"runs": 3, "replicas_per_job": 3, "minimisation_steps": 10, "equilibration_steps": 40, "production_steps": 60, "sample_every": 2, "check_every": 10, "device": "cpu"}
    sampling["lj"] = {"box": [5.2, 5.2, 10.0], "density_range": [0.3, 0.5], "engine": "torch"}
    config = validate_config({"systems": ["lj"], "seed": 11, "sampling": sampling})
    return stage_settings(config, "lj", "sampling")


def _arrays(path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {str(name): ds[name].values for name in ds.variables}


def test_same_batch_is_bit_identical_across_runs_and_thread_counts(tmp_path):
    threads_before = torch.get_num_threads()
    sampling = system_sampling(_settings())
    table = statepoint_table(sampling)
    has_potential = [bool(sampling.potential(int(seed)).terms) for seed in table["potential_seed"]]
    assert has_potential[:2] == [False, True], "replica 0 without and replica 1 with an external potential"
    table.loc[table["replica"] == 2, "T"] = 400.0  # this replica blows up and is dropped mid-run
    try:
        outputs = []
        for name, threads in (("first", 1), ("second", 1), ("two_threads", 2)):
            run_batch(_settings(), table, 0, tmp_path / f"{name}.nc", threads=threads)
            outputs.append(_arrays(tmp_path / f"{name}.nc"))
    finally:
        torch.set_num_threads(threads_before)
    first = outputs[0]
    assert first["status"].tolist() == [STATUS_OK, STATUS_OK, STATUS_FAILED], "the hot replica should fail alone"
    assert np.isfinite(first["rho"][:2]).all()
    for other in outputs[1:]:
        assert other.keys() == first.keys()
        for name in first:
            np.testing.assert_array_equal(other[name], first[name], err_msg=name)
