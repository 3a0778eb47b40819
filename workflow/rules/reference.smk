# PySCF reference labels (water, CO2): iteration 0's clusters -> labelling in `reference.shards` jobs ->
# one collected dataset per (system, iteration). For iterations > 0 the mlip stage writes
# configurations.extxyz (rule mlip_feed_reference) and the same label/collect rules run on it.
# Each rule's params hold only the settings it reads, so a new basis reruns labelling, not the clusters.


rule reference_configurations:
    input:
        reference_extra_configurations,
    output:
        "results/{system}/reference/iter000/configurations.extxyz",
    params:
        settings=settings_of("reference", "configurations"),
    log:
        "logs/{system}/reference/iter000/configurations.log",
    conda:
        "../../envs/pyscf.yaml"
    localrule: True
    shell:
        "liquidscale reference configurations --settings {params.settings:q} --out {output} > {log} 2>&1"


rule reference_label:
    input:
        "results/{system}/reference/iter{iteration}/configurations.extxyz",
    output:
        directory("results/{system}/reference/iter{iteration}/shards/shard{shard}"),
    params:
        settings=settings_of("reference", "label"),
    log:
        "logs/{system}/reference/iter{iteration}/label{shard}.log",
    conda:
        "../../envs/pyscf.yaml"
    benchmark:
        "benchmarks/{system}/reference/iter{iteration}/label{shard}.tsv"
    threads: config["reference"]["threads"]
    resources:
        mem_mb=config["reference"]["mem_mb"],
        runtime=runtime_by_attempt(config["reference"]["runtime"]),
        cpus_per_task=config["reference"]["threads"],
        gpu=1 if config["reference"]["use_gpu"] else 0,
    shell:
        "OMP_NUM_THREADS={threads} liquidscale reference label --settings {params.settings:q} --configurations {input}"
        " --shard {wildcards.shard} --threads {threads} --out {output} > {log} 2>&1"


rule reference_collect:
    input:
        configurations="results/{system}/reference/iter{iteration}/configurations.extxyz",
        shards=reference_shard_dirs,
    output:
        data=directory("results/{system}/reference/iter{iteration}/data"),
        labels="results/{system}/reference/iter{iteration}/labels.extxyz",
        summary="results/{system}/reference/iter{iteration}/summary.csv",
        failures="results/{system}/reference/iter{iteration}/failures.csv",
        provenance="results/{system}/reference/iter{iteration}/provenance.json",
    params:
        settings=settings_of("reference", "collect"),
    log:
        "logs/{system}/reference/iter{iteration}/collect.log",
    conda:
        "../../envs/pyscf.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
        cpus_per_task=1,
    shell:
        "liquidscale reference collect --settings {params.settings:q} --configurations {input.configurations}"
        " --out results/{wildcards.system}/reference/iter{wildcards.iteration} {input.shards} > {log} 2>&1"


rule reference:
    input:
        expand(
            "results/{system}/reference/iter000/{name}",
            system=MOLECULAR,
            name=["data", "labels.extxyz", "summary.csv", "failures.csv", "provenance.json"],
        ),
