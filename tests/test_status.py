"""``liquidscale status`` on a tiny real campaign's outputs, and its speed on 10^4 runs.

The campaign is made by the stage commands themselves: water's reference labels (HF/sto-3g, one
unlabellable radical), and lj's sampling (one run blown up, one batch never run), profiles, cDFT
training and analysis. The concurrent-learning JSONs are written in the shape the mlip commands
write, and read back by the package's own reader of them (``mlip.convergence.history``).
Budget: about 30 s on one core.
"""

from __future__ import annotations

import json
import time

import netCDF4
import numpy as np
import pytest

from liquidscale import dataset as names
from liquidscale.cli import main
from liquidscale.config import stage_settings, validate_config
from liquidscale.mlip.convergence import history
from liquidscale.status import campaign_status, count_reasons, render_text
from liquidscale.sampling.batch import run_batch
from liquidscale.sampling.statepoints import batch_settings, batch_table
from builders import label_reference_iteration, write_radical

pytest.importorskip("pyscf")
pytest.importorskip("torch")

LJ_CONFIG = {
    "systems": ["lj"],
    "sampling": {"runs": 8, "replicas_per_job": 2, "minimisation_steps": 20, "equilibration_steps": 50, "production_steps": 100, "sample_every": 5,
                 "check_every": 10, "slab_fraction": 0.0, "threads": 1, "device": "cpu",
                 "lj": {"box": [5.2, 5.2, 8.0], "density_range": [0.3, 0.7], "bin_width": 0.05}},
    "profiles": {"split": [0.5, 0.25, 0.25]},
    "cdft": {"channels": [4], "max_epochs": 2, "lbfgs_iterations": 2, "warmup_passes": 1},
    "analysis": {"isotherms": 3, "binodal_points": 3, "widom": {"isotherms": 3, "isobar_temperatures": 3}, "poles": {"densities": 3},
                 "fisher_widom": {"temperatures": 1}, "pores": {"widths": [6.0], "chemical_potentials": 3}},
}
RUN_BLOWN_UP, BATCHES_RUN = 3, (0, 1, 2)  # batch 3 (runs 6, 7) is never run: pending
WATER_REFERENCE = {"method": {"xc": "HF", "basis": "sto-3g", "conv_tol": 1e-9}, "initial": {"cluster_sizes": [1], "frames_per_size": 2}, "shards": 2}


def _lj(lj):
    config = validate_config(LJ_CONFIG)
    stage = stage_settings(config, "lj", "sampling")
    assert main(["sampling", "statepoints", "--settings", json.dumps(stage), "--out", str(lj / "sampling" / "statepoints.csv")]) == 0
    batches = [str(lj / "sampling" / f"batch{b:04d}.nc") for b in BATCHES_RUN]
    for b, out in zip(BATCHES_RUN, batches):  # the batch jobs, one with a planted row the CLI would not take
        settings = batch_settings(stage, b)
        rows = batch_table(settings)
        rows.loc[rows["run"] == RUN_BLOWN_UP, "T"] = 400.0  # far beyond what the timestep integrates
        run_batch(settings, rows, b, out)
    assert main(["sampling", "aggregate", "--settings", json.dumps(stage_settings(config, "lj", "profiles")), "--out", str(lj / "profiles.nc"), *batches]) == 0
    assert main(["cdft", "train", "--settings", json.dumps(stage_settings(config, "lj", "cdft")), "--profiles", str(lj / "profiles.nc"), "--out", str(lj / "cdft")]) == 0
    assert main(["analysis", "run", "--settings", json.dumps(stage_settings(config, "lj", "analysis")), "--model", str(lj / "cdft"), "--out", str(lj / "analysis")]) == 0


def _water_reference(water, extra):
    write_radical(extra)
    config = validate_config({"systems": ["water"], "reference": {**WATER_REFERENCE, "extra_configurations": {"water": str(extra)}}})
    confs = label_reference_iteration(config, water / "reference" / "iter000") / "configurations.extxyz"
    # iteration 1: its configurations are there, one of two shards labelled, not collected
    (water / "reference" / "iter001" / "shards" / "shard00").mkdir(parents=True)
    (water / "reference" / "iter001" / "configurations.extxyz").write_bytes(confs.read_bytes())


MLIP_ITERATIONS = [
    # (frames train/test, held-out RMSEs, selection fractions, selected, converged)
    ({"train": 40, "test": 5}, {"energy_rmse_per_atom": 0.02, "force_rmse": 0.41}, {"accurate": 0.6, "candidate": 0.3, "failed": 0.1}, 4, False),
    ({"train": 44, "test": 6}, {"energy_rmse_per_atom": 0.01, "force_rmse": 0.22}, {"accurate": 0.97, "candidate": 0.03, "failed": 0.0}, 0, True),
]


def _mlip(water):
    for k, (frames, held_out, fractions, selected, converged) in enumerate(MLIP_ITERATIONS):
        it = water / "mlip" / f"iter{k:03d}"
        for member in range(2):
            (it / f"model{member}").mkdir(parents=True)
        (it / "metrics.json").write_text(json.dumps({"system": "water", "iteration": f"{k:03d}", "frames": {**frames, "bulk": 2}, "held_out_mean": held_out,
                                                     "bulk_mean": {"force_rmse": 2 * held_out["force_rmse"]}, "members": []}))
        (it / "selection.json").write_text(json.dumps({"frames": 100, "failed_replica_frames": 0, **fractions, "converged": converged, "selected": selected,
                                                       "candidate_clusters": selected}))
    (water / "mlip" / "iter002").mkdir()  # the next iteration has started: nothing written yet
    # the files are what the package's reader of the loop's record expects
    assert [row["force_rmse"] for row in history([water / "mlip" / f"iter{k:03d}" for k in range(2)])] == [0.41, 0.22]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    results = root / "results"
    (results / "lj" / "sampling").mkdir(parents=True)
    _lj(results / "lj")
    _water_reference(results / "water", root / "extra.extxyz")
    _mlip(results / "water")
    (results / "logs").mkdir()  # a folder without stage outputs is not a system
    return results


def test_sampling_counts_done_failed_and_pending_with_reasons(results):
    sampling = campaign_status(results)["systems"]["lj"]["sampling"]
    assert (sampling["runs"], sampling["batches"], sampling["batch_files"]) == (8, 4, 3)
    assert (sampling["done"], sampling["failed"], sampling["pending"], sampling["pending_batches"]) == (5, 1, 2, [3])
    with netCDF4.Dataset(results / "lj" / "sampling" / "batch0001.nc") as nc:
        reason = str(nc.variables[names.FAILURE_REASON][RUN_BLOWN_UP - 2])
    assert reason and sampling["failure_reasons"] == [{"reason": count_reasons([reason])[0]["reason"], "count": 1, "example": reason}]


def test_a_damaged_batch_file_counts_as_pending(results, tmp_path):
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results / "lj", copy / "lj")
    (copy / "lj" / "sampling" / "batch0000.nc").write_bytes(b"not netCDF")
    sampling = campaign_status(copy)["systems"]["lj"]["sampling"]
    assert sampling["unreadable_batch_files"] == ["batch0000.nc"]
    assert (sampling["done"], sampling["failed"], sampling["pending"], sampling["pending_batches"]) == (3, 1, 4, [0, 3])


def test_later_stages_are_read_from_their_files(results):
    lj = campaign_status(results)["systems"]["lj"]
    with netCDF4.Dataset(results / "lj" / "profiles.nc") as nc:
        assert lj["profiles"]["runs"] == 6 and lj["profiles"]["bins"] == len(nc.dimensions["z"]) == round(8.0 / 0.05)
    assert lj["profiles"]["bytes"] == (results / "lj" / "profiles.nc").stat().st_size
    assert (lj["profiles"]["ok"], lj["profiles"]["failed"], sum(lj["profiles"]["split"].values())) == (5, 1, 6)
    metrics = json.loads((results / "lj" / "cdft" / "metrics.json").read_text())
    assert lj["cdft"]["test_c1_rmse"] == metrics["test_c1_rmse"] and lj["cdft"]["test_runs"] == len(metrics["test_runs"])
    summary = json.loads((results / "lj" / "analysis" / "summary.json").read_text())
    assert lj["analysis"]["status"] == summary["bulk"]["status"] and lj["analysis"]["reason"] == summary["bulk"]["reason"]
    assert lj["analysis"]["binodal_points"] == summary["bulk"]["binodal_points"]
    critical = summary["bulk"]["critical_point"]
    assert lj["analysis"]["Tc"] == (critical["T"] if critical else None)
    assert set(lj["analysis"]["parts"]) == {"supercritical", "interface", "pores"} and all(lj["analysis"]["parts"].values())
    assert lj["reference"] is None and lj["mlip"] is None


def test_reference_and_concurrent_learning(results):
    water = campaign_status(results)["systems"]["water"]
    first, second = water["reference"]
    provenance = json.loads((results / "water" / "reference" / "iter000" / "provenance.json").read_text())
    assert (first["frames"], first["labelled"], first["failed"]) == (3, 2, 1) == (provenance["n_frames"], provenance["n_labelled"], provenance["n_failed"])
    assert [r["count"] for r in first["failure_reasons"]] == [1]
    assert second["state"] == "labelling" and second["shards_done"] == 1
    iterations = water["mlip"]["iterations"]
    assert [r["force_rmse"] for r in iterations[:2]] == [0.41, 0.22] and [r["bulk_force_rmse"] for r in iterations[:2]] == [0.82, 0.44]
    assert [(r["accurate"], r["candidate"], r["failed"], r["converged"]) for r in iterations[:2]] == [(0.6, 0.3, 0.1, False), (0.97, 0.03, 0.0, True)]
    assert iterations[2]["state"] == "training" and "force_rmse" not in iterations[2]
    assert water["mlip"]["final"] is None and water["sampling"] is None and water["analysis"] is None
    assert sorted(campaign_status(results)["systems"]) == ["lj", "water"]


def test_text_and_json_forms(results, capsys):
    assert main(["status", str(results), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(campaign_status(results)))
    assert main(["status", str(results)]) == 0
    text = capsys.readouterr().out
    assert "8 runs in 4 batches: 5 done, 1 failed, 2 pending (1 batch file(s) missing)" in text
    assert "iter000  3 frames: 2 labelled, 1 failed" in text and "iter001  1 shard(s) labelled, not collected" in text
    assert "final model: not yet" in text and text == render_text(campaign_status(results))
    # nothing there yet (a campaign not started, or a mistyped folder): said plainly, not an error
    assert main(["status", str(results / "missing")]) == 0
    assert "missing: no campaign output yet" in capsys.readouterr().out
    assert main(["status", str(results / "missing"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["systems"] == {}


def _synthetic_batches(folder, runs: int, per_batch: int, bins: int, failed_every: int) -> None:
    """Batch files with the contract's per-run variables and full (run, z) profiles, as a big campaign's."""
    folder.mkdir(parents=True)
    with open(folder / "statepoints.csv", "w") as handle:
        handle.write("run,batch,replica\n" + "".join(f"{r},{r // per_batch},{r % per_batch}\n" for r in range(runs)))
    rng = np.random.default_rng(0)
    for batch in range(-(-runs // per_batch)):
        ids = np.arange(batch * per_batch, min(runs, (batch + 1) * per_batch))
        with netCDF4.Dataset(folder / f"batch{batch:04d}.nc", "w") as nc:
            nc.createDimension("run", len(ids))
            nc.createDimension("z", bins)
            nc.createVariable("run", "i8", ("run",))[:] = ids
            for name in ("rho", "V_ext"):
                nc.createVariable(name, "f8", ("run", "z"))[:] = rng.random((len(ids), bins))
            failed = ids % failed_every == 0
            nc.createVariable(names.STATUS, "i1", ("run",))[:] = failed.astype(np.int8)
            reasons = nc.createVariable(names.FAILURE_REASON, str, ("run",))
            for i, run in enumerate(ids):
                reasons[i] = f"atoms 0.{run % 90 + 10} apart (< 0.7) after {run * 50} steps" if failed[i] else ""


def test_ten_thousand_runs_take_seconds(tmp_path):
    runs, per_batch = 10_000, 32
    _synthetic_batches(tmp_path / "results" / "water" / "sampling", runs, per_batch, bins=800, failed_every=100)
    start = time.perf_counter()
    sampling = campaign_status(tmp_path / "results")["systems"]["water"]["sampling"]
    seconds = time.perf_counter() - start
    print(f"status of {runs} runs in {sampling['batch_files']} batch files: {seconds:.2f} s")
    assert (sampling["done"], sampling["failed"], sampling["pending"]) == (9900, 100, 0)
    assert sampling["failure_reasons"][0]["count"] == 100 and len(sampling["failure_reasons"]) == 1  # numbers differ, one kind
    assert seconds < 10


def test_coexistence_verdicts_per_temperature(tmp_path):
    """The coexistence step's table: densities with errors where a slab coexisted, the reason where not."""
    folder = tmp_path / "water" / "coexistence"
    folder.mkdir(parents=True)
    (folder / "coexistence.csv").write_text(
        "T,status,reason,n_molecules,rho_vapour,rho_vapour_stderr,rho_liquid,rho_liquid_stderr,blocks\n"
        "300.0,ok,,500,1e-06,1e-06,0.0331,0.0002,10\n"
        "400.0,no coexistence,plateaus not distinct: evaporated or supercritical,500,,,,,10\n"
    )
    water = campaign_status(tmp_path)["systems"]["water"]["coexistence"]
    assert water["state"] == "done" and [row["status"] for row in water["temperatures"]] == ["ok", "no coexistence"]
    assert water["temperatures"][1]["rho_liquid"] is None
    text = render_text(campaign_status(tmp_path))
    assert "T = 300: liquid 0.0331 ± 0.0002, vapour 1e-06 ± 1e-06" in text
    assert "T = 400: no coexistence: plateaus not distinct: evaporated or supercritical" in text
    assert water["functional"] is None and "functional" not in text  # rung 4 not run yet
    import pandas as pd

    from liquidscale.coexistence.functional import TABLE, compare

    binodal = pd.DataFrame({"T": [250.0, 350.0], "rho_vapour": [1e-6, 2e-6], "rho_liquid": [0.0330, 0.0300], "coverage": "inside",
                            "rho_vapour_interface": [np.nan] * 2, "rho_liquid_interface": [np.nan] * 2})
    compare(binodal, pd.DataFrame({"status": ["found"], "reason": [""]}), pd.read_csv(folder / "coexistence.csv"), 0.03).to_csv(folder / TABLE, index=False)
    text = render_text(campaign_status(tmp_path))
    assert "functional (bulk route) vs direct, liquid at T = 300: -4.8% (-8.0 standard errors), outside 3%" in text
    assert "functional vs direct at T = 400" not in text  # the slab's own reason is said once, above
    (folder / "coexistence.csv").write_text("garbage\n1,2\n")
    assert campaign_status(tmp_path)["systems"]["water"]["coexistence"]["state"] == "unreadable"


def test_an_ensembles_networks_are_shown_beside_its_critical_point(tmp_path, capsys):
    analysis = tmp_path / "results" / "pets" / "analysis"
    analysis.mkdir(parents=True)
    networks = [{"T": 1.0983, "rho": 0.31}, {"T": 1.1121, "rho": 0.317}, {"reason": "no liquid-vapour transition: ..."}]
    bulk = {"status": "found", "reason": "", "binodal_points": 16, "critical_point": {"T": 1.1033, "rho": 0.3117}, "critical_point_of_each_network": networks}
    (analysis / "summary.json").write_text(json.dumps({"bulk": bulk, "units": {"length_unit": "sigma", "temperature_unit": "epsilon/k_B"}}))
    assert campaign_status(tmp_path / "results")["systems"]["pets"]["analysis"]["network_Tc"] == [1.0983, 1.1121, None]
    assert main(["status", str(tmp_path / "results")]) == 0
    assert "each of the ensemble's 3 networks: Tc 1.0983 to 1.1121 (2 with a critical point)" in capsys.readouterr().out
