# Sampling: MD of water, CO2 (final DeePMD model) and the Lennard-Jones fluid under seeded random planar
# external potentials. The state-point table fixes every run, so the DAG is static: one job per batch
# of `sampling.replicas_per_job` replicas, then one streaming aggregation into profiles.nc per system.
# A batch derives its own rows of the table from its params (statepoints.csv is the table for people),
# so raising sampling.runs adds batches and reruns none; batches resume from their checkpoints.


rule sampling_statepoints:
    output:
        "results/{system}/sampling/statepoints.csv",
    params:
        settings=settings_of("sampling", "statepoints"),
    log:
        "logs/{system}/sampling/statepoints.log",
    conda:
        "../../envs/deepmd.yaml"
    wildcard_constraints:
        system="|".join(SAMPLED) or "none",
    localrule: True
    shell:
        "liquidscale sampling statepoints --settings {params.settings:q} --out {output} > {log} 2>&1"


rule sampling_batch:
    input:
        model=sampling_model,
    output:
        "results/{system}/sampling/batch{batch}.nc",
    params:
        settings=settings_of("sampling", "batch"),
        model=sampling_model_arg,
    log:
        "logs/{system}/sampling/batch{batch}.log",
    benchmark:
        "benchmarks/{system}/sampling/batch{batch}.tsv"
    conda:
        "../../envs/deepmd.yaml"
    wildcard_constraints:
        system="|".join(SAMPLED) or "none",
        batch=r"\d{4}",
    threads: config["sampling"]["threads"]
    resources:
        mem_mb=config["sampling"]["mem_mb"],
        runtime=runtime_by_attempt(config["sampling"]["runtime"]),
        cpus_per_task=config["sampling"]["threads"],
        gpu=gpu_count(config["sampling"]["device"]),
        checkpoint_minutes=config["sampling"]["checkpoint_minutes"],
    shell:
        "OMP_NUM_THREADS={threads} liquidscale sampling batch --settings {params.settings:q}"
        " --threads {threads} --checkpoint-minutes {resources.checkpoint_minutes} {params.model} --out {output} > {log} 2>&1"


rule profiles_aggregate:
    input:
        sampling_batch_files,
    output:
        "results/{system}/profiles.nc",
    params:
        settings=settings_of("sampling", "aggregate"),
    log:
        "logs/{system}/profiles.log",
    benchmark:
        "benchmarks/{system}/profiles.tsv"
    conda:
        "../../envs/analysis.yaml"
    wildcard_constraints:
        system="|".join(SAMPLED) or "none",
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=1,
    shell:
        "liquidscale sampling aggregate --settings {params.settings:q} --out {output} {input} > {log} 2>&1"


rule sampling:
    input:
        expand("results/{system}/sampling/batch{batch}.nc", system=SAMPLED, batch=sampling_batches()),
        expand("results/{system}/sampling/statepoints.csv", system=SAMPLED),


rule profiles:
    input:
        expand("results/{system}/profiles.nc", system=SAMPLED),
