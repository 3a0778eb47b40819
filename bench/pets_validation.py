"""The PeTS verification campaigns (``make validate``) side by side: each quantity of the learned functional
against FeOs, with its target and whether it was met.

    python bench/pets_validation.py validation/pets validation/pets_noisy

Each argument is a working directory of a finished ``snakemake --configfile config/pets.yaml`` run; the
numbers come from its ``results/pets/analysis/reference.csv`` (written by the analysis_reference_comparison
rule), so this script computes nothing itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def table(workdir: Path) -> pd.DataFrame:
    path = workdir / "results" / "pets" / "analysis" / "reference.csv"
    if not path.is_file():
        sys.exit(f"{path}: not found; run `make validate` (or the pets campaign in {workdir}) first")
    return pd.read_csv(path)


def main(workdirs: list[str]) -> None:
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    for workdir in workdirs:
        rows = table(Path(workdir))
        print(f"\n## {workdir}")
        print(rows.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        judged = rows[rows["status"].isin(["met", "missed"])] if "status" in rows else rows.iloc[0:0]
        print(f"targets met: {int((judged['status'] == 'met').sum())} of {len(judged)}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["validation/pets", "validation/pets_noisy"])
