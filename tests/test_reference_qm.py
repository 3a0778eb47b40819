"""PySCF labelling: units, analytic forces against finite differences, SCF retries, method checks, and the
convergence of a complete environment's core forces with its shell.

Budget: about 110 s on one core (the HF/STO-3G labels of three water cuts of up to ~90 atoms, then the
PBE/def2-SVP finite-difference check).
"""

import subprocess
import sys

import numpy as np
import pytest
from scipy.constants import e as ELEMENTARY_CHARGE
from scipy.constants import physical_constants

from liquidscale.errors import UserError
from liquidscale.molecules import WATER
from liquidscale.reference import qm
from liquidscale.reference.configurations import Frame, distorted_molecule, initial_clusters

pytest.importorskip("pyscf")

METHOD = {"xc": "PBE", "basis": "def2-SVP", "dispersion": None, "density_fit": True, "conv_tol": 1e-11, "max_cycle": 100, "grid_level": 3}
DIMER_INITIAL = {"cluster_sizes": [2], "frames_per_size": 1, "min_distance": 1.6, "density": 0.02, "bond_jitter": 0.03, "angle_jitter": 4.0}


@pytest.fixture(autouse=True)
def one_thread():
    from pyscf import lib

    lib.num_threads(1)


def test_unit_conversions_are_codata():
    assert qm.HARTREE_TO_EV == pytest.approx(physical_constants["Hartree energy in eV"][0], rel=1e-12)
    assert qm.BOHR_TO_ANGSTROM == pytest.approx(physical_constants["Bohr radius"][0] * 1e10, rel=1e-12)
    # the atomic unit of force (Hartree/Bohr) expressed in eV/Å
    au_force_ev_per_angstrom = physical_constants["atomic unit of force"][0] / ELEMENTARY_CHARGE * 1e-10
    assert qm.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM == pytest.approx(au_force_ev_per_angstrom, rel=1e-9)
    # CODATA 2022 printed values: atomic unit of force 8.2387235038e-8 N, e = 1.602176634e-19 C (exact)
    assert qm.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM == pytest.approx(8.2387235038e-8 / 1.602176634e-19 * 1e-10, rel=1e-9)


def test_geometry_reaches_pyscf_in_bohr():
    xyz = WATER.geometry()
    mol = qm.build_molecule(WATER.symbols, xyz, "sto-3g")
    np.testing.assert_allclose(mol.atom_coords(unit="Bohr") * qm.BOHR_TO_ANGSTROM, xyz, atol=1e-12)


def _finite_difference_forces(symbols, xyz, method, step=1e-3):
    forces = np.zeros_like(xyz)
    for atom in range(len(xyz)):
        for axis in range(3):
            energies = []
            for sign in (1.0, -1.0):
                moved = xyz.copy()
                moved[atom, axis] += sign * step
                energies.append(qm.label(symbols, moved, method).energy)
            forces[atom, axis] = -(energies[0] - energies[1]) / (2 * step)
    return forces


@pytest.mark.parametrize(
    "method",
    [METHOD, dict(METHOD, xc="HF", dispersion="d3bj")],
    ids=["PBE-def2SVP-DF", "HF-D3BJ-def2SVP-DF"],
)
def test_analytic_forces_match_finite_differences(method):
    """Central differences of the energy (eV, Å) agree with the analytic forces to < 1e-3 eV/Å."""
    xyz = distorted_molecule(WATER, np.random.default_rng(0), 0.05, 8.0)
    result = qm.label(WATER.symbols, xyz, method)
    assert result.attempt == "diis"
    assert np.abs(result.forces).max() > 0.5  # distorted: the check is not trivially zero
    np.testing.assert_allclose(result.forces.sum(0), 0.0, atol=1e-3)  # translational invariance
    fd = _finite_difference_forces(WATER.symbols, xyz, method)
    assert np.abs(fd - result.forces).max() < 1e-3


def test_dispersion_lowers_the_dimer_energy():
    frame = initial_clusters(WATER, DIMER_INITIAL, seed=1)[0]
    method = dict(METHOD, basis="sto-3g", xc="HF", conv_tol=1e-9)
    plain = qm.label(frame.symbols, frame.positions, method).energy
    d3 = qm.label(frame.symbols, frame.positions, dict(method, dispersion="d3bj")).energy
    assert -0.5 < d3 - plain < 0.0  # D3(BJ) is attractive and small (tens of meV)


def test_nonconverged_scf_is_retried_with_a_more_robust_solver():
    frame = initial_clusters(WATER, DIMER_INITIAL, seed=1)[0]
    method = dict(METHOD, basis="sto-3g", xc="HF", conv_tol=1e-10)
    reference = qm.label(frame.symbols, frame.positions, method)
    assert reference.attempt == "diis"
    retried = qm.label(frame.symbols, frame.positions, dict(method, max_cycle=4))  # too few DIIS cycles
    assert retried.attempt in qm.ATTEMPTS[1:]
    assert retried.energy == pytest.approx(reference.energy, abs=1e-6)
    np.testing.assert_allclose(retried.forces, reference.forces, atol=1e-4)


def test_frame_that_never_converges_lands_in_the_failure_table():
    frames = initial_clusters(WATER, dict(DIMER_INITIAL, cluster_sizes=[1, 2]), seed=1)
    for i, frame in enumerate(frames):
        frame.info["frame"] = i
    odd = Frame(["O", "H"], np.array([[0.0, 0, 0], [0.97, 0, 0]]), {"frame": 2, "source": "radical"})
    method = dict(METHOD, basis="sto-3g", xc="HF", conv_tol=1e-10)
    labelled, failures = qm.label_shard(frames + [odd], dict(method, max_cycle=1), WATER.type_map, shard=0, log=lambda _: None)
    assert labelled == []
    assert [row["frame"] for row in failures] == [0, 1, 2]
    assert "SCF not converged" in failures[0]["reason"] and "max_cycle=1" in failures[0]["reason"]
    assert failures[1]["formula"] == "O2H4" and failures[1]["n_atoms"] == 6
    assert "cannot build molecule" in failures[2]["reason"]  # odd electron count, closed shell requested
    labelled, failures = qm.label_shard(frames, method, WATER.type_map, shard=3, log=lambda _: None)
    assert failures == [] and [a.info["frame"] for a in labelled] == [0, 1]
    assert labelled[1].info["shard"] == 3 and labelled[1].get_forces().shape == (6, 3)


def test_check_method_accepts_known_and_names_the_key_of_unknown():
    for method in ({"xc": "PBE", "basis": "def2-SVP"}, {"xc": "hf", "basis": "sto-3g"}, {"xc": "B3LYP", "basis": "aug-cc-pVTZ"}):
        qm.check_method(method)
    with pytest.raises(UserError, match=r"'reference\.method\.xc': 'PBEX'"):
        qm.check_method({"xc": "PBEX", "basis": "def2-SVP"})
    with pytest.raises(UserError, match=r"'reference\.method\.basis': 'def2-XYZ'"):
        qm.check_method({"xc": "PBE", "basis": "def2-XYZ"})


def test_check_method_stays_light():
    """Config validation imports the basis parser and libxc, not the gradient code, ase or dpdata."""
    code = (
        "import sys; from liquidscale.reference.qm import check_method; check_method({'xc': 'PBE', 'basis': 'def2-SVP'}); "
        "print(sorted(m for m in ('pyscf.grad', 'ase', 'dpdata', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_core_forces_do_not_feel_where_the_environment_is_cut():
    """The core-atom mask: a core atom's force converges as its environment's shell grows, so with a shell a few Å
    wide the cut is far enough away; the cut's boundary atoms, which are never trained on, are not converged.
    HF/STO-3G on a packed water box; the same atoms compared between cuts with 1.0, 2.5 and 3.6 Å shells around a
    1.2 Å core. Measured: core max |dF| 0.59 (1.0 Å shell) and 0.076 eV/Å (2.5 Å); boundary atoms up to 11.6 and 4.3 eV/Å."""
    from liquidscale.molecules import cut_environment
    from liquidscale.reference.configurations import packed_box

    method = {**METHOD, "xc": "HF", "basis": "sto-3g", "density_fit": False, "conv_tol": 1e-9}
    positions, cell = packed_box(WATER, 32, 0.033, np.random.default_rng(7), {"min_distance": 1.6, "bond_jitter": 0.03, "angle_jitter": 4.0})
    symbols = list(WATER.symbols) * 32
    cuts = {shell: cut_environment(symbols, positions, WATER, 0, 1.2, shell, cell) for shell in (1.0, 2.5, 3.6)}
    forces = {shell: qm.label(s, x, method).forces for shell, (s, x, _) in cuts.items()}
    largest = cuts[3.6][1]
    core_moved, boundary_moved = {}, {}
    for shell in (1.0, 2.5):
        _, x, core = cuts[shell]
        same = [int(np.argmin(np.linalg.norm(largest - xi, axis=1))) for xi in x]
        change = np.linalg.norm(forces[shell] - forces[3.6][same], axis=1)
        core_moved[shell], boundary_moved[shell] = change[core].max(), change[~core].max()
    print({shell: f"core max {core_moved[shell]:.3f}, boundary max {boundary_moved[shell]:.3f} eV/Å" for shell in core_moved})
    assert core_moved[2.5] < 0.1  # eV/Å: below the force errors of the production models
    assert core_moved[1.0] > 4 * core_moved[2.5]  # converging with the shell: the bound measures the cut, not noise
    assert boundary_moved[2.5] > 5 * core_moved[2.5]  # the atoms the mask leaves out are the ones that feel the cut
