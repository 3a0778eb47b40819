# liquidscale: ab initio multiscale modelling of liquids, from PySCF labels to neural-cDFT phase diagrams.
# Thin on purpose: config, validation and helpers live in workflow/rules/common.smk, one .smk per stage,
# the science in src/liquidscale. `snakemake <stage>` runs one stage (and what it needs).
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/reference.smk"
include: "workflow/rules/mlip.smk"
include: "workflow/rules/sampling.smk"
include: "workflow/rules/cdft.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        rules.analysis.input,
