# Concurrent learning of DeePMD potentials (water, CO2): per iteration, gather labels -> train an ensemble
# -> test -> explore -> select clusters -> (reference stage labels them as the next iteration).
# Iterations are a wildcard level with a static DAG: every selection writes one (possibly empty) extxyz.
# Raising mlip.iterations adds iterations; finished ones keep their params (see liquidscale.mlip.settings).


rule mlip_data:
    input:
        mlip_reference_data,
    output:
        directory("results/{system}/mlip/iter{iteration}/data"),
    params:
        settings=settings_of("mlip", "data"),
    log:
        "logs/{system}/mlip/iter{iteration}/data.log",
    conda:
        "../../envs/deepmd.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
        cpus_per_task=1,
    shell:
        "liquidscale mlip data --settings {params.settings:q} --iteration {wildcards.iteration} --reference {input} --out {output} > {log} 2>&1"


rule mlip_train:
    input:
        data="results/{system}/mlip/iter{iteration}/data",
        previous=mlip_previous_member,
    output:
        directory("results/{system}/mlip/iter{iteration}/model{member}"),
    wildcard_constraints:
        member=r"\d+",
    params:
        settings=settings_of("mlip", "train"),
        previous=mlip_previous_member_arg,
    log:
        "logs/{system}/mlip/iter{iteration}/train{member}.log",
    conda:
        "../../envs/deepmd.yaml"
    benchmark:
        "benchmarks/{system}/mlip/iter{iteration}/train{member}.tsv"
    threads: config["mlip"]["training"]["threads"]
    resources:
        mem_mb=config["mlip"]["training"]["mem_mb"],
        runtime=runtime_by_attempt(config["mlip"]["training"]["runtime"]),
        cpus_per_task=config["mlip"]["training"]["threads"],
        gpu=gpu_count(config["mlip"]["training"]["device"]),
    shell:
        "liquidscale mlip train --settings {params.settings:q} --iteration {wildcards.iteration} --member {wildcards.member}"
        " --data {input.data} {params.previous} --threads {threads} --out {output} > {log} 2>&1"


rule mlip_test:
    input:
        data="results/{system}/mlip/iter{iteration}/data",
        models=mlip_member_dirs,
    output:
        metrics="results/{system}/mlip/iter{iteration}/metrics.json",
        figure=report("results/{system}/mlip/iter{iteration}/learning_curve.png", caption="../report/learning_curve.rst", category="{system}",
                      subcategory="1 concurrent learning (mlip)", labels={"figure": "learning curves", "iteration": "{iteration}"}),
    params:
        settings=settings_of("mlip", "test"),
    log:
        "logs/{system}/mlip/iter{iteration}/test.log",
    conda:
        "../../envs/deepmd.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
    shell:
        "liquidscale mlip test --settings {params.settings:q} --iteration {wildcards.iteration} --data {input.data}"
        " --models {input.models} --out {output.metrics} --figure {output.figure} > {log} 2>&1"


rule mlip_explore:
    input:
        models=mlip_member_dirs,
    output:
        directory("results/{system}/mlip/iter{iteration}/explore"),
    params:
        settings=settings_of("mlip", "explore"),
    log:
        "logs/{system}/mlip/iter{iteration}/explore.log",
    conda:
        "../../envs/deepmd.yaml"
    benchmark:
        "benchmarks/{system}/mlip/iter{iteration}/explore.tsv"
    threads: config["mlip"]["explore"]["threads"]
    resources:
        mem_mb=4000,
        runtime=runtime_by_attempt(config["mlip"]["explore"]["runtime"]),
        cpus_per_task=config["mlip"]["explore"]["threads"],
        gpu=gpu_count(config["mlip"]["explore"]["device"]),
    shell:
        "liquidscale mlip explore --settings {params.settings:q} --iteration {wildcards.iteration} --models {input.models}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule mlip_select:
    input:
        explore="results/{system}/mlip/iter{iteration}/explore",
        metrics="results/{system}/mlip/iter{iteration}/metrics.json",
    output:
        selected="results/{system}/mlip/iter{iteration}/selected.extxyz",
        report="results/{system}/mlip/iter{iteration}/selection.json",
    params:
        settings=settings_of("mlip", "select"),
    log:
        "logs/{system}/mlip/iter{iteration}/select.log",
    conda:
        "../../envs/deepmd.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
        cpus_per_task=1,
    shell:
        "liquidscale mlip select --settings {params.settings:q} --iteration {wildcards.iteration} --explore {input.explore} --metrics {input.metrics}"
        " --out {output.selected} --report {output.report} > {log} 2>&1"


rule mlip_feed_reference:
    input:
        mlip_previous_selection,
    output:
        "results/{system}/reference/iter{iteration}/configurations.extxyz",
    wildcard_constraints:
        iteration=r"(?!000)\d{3}",
    log:
        "logs/{system}/mlip/iter{iteration}/feed_reference.log",
    conda:
        "../../envs/deepmd.yaml"
    localrule: True
    shell:
        "cp {input} {output} 2> {log}"


rule mlip_final:
    input:
        unpack(mlip_final_inputs),
    output:
        models=expand("results/{{system}}/mlip/final/model{member}.pth", member=mlip_members()),
        metadata="results/{system}/mlip/final/metadata.json",
        table="results/{system}/mlip/final/convergence.csv",
        figure=report("results/{system}/mlip/final/convergence.png", caption="../report/convergence.rst", category="{system}",
                      subcategory="1 concurrent learning (mlip)", labels={"figure": "convergence", "iteration": "all"}),
    params:
        settings=settings_of("mlip", "final"),
        iterations=mlip_iterations_arg,
    log:
        "logs/{system}/mlip/final.log",
    conda:
        "../../envs/deepmd.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
        cpus_per_task=1,
    shell:
        "liquidscale mlip final --settings {params.settings:q} --iterations {params.iterations}"
        " --out results/{wildcards.system}/mlip/final > {log} 2>&1"


rule mlip:
    input:
        expand("results/{system}/mlip/final/metadata.json", system=MOLECULAR),
