"""External potentials: periodicity, analytic derivatives, numpy/torch agreement, caps, hard walls."""

import json
import math

import numpy as np
import pytest

from liquidscale.external import ExternalPotential, RandomPotentialSettings, random_potential, slit

L = 7.3


def _all_kinds() -> ExternalPotential:
    return ExternalPotential(
        L,
        (
            {"kind": "fourier", "n": 3, "amplitude": 1.2, "phase": 0.4},
            {"kind": "piecewise_linear", "knots": [6.0, 1.0, 3.5], "values": [0.5, -1.0, 2.0]},
            {"kind": "soft_wall", "center": 7.0, "half_width": 0.8, "amplitude": 2.5, "softness": 0.15},
        ),
    )


def test_periodic_and_derivative_matches_finite_difference():
    pot = _all_kinds()
    z = np.linspace(-L, 2 * L, 3001) + 1e-3  # avoid landing exactly on a linear knot
    v, dv = pot.beta_v_and_derivative(z)
    np.testing.assert_allclose(pot.beta_v(z + L), v, atol=1e-12)
    h = 1e-6
    numeric = (pot.beta_v(z + h) - pot.beta_v(z - h)) / (2 * h)
    kinks = np.min(np.abs(((z[:, None] - np.array([6.0, 1.0, 3.5])) + L / 2) % L - L / 2), axis=1) < 2 * h
    np.testing.assert_allclose(numeric[~kinks], dv[~kinks], atol=1e-5)


def test_piecewise_linear_passes_through_its_knots():
    pot = ExternalPotential(L, ({"kind": "piecewise_linear", "knots": [6.0, 1.0, 3.5], "values": [0.5, -1.0, 2.0]},))
    np.testing.assert_allclose(pot.beta_v(np.array([1.0, 3.5, 6.0, 1.0 + L])), [-1.0, 2.0, 0.5, -1.0], atol=1e-12)


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    pot = _all_kinds()
    z = np.linspace(0, L, 501)
    v, dv = pot.beta_v_and_derivative(z)
    vt, dvt = pot.beta_v_and_derivative(torch.tensor(z, dtype=torch.float64))
    np.testing.assert_allclose(vt.numpy(), v, atol=1e-12)
    np.testing.assert_allclose(dvt.numpy(), dv, atol=1e-12)


def test_hard_wall_is_infinite_inside_and_zero_force_and_finite_version_is_steep():
    pot = ExternalPotential(L, ({"kind": "hard_wall", "center": 0.2, "half_width": 1.0},))
    z = np.array([0.2, 1.1, 7.0, 1.5, 3.0])  # 7.0 is 0.5 from the centre through the periodic boundary
    assert np.all(np.isinf(pot.beta_v(z)[:3])) and np.all(pot.beta_v(z)[3:] == 0)
    steep = pot.finite(md_wall_height=30.0, md_wall_softness=0.02)
    assert not steep.has_hard_wall and pot.has_hard_wall
    vs = steep.beta_v(z)
    assert np.all(vs[:3] > 29.0) and np.all(vs[3:] < 1e-3)
    assert steep.beta_v(np.array([1.2]))[0] == pytest.approx(15.0)  # half height on the hard edge


def test_slit_is_the_complement_of_a_wall():
    term = slit(center=2.0, width=3.0, length=L)
    pot = ExternalPotential(L, (term,))
    z = np.linspace(0, L, 7301, endpoint=False)
    open_ = np.isfinite(pot.beta_v(z))
    assert np.all(np.abs(z[open_] - 2.0) < 1.5 + 1e-9)
    assert open_.mean() == pytest.approx(3.0 / L, abs=2e-3)


def test_random_potentials_are_seeded_capped_and_serialisable():
    settings = RandomPotentialSettings(cap=3.0, p_fourier=1.0, p_linear=1.0, p_soft_wall=1.0, p_hard_wall=0.5)
    z = np.linspace(0, L, 2001)
    kinds = set()
    for run in range(40):
        pot = random_potential((11, run), L, settings)
        again = ExternalPotential.from_dict(json.loads(json.dumps(pot.to_dict())))
        np.testing.assert_array_equal(again.beta_v(z), pot.beta_v(z))
        assert random_potential((11, run), L, settings) == pot
        finite = pot.beta_v(z)[np.isfinite(pot.beta_v(z))]
        assert np.max(np.abs(finite)) <= 3.0 + 1e-9
        kinds |= {t["kind"] for t in pot.terms}
    assert kinds == {"fourier", "piecewise_linear", "soft_wall", "hard_wall"}
    assert random_potential((11, 0), L, settings) != random_potential((11, 1), L, settings)


def test_no_features_gives_zero_potential():
    settings = RandomPotentialSettings(p_fourier=0, p_linear=0, p_soft_wall=0, p_hard_wall=0, p_slit=0)
    pot = random_potential(5, L, settings)
    assert pot.terms == () and np.all(pot.beta_v(np.linspace(0, L, 11)) == 0)
    assert math.isclose(L, pot.length)


def test_batched_evaluation_equals_each_potential():
    torch = pytest.importorskip("torch")
    from liquidscale.external import BatchedExternal

    settings = RandomPotentialSettings(cap=3.0, p_fourier=0.8, p_linear=0.6, p_soft_wall=0.6, p_hard_wall=0.5)
    pots = [random_potential((2, run), L, settings).finite(30.0, 0.05) for run in range(12)] + [None]
    batched = BatchedExternal(pots, torch.float64, "cpu")
    z = torch.tensor(np.random.default_rng(0).uniform(-L, 2 * L, size=(len(pots), 300)))
    value, slope = batched.beta_v_and_derivative(z)
    for row, pot in enumerate(pots):
        expected = pot.beta_v_and_derivative(z[row]) if pot is not None else (torch.zeros(300), torch.zeros(300))
        torch.testing.assert_close(value[row], expected[0].to(value.dtype))
        torch.testing.assert_close(slope[row], expected[1].to(slope.dtype))
    keep = torch.tensor([b % 2 == 0 for b in range(len(pots))])
    batched.select(keep)
    torch.testing.assert_close(batched.beta_v_and_derivative(z[keep])[0], value[keep])
