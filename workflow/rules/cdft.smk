# Neural classical DFT: one c1 functional per system from its profile dataset. The reference fluids have
# no simulation: hard_rods' profiles.nc comes from the exact Percus functional, pets' from FeOs's classical
# DFT of the PeTS fluid (both with known mu); they then go through the same cdft and analysis rules as the
# simulated systems.


rule cdft_reference_fluid_profiles:
    output:
        "results/{system}/profiles.nc",
    params:
        settings=settings_of("cdft", "fluid-data"),
    log:
        "logs/{system}/profiles.log",
    benchmark:
        "benchmarks/{system}/profiles.tsv"
    wildcard_constraints:
        system="|".join(REFERENCE_FLUIDS) or "none",
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "OMP_NUM_THREADS=1 liquidscale cdft fluid-data --settings {params.settings:q} --out {output} > {log} 2>&1"


rule cdft_train:
    input:
        "results/{system}/profiles.nc",
    output:
        model="results/{system}/cdft/model.json",
        weights="results/{system}/cdft/model.safetensors",
        metrics="results/{system}/cdft/metrics.json",
        curve="results/{system}/cdft/training.csv",
        figure=report("results/{system}/cdft/training.png", caption="../report/cdft_training.rst", category="{system}",
                      subcategory="2 neural functional (cdft)", labels={"figure": "training curve"}),
        heldout=report("results/{system}/cdft/heldout_profiles.png", caption="../report/heldout_profiles.rst", category="{system}",
                       subcategory="2 neural functional (cdft)", labels={"figure": "held-out profiles"}),
    params:
        settings=settings_of("cdft", "train"),
    log:
        "logs/{system}/cdft/train.log",
    benchmark:
        "benchmarks/{system}/cdft/train.tsv"
    threads: config["cdft"]["threads"]
    resources:
        mem_mb=config["cdft"]["mem_mb"],
        runtime=runtime_by_attempt(config["cdft"]["runtime"]),
        cpus_per_task=config["cdft"]["threads"],
    conda:
        "../../envs/deepmd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} liquidscale cdft train --settings {params.settings:q} --profiles {input}"
        " --threads {threads} --out results/{wildcards.system}/cdft > {log} 2>&1"


rule cdft:
    input:
        expand("results/{system}/cdft/{name}", system=SYSTEMS, name=["model.json", "model.safetensors", "metrics.json"]),
