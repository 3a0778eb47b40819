"""Molecule definitions and whole-molecule grouping (pure numpy, milliseconds)."""

import numpy as np
import pytest

from liquidscale.errors import UserError
from liquidscale.molecules import CO2, WATER, cut_environment, get_molecule, group_molecules, is_dissociated, minimum_image


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _lattice_frame(molecule, n_side, spacing, rng):
    """Molecules on a cubic lattice with random orientations in a periodic cube, atoms shuffled."""
    centres = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    positions = np.concatenate([c + molecule.geometry() @ _random_rotation(rng).T for c in centres])
    symbols = list(molecule.symbols) * len(centres)
    cell = np.eye(3) * n_side * spacing
    positions = positions % np.diag(cell)  # wrap: some molecules straddle the boundary
    perm = rng.permutation(len(symbols))
    return [symbols[i] for i in perm], positions[perm], cell


def test_geometry_matches_equilibrium_bonds_and_angles():
    for mol in (WATER, CO2):
        xyz = mol.geometry()
        r1, r2 = xyz[1] - xyz[0], xyz[2] - xyz[0]
        assert np.linalg.norm(r1) == pytest.approx(mol.bond_length)
        assert np.linalg.norm(r2) == pytest.approx(mol.bond_length)
        cos = r1 @ r2 / (np.linalg.norm(r1) * np.linalg.norm(r2))
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) == pytest.approx(mol.angle, abs=1e-6)


def test_masses_sites_formula():
    assert WATER.mass == pytest.approx(18.015, abs=1e-3)
    assert CO2.mass == pytest.approx(44.009, abs=1e-3)
    assert WATER.symbols[WATER.site_index()] == "O" and CO2.symbols[CO2.site_index()] == "C"
    assert CO2.site_index("O") == 1
    with pytest.raises(UserError, match="density site 'H'"):
        CO2.site_index("H")
    assert WATER.formula(6) == "O6H12" and CO2.formula(2) == "C2O4"
    assert get_molecule("co2") is CO2
    with pytest.raises(UserError, match="lj"):
        get_molecule("lj")


def test_minimum_image_orthorhombic():
    cell = np.diag([10.0, 12.0, 14.0])
    d = minimum_image(np.array([[9.0, -7.0, 7.5]]), cell)
    np.testing.assert_allclose(d, [[-1.0, 5.0, -6.5]])


@pytest.mark.parametrize("molecule", [WATER, CO2])
def test_grouping_recovers_molecules_across_periodic_boundaries(molecule):
    rng = np.random.default_rng(1)
    symbols, positions, cell = _lattice_frame(molecule, 3, 3.5, rng)
    grouping = group_molecules(symbols, positions, molecule, cell)
    assert grouping.intact, grouping.reason
    assert grouping.members.shape == (27, 3)
    assert sorted(grouping.members.ravel()) == list(range(81))
    for m in grouping.members:
        assert [symbols[i] for i in m] == list(molecule.symbols)
        bonds = np.linalg.norm(minimum_image(positions[m[1:]] - positions[m[0]], cell), axis=1)
        np.testing.assert_allclose(bonds, molecule.bond_length, atol=1e-9)
    # without the cell, the molecules straddling the boundary look broken
    assert is_dissociated(symbols, positions, molecule, cell=None)


def test_dissociation_detected():
    xyz = np.concatenate([WATER.geometry(), WATER.geometry() + [4.0, 0, 0]])
    symbols = list(WATER.symbols) * 2
    assert not is_dissociated(symbols, xyz, WATER)
    stretched = xyz.copy()
    stretched[1] = [1.6, 0, 0]  # O-H 1.6 Å: proton on its way out
    assert "bond" in group_molecules(symbols, stretched, WATER).reason
    transferred = xyz.copy()
    transferred[1] = [3.1, 0, 0]  # proton transfer: the second O now owns three H
    assert "partners" in group_molecules(symbols, transferred, WATER).reason
    assert "not part of" in group_molecules(["O", "H", "C"], WATER.geometry(), WATER).reason


@pytest.mark.parametrize("molecule", [WATER, CO2])
def test_environment_cut_gives_each_core_atom_every_neighbour_out_to_the_shell(molecule):
    """Implementation check of the cut's contract: around every core atom the cluster holds exactly the atoms
    the periodic frame has within ``shell`` (nearest images), at the same distances; molecules stay whole."""
    rng = np.random.default_rng(4)
    symbols, positions, cell = _lattice_frame(molecule, 4, 3.4, rng)
    core_radius, shell = 1.3, 3.0
    for atom in (0, 1, 17):
        cut_symbols, cut_xyz, core = cut_environment(symbols, positions, molecule, atom, core_radius, shell, cell)
        assert group_molecules(cut_symbols, cut_xyz, molecule).intact
        assert np.array_equal(core, np.linalg.norm(cut_xyz, axis=1) <= core_radius) and core.any()
        for i in np.flatnonzero(core):
            image = np.flatnonzero(np.linalg.norm(minimum_image(positions - positions[atom], cell) - cut_xyz[i], axis=1) < 1e-9)
            assert len(image) == 1  # the core atom is that atom of the frame
            in_frame = np.sort(np.linalg.norm(minimum_image(positions - positions[image[0]], cell), axis=1))
            in_cut = np.sort(np.linalg.norm(cut_xyz - cut_xyz[i], axis=1))
            n = int((in_frame <= shell).sum())
            assert np.allclose(in_cut[:n], in_frame[:n]) and (in_cut <= shell).sum() == n
    with pytest.raises(ValueError, match="does not fit"):
        cut_environment(symbols, positions, molecule, 0, core_radius, 6.0, cell)  # 2 x 7.3 Å > the 13.6 Å box
