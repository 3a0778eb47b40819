"""Initial configurations: molecules placed at random where the external potential lets them be.

Random sequential insertion of molecule centres (minimum-image distance >= ``min_separation``) at
random orientations, only where beta*V_ext is below ``max_beta_v`` and, for a slab, inside the slab
centred in the box. Overlaps left by the insertion are removed by the engine's capped steepest
descent before the dynamics start.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..external import ExternalPotential


# smallest distance between atoms of different molecules, as a fraction of the centre separation
# (2.6 Å between O gives >= 1.56 Å between any two atoms, below an O-H...O hydrogen bond's 1.8 Å)
ATOM_SEPARATION = 0.6


def _closest(points: np.ndarray, others: np.ndarray, box: np.ndarray) -> float:
    """Smallest minimum-image distance between any of ``points`` and any of ``others``."""
    delta = points[:, None, :] - others[None, :, :]
    delta -= box * np.round(delta / box)
    return float(np.sqrt(np.min(np.einsum("ijk,ijk->ij", delta, delta))))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (from a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def place_molecules(
    template: np.ndarray,
    n_molecules: int,
    box: np.ndarray,
    rng: np.random.Generator,
    min_separation: float,
    external: ExternalPotential | None = None,
    slab_width: float = 1.0,
    max_beta_v: float = 5.0,
    attempts_per_molecule: int = 200,
) -> np.ndarray:
    """Positions (n_molecules * len(template), 3), molecule by molecule in template order.

    ``template`` holds the atoms of one molecule with its density site (centre) at the origin;
    ``slab_width`` is the fraction of the box length along z that the molecules start in.
    """
    box = np.asarray(box, dtype=float)
    half_slab = 0.5 * slab_width * box[2]
    n_atoms = len(template)
    centres = np.empty((n_molecules, 3))
    atoms = np.empty((n_molecules, n_atoms, 3))
    separation = min_separation
    placed, attempts = 0, 0
    while placed < n_molecules:
        # candidates in chunks so the external potential is evaluated vectorised
        trials = rng.uniform(0, 1, size=(256, 3)) * box
        trials[:, 2] = 0.5 * box[2] + rng.uniform(-half_slab, half_slab, size=256)
        if external is not None:
            trials = trials[external.beta_v(trials[:, 2]) < max_beta_v]
        for trial in trials:
            if placed and _closest(centres[:placed], trial[None], box) < separation:
                continue
            molecule = trial + template @ random_rotation(rng).T
            # atoms of different molecules (e.g. H...H) no closer than the atom-level separation
            if placed and n_atoms > 1 and _closest(atoms[:placed].reshape(-1, 3), molecule, box) < ATOM_SEPARATION * separation:
                continue
            centres[placed], atoms[placed] = trial, molecule
            placed += 1
            if placed == n_molecules:
                break
        attempts += 256
        if attempts > attempts_per_molecule * n_molecules and placed < n_molecules:
            # dense or walled boxes: relax the separation rather than give up (minimisation follows)
            separation *= 0.9
            attempts = 0
            if separation < 0.3 * min_separation:
                raise UserError(f"cannot place {n_molecules} molecules in box {box.tolist()}: lower the density or the wall coverage (sampling settings)")
    return (atoms.reshape(-1, 3)) % box
