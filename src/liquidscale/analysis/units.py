"""Laboratory units beside internal ones, and the experimental saturation data drawn beside results.

Internal units for water and CO2: number density of the density site in Å^-3 (one site per molecule,
so it is the molecular number density), energy in eV, T in K. Reported beside them: kg/m^3 (with
the molar mass of the molecule) and MPa.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..molecules import MOLECULES, get_molecule

AVOGADRO = 6.02214076e23  # 1/mol
ELECTRONVOLT = 1.602176634e-19  # J
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"  # package data
REFERENCE_FILES = {"water": "water_saturation_iapws.csv", "co2": "co2_saturation_span_wagner.csv"}


def has_lab_units(system: str) -> bool:
    return system in MOLECULES


def kg_per_m3(rho_per_A3, system: str):
    """Molecular number density in Å^-3 -> mass density in kg/m^3."""
    return np.asarray(rho_per_A3) * 1e30 * get_molecule(system).mass * 1e-3 / AVOGADRO


def megapascal(p_eV_per_A3):
    """Pressure in eV/Å^3 -> MPa."""
    return np.asarray(p_eV_per_A3) * ELECTRONVOLT * 1e30 / 1e6


def experimental_saturation(system: str):
    """The experimental saturation table (pandas DataFrame) and its header comment (Tc, pc, rho_c)."""
    import pandas as pd

    path = REFERENCE_DIR / REFERENCE_FILES[system]
    header = path.read_text().splitlines()[0].lstrip("# ").strip()
    return pd.read_csv(path, comment="#"), header


def experimental_critical_point(header: str) -> dict[str, float]:
    """Tc [K], pc [MPa], rho_c [kg/m^3] parsed from the reference file's header comment."""
    import re

    return {key: float(value) for key, value in re.findall(r"\b(Tc|pc|rho_c)=([0-9.]+)", header)}
