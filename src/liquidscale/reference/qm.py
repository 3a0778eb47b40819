"""PySCF labelling: total energy (eV) and analytic forces (eV/Å) of one finite configuration.

A self-consistent field that does not converge is retried with increasingly robust settings
(damping, level shift, second-order solver); a frame that still fails raises :class:`LabelFailure`
with the reason, so the caller can record it instead of losing it. Coordinates are handed to PySCF
in Bohr converted with the CODATA 2022 constant below, so energies, forces and finite differences
all use one consistent set of constants (PySCF's own ``nist.BOHR`` is an older CODATA value).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError

# CODATA 2022 (NIST): Hartree energy in eV and the Bohr radius in Å.
HARTREE_TO_EV = 27.211386245981
BOHR_TO_ANGSTROM = 0.529177210544
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_TO_EV / BOHR_TO_ANGSTROM

# Retry ladder for a non-converging SCF; each attempt starts from a fresh initial guess.
ATTEMPTS = ("diis", "damping", "level_shift", "newton")

# Elements of the molecular systems; check_method verifies the basis covers all of them.
ELEMENTS = ("H", "C", "O")

logger = logging.getLogger(__name__)


class LabelFailure(Exception):
    """A frame that could not be labelled; the message is the reason written to the failure table."""


@dataclass(frozen=True)
class Label:
    energy: float  # eV, total electronic + nuclear repulsion (+ dispersion) energy
    forces: np.ndarray  # (n_atoms, 3) eV/Å, minus the analytic nuclear gradient
    attempt: str  # which entry of ATTEMPTS converged
    seconds: float  # wall time of SCF + gradient, all attempts
    cycles: int = 0  # SCF cycles of the converged attempt (0: the solver does not count them)


def is_hartree_fock(xc: str) -> bool:
    return xc.strip().upper() in {"HF", "RHF"}


def check_method(method: Mapping[str, Any]) -> None:
    """Raise UserError naming ``reference.method.xc`` / ``.basis`` if PySCF does not know them.

    Imports only PySCF's basis parser and libxc binding (~0.7 s), not the SCF gradient machinery.
    """
    xc, basis = method.get("xc", "PBE"), method.get("basis", "def2-SVP")
    if not is_hartree_fock(xc):
        from pyscf.dft import libxc

        try:
            libxc.parse_xc(xc)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"config key 'reference.method.xc': '{xc}' is not HF or a functional libxc knows ({exc})") from None
    from pyscf.gto import basis as gto_basis

    for element in ELEMENTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                shells = gto_basis.load(basis, element)
            except Exception as exc:  # PySCF raises BasisNotFoundError, KeyError or RuntimeError by format
                raise UserError(f"config key 'reference.method.basis': '{basis}' is not a basis set PySCF knows ({type(exc).__name__})") from None
        if not shells:
            raise UserError(f"config key 'reference.method.basis': '{basis}' has no functions for element {element}")


def gpu_available() -> bool:
    """True when gpu4pyscf is importable (it needs a CUDA device to import)."""
    try:
        import gpu4pyscf  # noqa: F401
    except Exception:
        return False
    return True


def build_molecule(symbols: Sequence[str], positions: np.ndarray, basis: str):
    """A neutral closed-shell PySCF molecule; positions in Å."""
    from pyscf import gto

    bohr = np.asarray(positions, dtype=float) / BOHR_TO_ANGSTROM
    mol = gto.Mole()
    mol.atom = [(s, tuple(xyz)) for s, xyz in zip(symbols, bohr)]
    mol.unit = "Bohr"
    mol.basis = basis
    mol.charge = 0
    mol.spin = 0
    mol.verbose = 0
    try:
        mol.build()
    except RuntimeError as exc:  # e.g. odd electron count for spin 0
        raise LabelFailure(f"cannot build molecule: {exc}") from None
    return mol


def _base_scf(mol, method: Mapping[str, Any]):
    from pyscf import dft, scf

    if is_hartree_fock(method["xc"]):
        mf = scf.RHF(mol)
    else:
        mf = dft.RKS(mol, xc=method["xc"])
        mf.grids.level = method["grid_level"]
    if method.get("dispersion"):
        mf.disp = method["dispersion"]
    mf.conv_tol = method["conv_tol"]
    mf.max_cycle = method["max_cycle"]
    mf.verbose = 0
    if method["density_fit"]:
        mf = mf.density_fit()
    return mf


def _configure_attempt(mf, attempt: str):
    """The SCF object for one rung of the retry ladder."""
    if attempt == "damping":
        mf.damp = 0.5
        mf.diis_start_cycle = max(2, mf.max_cycle // 3)
    elif attempt == "level_shift":
        mf.level_shift = 0.5
    elif attempt == "newton":
        mf = mf.newton()
    return mf


def _to_numpy(array) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array, dtype=float)


def label(symbols: Sequence[str], positions: np.ndarray, method: Mapping[str, Any], use_gpu: bool = False) -> Label:
    """Energy and forces of one configuration, walking the retry ladder until an SCF converges."""
    start = time.perf_counter()
    mol = build_molecule(symbols, positions, method["basis"])
    for attempt in ATTEMPTS:
        mf = _configure_attempt(_base_scf(mol, method), attempt)
        if use_gpu:
            mf = mf.to_gpu()
        energy = float(mf.kernel())
        cycles = int(getattr(mf, "cycles", 0) or 0)
        if mf.converged and np.isfinite(energy):
            gradient = _to_numpy(mf.nuc_grad_method().kernel())
            return Label(
                energy=energy * HARTREE_TO_EV,
                forces=-gradient * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
                attempt=attempt,
                seconds=time.perf_counter() - start,
                cycles=cycles,
            )
        logger.info("SCF (%s) not converged after %d cycles (E = %.8g Ha)%s", attempt, cycles, energy,
                    "" if attempt == ATTEMPTS[-1] else f"; retrying with {ATTEMPTS[ATTEMPTS.index(attempt) + 1]}")
    raise LabelFailure(f"SCF not converged after attempts {'/'.join(ATTEMPTS)} (max_cycle={method['max_cycle']}, conv_tol={method['conv_tol']:g})")


def label_shard(frames: Sequence, method: Mapping[str, Any], type_map: Sequence[str], shard: int, use_gpu: bool = False, log=logger.info):
    """Label ``frames``; return (labelled ase Atoms, failure rows). A frame that raises is recorded, never lost.

    ``log`` gets one line per frame (the job log by default)."""
    from ..molecules import formula
    from .output import failure_row, labelled_atoms

    atoms_list, failures = [], []
    for i, frame in enumerate(frames, 1):
        name = f"frame {i} of {len(frames)} (id {frame.info['frame']}, {formula(frame.symbols, type_map)})"
        try:
            result = label(frame.symbols, frame.positions, method, use_gpu=use_gpu)
        except LabelFailure as exc:
            reason = str(exc)
        except (ArithmeticError, LookupError, RuntimeError, ValueError) as exc:  # incl. numpy's LinAlgError
            reason = f"{type(exc).__name__}: {exc}"  # PySCF's errors for a pathological geometry
        else:
            atoms_list.append(labelled_atoms(frame, result.energy, result.forces, scf_attempt=result.attempt, seconds=round(result.seconds, 3), shard=shard))
            log(f"{name}: E = {result.energy:.6f} eV, converged with {result.attempt} in {result.cycles or '?'} SCF cycles, {result.seconds:.1f} s")
            continue
        failures.append(failure_row(frame, reason, type_map))
        log(f"{name}: FAILED, {reason}")
    return atoms_list, failures
