"""Inputs that several test files build the same way: a labelled reference iteration, a dpdata folder of water."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ase
import ase.io
import numpy as np
import yaml

from liquidscale.cli import main
from liquidscale.reference import action_settings


def write_radical(path: Path) -> None:
    """An extra configuration that PySCF cannot label as a closed shell (an OH radical): a failed frame."""
    ase.io.write(path, [ase.Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], info={"source": "radical"})])


def label_reference_iteration(config: dict, it: Path, shards: int = 2) -> Path:
    """Run configurations -> label (``shards`` shards) -> collect of water for the validated ``config`` into ``it``."""
    confs = it / "configurations.extxyz"

    def settings(action):
        return json.dumps(action_settings(config, "water", action))

    assert main(["reference", "configurations", "--settings", settings("configurations"), "--out", str(confs)]) == 0
    shard_dirs = [str(it / "shards" / f"shard{k:02d}") for k in range(shards)]
    for k, shard in enumerate(shard_dirs):
        assert main(["reference", "label", "--settings", settings("label"), "--configurations", str(confs), "--shard", str(k), "--out", shard]) == 0
    assert main(["reference", "collect", "--settings", settings("collect"), "--configurations", str(confs), "--out", str(it), *shard_dirs]) == 0
    return it


def write_water_frames(folder: Path, frames: int = 6) -> None:
    """A dpdata deepmd/npy folder of slightly distorted water monomers (labels are arbitrary numbers: only the files matter)."""
    import dpdata

    from liquidscale.molecules import WATER

    rng = np.random.default_rng(0)
    dpdata.LabeledSystem(
        data={
            "atom_names": list(WATER.type_map),
            "atom_numbs": [WATER.symbols.count(el) for el in WATER.type_map],
            "atom_types": np.array([WATER.type_map.index(s) for s in WATER.symbols]),
            "orig": np.zeros(3),
            "cells": np.zeros((frames, 3, 3)),
            "coords": WATER.geometry()[None] + 0.05 * rng.normal(size=(frames, 3, 3)),
            "energies": rng.normal(size=frames),
            "forces": rng.normal(size=(frames, 3, 3)),
            "nopbc": True,
        }
    ).to_deepmd_npy(str(folder))


def run_campaign(workdir: Path, configfiles: list[Path], overrides: dict, cores: int, timeout: int, targets: tuple[str, ...] = ()) -> None:
    """Run the workflow in ``workdir`` on ``configfiles`` plus ``overrides`` (written as a last config file), as a
    user would from the command line; a failed run fails the test with the tail of Snakemake's output."""
    repo = Path(__file__).resolve().parents[1]
    extra = workdir / "overrides.yaml"
    extra.write_text(yaml.safe_dump(overrides))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir), "--cores", str(cores),
         "--configfile", *map(str, configfiles), str(extra), *(("--", *targets) if targets else ())],
        capture_output=True, text=True, timeout=timeout,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
