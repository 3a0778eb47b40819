"""How the workflow's jobs find the ``liquidscale`` command, whichever environment runs them.

The rules call ``liquidscale ...``; ``workflow/bin/liquidscale`` answers it. In the .venv route it runs the
interpreter that runs Snakemake (which has already imported liquidscale to read the Snakefile), so
``.venv/bin/snakemake`` works without activating the venv. With ``--software-deployment-method conda``
a job's environment (envs/*.yaml) holds the dependencies only: its own ``python`` runs this checkout's
``src/``, so there is no package path to resolve inside Snakemake's copy of the env file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def job_environment(environ: Mapping[str, str], workflow_dir: str | Path, python: str, conda: bool) -> dict[str, str]:
    """The variables to set for the jobs of the workflow whose Snakefile is in ``workflow_dir``."""
    workflow_dir = Path(workflow_dir).resolve()
    updates = {"PATH": os.pathsep.join(filter(None, [str(workflow_dir / "workflow" / "bin"), environ.get("PATH")]))}
    if conda:
        updates["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workflow_dir / "src"), environ.get("PYTHONPATH")]))
        updates["LIQUIDSCALE_PYTHON"] = ""
    else:
        updates["LIQUIDSCALE_PYTHON"] = python
    return updates
