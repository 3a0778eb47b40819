# liquidscale: ab initio multiscale modelling of liquids, from PySCF labels to neural-cDFT phase diagrams.
# Thin on purpose: config, validation and helpers live in workflow/rules/common.smk, one .smk per stage,
# the science in src/liquidscale. `snakemake <stage>` runs one stage (and what it needs).
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The demo campaign, read only when no --configfile is given: a config named on the command line stands
# on the schema defaults alone (`liquidscale config FILE...` prints what it resolves to).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/reference.smk"
include: "workflow/rules/mlip.smk"
include: "workflow/rules/sampling.smk"
include: "workflow/rules/cdft.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/coexistence.smk"


rule all:
    default_target: True
    input:
        rules.analysis.input,
        rules.sampling.input,  # with the state-point tables, which liquidscale status reads
        rules.coexistence_comparison.input,
