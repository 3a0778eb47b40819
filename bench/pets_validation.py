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
        judged = rows[(rows["status"] == "compared") & rows["within_target"].notna()]
        met = judged["within_target"].astype(str) == "True"
        print(f"rows with a target: {met.sum()} met, {(~met).sum()} missed; results missing: {(rows['status'] == 'missing').sum()}")
        for quantity, group in judged.groupby("quantity", sort=False):
            worst = group.loc[group["relative_difference"].abs().idxmax()] if quantity != "beta_mu_cc" else group.loc[group["difference"].abs().idxmax()]
            missed = group[group["within_target"].astype(str) != "True"]
            print(f"  {quantity:22s} worst {worst['difference' if quantity == 'beta_mu_cc' else 'relative_difference']:+.4f} at T = {worst['T']:.4g}"
                  f" {worst['condition'] if isinstance(worst['condition'], str) else ''}  ({len(missed)} of {len(group)} beyond {group['target'].iloc[0]})")


if __name__ == "__main__":
    main(sys.argv[1:] or ["validation/pets", "validation/pets_noisy"])
