"""The mlip rules form a static DAG: iterations x members jobs, one feed into the reference stage per
later iteration, one final per system. A dry run of the repository's rules; budget ~10 s."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def job_counts(workdir: Path, *extra: str) -> dict[str, int]:
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run([snakemake, "-n", "mlip", "--cores", "1", *extra], cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}


def test_dry_run_has_one_job_per_iteration_member_and_feed(tmp_path):
    (tmp_path / "workflow").symlink_to(ROOT / "workflow")
    (tmp_path / "envs").symlink_to(ROOT / "envs")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("systems: [water, co2]\nmlip: {iterations: 3, ensemble_size: 2}\n")
    (tmp_path / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n'
        'include: "workflow/rules/common.smk"\n'
        'include: "workflow/rules/reference.smk"\n'
        'include: "workflow/rules/mlip.smk"\n'
    )
    counts = job_counts(tmp_path)
    assert counts["mlip_train"] == 2 * 3 * 2
    for rule in ("mlip_data", "mlip_test", "mlip_explore", "mlip_select", "reference_collect"):
        assert counts[rule] == 2 * 3, rule
    assert counts["mlip_feed_reference"] == 2 * 2
    assert counts["mlip_final"] == 2 and counts["mlip"] == 1
    (tmp_path / "config" / "more.yaml").write_text("mlip: {iterations: 4}\n")  # merged into config.yaml
    more = job_counts(tmp_path, "--configfile", "config/config.yaml", "config/more.yaml")
    assert more["mlip_train"] == 2 * 4 * 2 and more["mlip_feed_reference"] == 2 * 3
