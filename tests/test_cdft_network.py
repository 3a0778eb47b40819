"""The neural functional trained on exact hard-rod profiles, with mu hidden (treated as canonical MD data),
checked against the exact Percus functional and Tonks' EOS. One training per session (module fixture,
~5 min on one core); the machinery tests below it use tiny networks (seconds)."""

import json

import numpy as np
import pytest
import torch

from liquidscale import dataset as pds
from liquidscale.cdft import thermo
from liquidscale.fluids.hard_rods import PercusHardRods, hard_rod_dataset, tonks_beta_p
from liquidscale.cdft.model import METADATA_FILE, WEIGHTS_FILE, EnsembleC1, load_model
from liquidscale.cdft.solver import solve
from liquidscale.cdft.sum_rules import path_independence, wall_sum_rule
from liquidscale.cdft.train import CHECKPOINT_FILE, MEMBERS_FOLDER, TrainingSettings, train_functional
from liquidscale.external import RandomPotentialSettings, random_potential

torch.set_num_threads(1)

DZ = 0.1
BLOCK = {"box_length": 10.0, "dz": DZ, "runs": 200, "beta_mu_range": [-3.0, 5.5], "potential_cap": 1.0, "hard_walls": False}
# T only: on athermal one-T data every temperature input is zero, and a 1/T input changes nothing but the
# random initialisation (with the T, 1/T default the worst held-out run measured 0.011 instead of 0.008)
SETTINGS = TrainingSettings(window=1.0, temperature_inputs=("T",), channels=(32, 32, 32), max_epochs=100, patience=20, use_known_mu=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdft")
    ds = hard_rod_dataset(BLOCK, [0.7, 0.15, 0.15], seed=11, provenance={"test": "hard rods"})
    metrics = train_functional(ds, SETTINGS, seed=11, out_dir=out, provenance={"test": "hard rods"})
    model, metadata = load_model(out)
    return {"ds": ds, "metrics": metrics, "model": model, "metadata": metadata, "out": out}


@pytest.mark.slow
def test_held_out_runs_are_reproduced_by_the_self_consistent_solution(trained):
    """Canonical solves (same N) in the potentials of all 30 test runs of the dataset (measured: worst 0.006 /
    0.008, median 2e-4 / 3e-4 in two trainings; with 100 runs and two layers one test peak lay 40% above the
    training maximum and missed by 0.1)."""
    m = trained["metrics"]
    assert m["test_solve_failures"] == 0 and len(m["test_profiles"]) == 30
    errors = np.array([p["max_abs_drho"] for p in m["test_profiles"]])
    assert errors.max() < 1e-2
    assert np.median(errors) < 1e-3
    assert m["test_solves_beyond_training_density"] == sum(p["density_max"] > m["training_density_max"] for p in m["test_profiles"])


@pytest.mark.slow
def test_unseen_potentials_match_the_exact_functional(trained):
    exact = PercusHardRods(DZ)
    z = (np.arange(100) + 0.5) * DZ
    for k, beta_mu in enumerate([-1.0, 1.5, 3.5]):
        V = random_potential((424242, k), 10.0, RandomPotentialSettings(cap=1.0, p_fourier=1.0, p_hard_wall=0.0, p_slit=0.0)).beta_v(z)
        rho_exact = solve(exact, V, 1.0, mu=beta_mu).rho
        rho_net = solve(trained["model"], V, 1.0, mu=beta_mu).rho
        assert np.abs(rho_net - rho_exact).max() < 1e-2, (k, beta_mu)


@pytest.mark.slow
def test_bulk_pressure_is_tonks(trained):
    rho = np.linspace(0.05, 0.8, 16)
    np.testing.assert_allclose(thermo.bulk_beta_pressure(trained["model"], rho, 1.0), tonks_beta_p(rho), rtol=1e-2)


@pytest.mark.slow
def test_fitted_chemical_potentials_recover_the_hidden_ones(trained):
    assert trained["metrics"]["use_known_mu"] is False
    # measured in two trainings on the same data (solver defaults differing at 1e-9): max 0.024 / 0.029
    # (a run with a 1.8 sigma^-1 peak), median 1.7e-4 / 1.2e-3; the bounds leave room for that spread
    assert trained["metrics"]["train_beta_mu_fit_max_abs_error"] < 0.05
    assert trained["metrics"]["train_beta_mu_fit_median_abs_error"] < 5e-3


@pytest.mark.slow
def test_implementation_check_noether_translation_invariance(trained):
    """Implementation check, not physics: grad c1(z) = int c2(z, z') grad rho(z') dz' holds for any periodic
    conv net by construction; it checks the autograd c2 and the model's periodic padding."""
    model = trained["model"]
    z = (np.arange(100) + 0.5) * DZ
    rho = solve(PercusHardRods(DZ), 1.5 * np.cos(2 * np.pi * z / 10.0), 1.0, mu=2.0).rho

    def gradient(f):
        return (np.roll(f, -1) - np.roll(f, 1)) / (2 * DZ)

    c1 = model.c1(torch.tensor(rho), 1.0).detach().numpy()
    c2 = thermo.pair_direct_correlation(model, rho, 1.0)
    lhs, rhs = gradient(c1), c2 @ gradient(rho) * DZ
    assert np.abs(lhs - rhs).max() < 0.02 * np.abs(lhs).max()


@pytest.mark.slow
@pytest.mark.parametrize("rho_b", [0.3, 0.6])
def test_implementation_check_structure_factor_at_k0_is_the_chain_rule_of_the_eos(trained, rho_b):
    """Implementation check: S(0) from autograd c2 equals (d beta p / d rho)^-1 of the same network's bulk c1
    by the chain rule, for any c1; only the second line (against (1 - rho)^2) tests the physics learned."""
    model, h = trained["model"], 1e-4
    dp_drho = (thermo.bulk_beta_pressure(model, rho_b + h, 1.0) - thermo.bulk_beta_pressure(model, rho_b - h, 1.0)) / (2 * h)
    assert thermo.structure_factor(model, rho_b, 1.0, 0.0) == pytest.approx(1.0 / dp_drho, rel=1e-4)
    assert thermo.structure_factor(model, rho_b, 1.0, 0.0) == pytest.approx((1 - rho_b) ** 2, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("beta_mu", [-1.0, 1.5, 3.5])
def test_wall_sum_rule_of_the_learned_functional(trained, beta_mu):
    """The force on a soft wall against the network's own bulk pressure (p(mu) - p(mu - wall height)): not given
    by construction. Measured relative mismatch (rho_b 0.22 / 0.56 / 0.72; the fixture's training is
    deterministic on one machine, not across machines): 1 kT wall, inside the training potentials, 6e-8 /
    7e-6 / 1.5e-6 on the machine that set the first bound (3e-5), 4.5e-5 at rho_b 0.22 on the 2026-12-02 CI
    machine (the same on the code before that session), so the bound is 1e-4, about twice the worst
    training seen. At that bound the 1 kT check no longer separates the deliberately non-integrable c1 of
    test_sum_rules (2e-5 / 7.5e-5 / 3e-5): it catches gross violations only, and the path-independence test
    below is the sharper integrability check of the learned functional; 30 kT wall (hard-wall limit,
    empty wall interior: outside the training data) 6.4e-4 / 9.5e-4 / 1.2e-3, the force < 0.01% / 0.05% /
    0.08% from Percus' in the same wall. Exact Percus: 1e-8 at both heights."""
    for wall_height, bound in ((1.0, 1e-4), (30.0, 3e-3)):
        rule = wall_sum_rule(trained["model"], 1.0, beta_mu, wall_height=wall_height)
        assert abs(rule.mismatch) < bound * rule.beta_p_wall, wall_height
    exact = wall_sum_rule(PercusHardRods(DZ), 1.0, beta_mu, wall_height=30.0)
    assert rule.beta_p_wall == pytest.approx(exact.beta_p_wall, rel=3e-3)


@pytest.mark.slow
def test_learned_free_energy_is_nearly_path_independent(trained):
    """beta F_exc differences between exact profiles in unseen potentials, straight path vs scaling paths:
    a neural c1 is no functional derivative by construction. Measured |difference| / |delta F| 3.5e-4, 4.0e-4,
    3.3e-4, 4.8e-5 (exact functionals 1e-14; the network's delta F is 1e-3 from the exact one)."""
    exact = PercusHardRods(DZ)
    z = (np.arange(100) + 0.5) * DZ
    settings = RandomPotentialSettings(cap=1.0, p_fourier=1.0, p_hard_wall=0.0, p_slit=0.0)

    def profile(k, beta_mu):
        return solve(exact, random_potential((424242, k), 10.0, settings).beta_v(z), 1.0, mu=beta_mu).rho

    for (ka, mu_a), (kb, mu_b) in [((0, -1.0), (1, 1.5)), ((0, 0.0), (1, 3.0)), ((2, 1.5), (3, 3.5)), ((4, -2.0), (5, 0.5))]:
        rho_a, rho_b = profile(ka, mu_a), profile(kb, mu_b)
        along_straight_path, via_scaling_paths = path_independence(trained["model"], rho_a, rho_b, 1.0)
        assert abs(along_straight_path - via_scaling_paths) < 1.5e-3 * abs(via_scaling_paths), (ka, kb)


@pytest.mark.slow
def test_saved_model_is_plain_tensors_and_metadata(trained):
    out = trained["out"]
    from safetensors.torch import load_file

    assert all(isinstance(v, torch.Tensor) for v in load_file(str(out / WEIGHTS_FILE)).values())
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["architecture"]["window"] == pytest.approx(1.0) and meta["architecture"]["dz"] == pytest.approx(DZ)
    assert meta["length_unit"] == "sigma" and meta["temperature_unit"] and meta["training_data_hash"]
    assert meta["provenance"] == {"test": "hard rods"}
    assert not (out / CHECKPOINT_FILE).exists()
    for name in ("training.csv", "training.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    rho = torch.rand(2, 100, dtype=torch.float64)
    reloaded, _ = load_model(out)
    assert torch.equal(reloaded.c1(rho, 1.0), trained["model"].c1(rho, 1.0))


def tiny_dataset():
    block = {"box_length": 4.0, "dz": 0.1, "runs": 8, "beta_mu_range": [-2.0, 2.0], "potential_cap": 1.0, "hard_walls": False}
    return hard_rod_dataset(block, [0.5, 0.25, 0.25], seed=5, provenance={})


TINY = TrainingSettings(window=1.0, channels=(4,), max_epochs=4, patience=10, lbfgs_iterations=3, warmup_passes=1, checkpoint_every=1)


def test_interrupted_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    ds = tiny_dataset()
    reference = train_functional(ds, TINY, seed=2, out_dir=tmp_path / "straight", provenance={})
    import liquidscale.cdft.train as train_module

    real = train_module.c1_errors
    calls = {"n": 0}

    def interrupt_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "c1_errors", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_functional(ds, TINY, seed=2, out_dir=tmp_path / "resumed", provenance={})
    assert (tmp_path / "resumed" / CHECKPOINT_FILE).exists()
    monkeypatch.setattr(train_module, "c1_errors", real)
    resumed = train_functional(ds, TINY, seed=2, out_dir=tmp_path / "resumed", provenance={})
    straight_curve = (tmp_path / "straight" / "training.csv").read_text()
    assert (tmp_path / "resumed" / "training.csv").read_text() == straight_curve
    assert resumed["test_c1_rmse"] == reference["test_c1_rmse"]


@pytest.fixture
def torch_threads():
    """Sets torch's thread count for one test (the ensemble's side-by-side processes are decided by it), then restores it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_ensemble_is_the_mean_of_networks_each_trained_as_alone(tmp_path, torch_threads):
    """Implementation check: network k of an ensemble is the single network of seed + k (same weights, same curve), the saved
    functional's c1 is their mean, and the members' checkpoints go once the ensemble is saved."""
    import pandas as pd
    from dataclasses import replace

    torch_threads(1)  # one thread: the networks train one after the other in this process
    ds = tiny_dataset()
    alone = [train_functional(ds, TINY, seed=seed, out_dir=tmp_path / f"seed{seed}", provenance={}) for seed in (2, 3)]
    metrics = train_functional(ds, replace(TINY, ensemble=2), seed=2, out_dir=tmp_path / "ensemble", provenance={})
    model, meta = load_model(tmp_path / "ensemble")
    singles = [load_model(tmp_path / f"seed{seed}")[0] for seed in (2, 3)]
    assert isinstance(model, EnsembleC1) and meta["architecture"]["members"] == 2
    for network, single in zip(model.members, singles):
        assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), single.state_dict().values()))
    rho = torch.rand(2, 40, dtype=torch.float64)
    torch.testing.assert_close(model.c1(rho, 1.0), (singles[0].c1(rho, 1.0) + singles[1].c1(rho, 1.0)) / 2)
    assert [m["seed"] for m in metrics["members"]] == [2, 3]
    assert [m["test_c1_rmse"] for m in metrics["members"]] == [a["test_c1_rmse"] for a in alone]
    curve = pd.read_csv(tmp_path / "ensemble" / "training.csv")
    for k, seed in enumerate((2, 3)):
        single_curve = pd.read_csv(tmp_path / f"seed{seed}" / "training.csv")
        assert (single_curve["network"] == 0).all()
        pd.testing.assert_frame_equal(curve[curve["network"] == k].drop(columns="network").reset_index(drop=True), single_curve.drop(columns="network"))
    assert not (tmp_path / "ensemble" / MEMBERS_FOLDER).exists()


def test_interrupted_ensemble_keeps_its_finished_networks_and_side_by_side_training_is_the_same(tmp_path, torch_threads, monkeypatch):
    """Interrupted while its second network trains, an ensemble resumes with the first one's final checkpoint (not trained
    again) and ends with the curves of an uninterrupted run; with two threads the networks train in two processes, one
    thread each, and give the same curves."""
    from dataclasses import replace

    import liquidscale.cdft.train as train_module

    settings = replace(TINY, ensemble=2)
    ds = tiny_dataset()
    torch_threads(1)
    train_functional(ds, settings, seed=2, out_dir=tmp_path / "straight", provenance={})
    real = train_module.c1_errors
    calls = {"n": 0}

    def interrupt_in_second_network(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == TINY.max_epochs + 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "c1_errors", interrupt_in_second_network)
    with pytest.raises(KeyboardInterrupt):
        train_functional(ds, settings, seed=2, out_dir=tmp_path / "resumed", provenance={})
    assert (tmp_path / "resumed" / MEMBERS_FOLDER / "00" / CHECKPOINT_FILE).exists()
    calls["n"] = 0
    monkeypatch.setattr(train_module, "c1_errors", lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), real(*a, **k))[1])
    train_functional(ds, settings, seed=2, out_dir=tmp_path / "resumed", provenance={})
    straight = (tmp_path / "straight" / "training.csv").read_text()
    assert (tmp_path / "resumed" / "training.csv").read_text() == straight
    # resumed: the second network's epochs 2-4 (its epoch 1 was checkpointed) and four held-out evaluations, 7 calls;
    # training the first network again would add its 4 epochs
    assert calls["n"] < 2 * TINY.max_epochs
    monkeypatch.setattr(train_module, "c1_errors", real)
    torch_threads(2)
    train_functional(ds, settings, seed=2, out_dir=tmp_path / "side_by_side", provenance={})
    assert (tmp_path / "side_by_side" / "training.csv").read_text() == straight


def test_cli_makes_hard_rod_data_and_trains(tmp_path):
    from liquidscale.cli import main
    from liquidscale.config import stage_settings, validate_config

    config = validate_config(
        {
            "systems": ["hard_rods"],
            "hard_rods": {"box_length": 4.0, "runs": 8, "beta_mu_range": [-2.0, 2.0]},
            "profiles": {"split": [0.5, 0.25, 0.25]},
            "cdft": {"channels": [4], "max_epochs": 2, "lbfgs_iterations": 2, "warmup_passes": 1},
        }
    )
    profiles = tmp_path / "profiles.nc"
    data_settings = json.dumps(stage_settings(config, "hard_rods", "profiles"))
    assert main(["cdft", "fluid-data", "--settings", data_settings, "--out", str(profiles)]) == 0
    assert pds.open_profile_dataset(profiles).sizes[pds.RUN] == 8
    train_settings = json.dumps(stage_settings(config, "hard_rods", "cdft"))
    assert main(["cdft", "train", "--settings", train_settings, "--profiles", str(profiles), "--out", str(tmp_path / "cdft")]) == 0
    metrics = json.loads((tmp_path / "cdft" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and len(metrics["test_profiles"]) == 2
    meta = json.loads((tmp_path / "cdft" / "model.json").read_text())
    assert meta["provenance"]["upstream_hashes"]["profiles"]
    assert main(["cdft", "train", "--settings", train_settings, "--profiles", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "x")]) == 2


def test_wide_windows_take_the_fft_path_and_match_direct_convolution():
    """The FFT convolution (windows wider than FFT_KERNEL_WIDTH bins) is the same periodic conv1d, values and gradients."""
    from liquidscale.cdft.functional import FFT_KERNEL_WIDTH, periodic_conv

    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 5, 300, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 5, 2 * FFT_KERNEL_WIDTH + 1, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=generator)
    p = FFT_KERNEL_WIDTH
    direct = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (p, p), mode="circular"), weight, bias)
    fft = periodic_conv(x, weight, bias)
    torch.testing.assert_close(fft, direct, rtol=0, atol=1e-12)
    grad_direct = torch.autograd.grad(direct.square().sum(), (x, weight))
    grad_fft = torch.autograd.grad(fft.square().sum(), (x, weight))
    for a, b in zip(grad_fft, grad_direct):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
