# Coexistence: the potential's own liquid-vapour coexistence by direct MD, the reference the functional's binodal
# is checked against (verification rung 4). One job per system runs a free slab at each of
# coexistence.<system>.temperatures (water, CO2: the final DeePMD model, the temperatures batched on one GPU; lj:
# the LJTS potential, LAMMPS or torch as sampling.lj.engine) and writes the plateau densities with block errors,
# the centred profiles and the liquid's site-site g(r) with its first shell beside published values
# (data/reference/rdf_peaks.csv).


rule coexistence_slabs:
    input:
        model=sampling_model,
    output:
        table="results/{system}/coexistence/coexistence.csv",
        profiles="results/{system}/coexistence/profiles.csv",
        rdf="results/{system}/coexistence/rdf.csv",
        rdf_peaks="results/{system}/coexistence/rdf_peaks.csv",
        figure=report("results/{system}/coexistence/coexistence.png", caption="../report/coexistence.rst", category="{system}",
                      subcategory="4 direct coexistence of the potential (MD)", labels={"figure": "slab coexistence"}),
        provenance="results/{system}/coexistence/provenance.json",
    params:
        settings=settings_of("coexistence", "run"),
        model=sampling_model_arg,
    log:
        "logs/{system}/coexistence.log",
    benchmark:
        "benchmarks/{system}/coexistence.tsv"
    conda:
        "../../envs/deepmd.yaml"
    wildcard_constraints:
        system="|".join(SAMPLED) or "none",
    threads: config["coexistence"]["threads"]
    resources:
        mem_mb=config["coexistence"]["mem_mb"],
        runtime=config["coexistence"]["runtime"],
        cpus_per_task=config["coexistence"]["threads"],
        gpu=coexistence_gpus,
    shell:
        "OMP_NUM_THREADS={threads} liquidscale coexistence run --settings {params.settings:q} --threads {threads} {params.model}"
        " --out results/{wildcards.system}/coexistence > {log} 2>&1"


rule coexistence_functional_comparison:
    """The functional's binodal beside the direct slab densities of the same potential (verification rung 4)."""
    input:
        binodal="results/{system}/analysis/binodal.csv",
        critical="results/{system}/analysis/critical_point.csv",
        summary="results/{system}/analysis/summary.json",
        direct="results/{system}/coexistence/coexistence.csv",
    output:
        table="results/{system}/coexistence/functional_vs_direct.csv",
        figure=report("results/{system}/coexistence/functional_vs_direct.png", caption="../report/functional_vs_direct.rst", category="{system}",
                      subcategory="4 direct coexistence of the potential (MD)", labels={"figure": "functional vs direct coexistence"}),
    params:
        settings=settings_of("coexistence", "compare"),
    log:
        "logs/{system}/coexistence_comparison.log",
    wildcard_constraints:
        system="|".join(SAMPLED) or "none",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        cpus_per_task=1,
    shell:
        "liquidscale coexistence compare --analysis results/{wildcards.system}/analysis --coexistence results/{wildcards.system}/coexistence"
        " --settings {params.settings:q} --out results/{wildcards.system}/coexistence > {log} 2>&1"


rule coexistence:
    input:
        expand("results/{system}/coexistence/coexistence.csv", system=SAMPLED),


# rung 4 needs both sides: the functional (the whole campaign) and the direct slabs
rule coexistence_comparison:
    input:
        expand("results/{system}/coexistence/functional_vs_direct.csv", system=SAMPLED),
