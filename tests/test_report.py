"""The Snakemake report, checked at parse level (no job runs): every figure marked for the report has a caption
file that exists, a category naming the system and a subcategory naming the stage; the cDFT training curve and
held-out profiles are among them; the workflow's front page renders with the config hash. Budget: ~5 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from liquidscale.config import rule_settings, validate_config
from liquidscale.io import canonical_hash

REPO = Path(__file__).resolve().parents[1]
STAGES = ("1 concurrent learning (mlip)", "2 neural functional (cdft)", "3 analysis", "4 verification against FeOs",
          "4 verification against the literature", "4 direct coexistence of the potential (MD)")


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The parsed workflow (Snakemake API, no DAG built) with every kind of system in the config."""
    import yaml
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text()) | {"systems": ["water", "co2", "lj", "hard_rods", "pets"]}
    configfile = tmp_path_factory.mktemp("report") / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        api_workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(configfiles=[configfile]),
                                    storage_settings=StorageSettings(), snakefile=REPO / "Snakefile", workdir=REPO)
        yield api_workflow._workflow, config


def reported(workflow):
    return {(rule.name, str(f)): f.flags["report"] for rule in workflow.rules for f in rule.output if f.flags.get("report")}


def test_every_report_output_has_a_caption_a_system_category_and_a_stage(workflow):
    workflow, _ = workflow
    outputs = reported(workflow)
    assert len(outputs) >= 10
    for (rule, path), item in outputs.items():
        assert item.caption is not None, (rule, path)
        caption = Path(item.caption.get_path_or_uri(secret_free=True))
        assert caption.is_file() and caption.read_text().strip(), (rule, caption)
        assert item.category == "{system}" and path.startswith("results/{system"), (rule, path, item.category)
        assert item.subcategory in STAGES, (rule, item.subcategory)
        assert item.labels and "figure" in item.labels, (rule, path)
    paths = {path.split("}/", 1)[-1] for _, path in outputs}
    assert {"cdft/training.png", "cdft/heldout_profiles.png", "mlip/final/convergence.png", "coexistence/coexistence.png"} <= paths


def test_front_page_renders_the_config_hash_and_what_ran(workflow):
    import jinja2
    from docutils.core import publish_parts

    workflow, raw = workflow
    assert workflow.report_text is not None
    text = Path(workflow.report_text.get_path_or_uri(secret_free=True)).read_text()

    class Snakemake:
        config = workflow.config

    html = publish_parts(jinja2.Environment().from_string(text).render(snakemake=Snakemake), writer="html")["html_body"]
    validated = validate_config(raw, base_dir=REPO)
    assert canonical_hash(validated) in html
    assert canonical_hash(rule_settings(validated, "pets", "cdft"))[:16] in html
    for word in ("mlip", "sampling", "reference fluids", "hard_rods, pets", "analysis"):
        assert word in html
    assert "system-message" not in html  # docutils renders rst errors as system messages
