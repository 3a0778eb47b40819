# Thermodynamics from each trained functional: bulk EOS, binodal and critical point, Widom and
# Fisher-Widom lines, free interface, slit pores, comparison with experiment, figures. One CPU job
# per system (about a minute); the figures carry Snakemake report captions (workflow/report/*.rst).


rule analysis_system:
    input:
        model="results/{system}/cdft/model.json",
        weights="results/{system}/cdft/model.safetensors",
        profiles="results/{system}/profiles.nc",
    output:
        eos="results/{system}/analysis/eos.nc",
        binodal="results/{system}/analysis/binodal.csv",
        critical="results/{system}/analysis/critical_point.csv",
        widom="results/{system}/analysis/widom.csv",
        fisher_widom="results/{system}/analysis/fisher_widom.csv",
        interface="results/{system}/analysis/interface.csv",
        pores="results/{system}/analysis/pores.csv",
        pore_isotherms="results/{system}/analysis/pore_isotherms.csv",
        summary="results/{system}/analysis/summary.json",
        phase_diagram=report("results/{system}/analysis/phase_diagram.png", caption="../report/phase_diagram.rst", category="{system}", subcategory="3 analysis",
                     labels={"figure": "phase diagram"}),
        pressure=report("results/{system}/analysis/pressure_temperature.png", caption="../report/pressure_temperature.rst", category="{system}", subcategory="3 analysis",
                     labels={"figure": "pressure-temperature"}),
        isotherms=report("results/{system}/analysis/isotherms.png", caption="../report/isotherms.rst", category="{system}", subcategory="3 analysis",
                     labels={"figure": "isotherms"}),
        pores_figure=report("results/{system}/analysis/pores.png", caption="../report/pores.rst", category="{system}", subcategory="3 analysis",
                     labels={"figure": "slit pores"}),
        profiles_figure=report("results/{system}/analysis/profiles.png", caption="../report/profiles.rst", category="{system}", subcategory="3 analysis",
                     labels={"figure": "profiles"}),
        svg=expand("results/{{system}}/analysis/{name}.svg", name=ANALYSIS_FIGURES),
    params:
        settings=settings_of("analysis", "run"),
        out="results/{system}/analysis",
    log:
        "logs/{system}/analysis/run.log",
    benchmark:
        "benchmarks/{system}/analysis/run.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        cpus_per_task=1,
    shell:
        "OMP_NUM_THREADS={threads} liquidscale analysis run --settings {params.settings:q} --model results/{wildcards.system}/cdft"
        " --profiles {input.profiles} --out {params.out} --threads {threads} > {log} 2>&1"


rule analysis_reference_comparison:
    """The PeTS functional's phase diagram beside FeOs's own answers for the same fluid (verification rung 2)."""
    input:
        summary="results/{system}/analysis/summary.json",
    output:
        table="results/{system}/analysis/reference.csv",
        figure=report("results/{system}/analysis/reference.png", caption="../report/reference.rst", category="{system}",
                      subcategory="4 verification against FeOs", labels={"figure": "learned functional vs FeOs"}),
        svg="results/{system}/analysis/reference.svg",
    params:
        settings=settings_of("analysis", "pets-reference"),
    log:
        "logs/{system}/analysis/reference.log",
    wildcard_constraints:
        system="pets",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
    shell:
        "OMP_NUM_THREADS={threads} liquidscale analysis pets-reference --settings {params.settings:q}"
        " --analysis results/{wildcards.system}/analysis --out results/{wildcards.system}/analysis > {log} 2>&1"


rule analysis_lj_reference_comparison:
    """The lj functional's phase diagram beside the published LJTS (2.5 sigma) data, FeOs's PeTS EOS as a second reference."""
    input:
        summary="results/{system}/analysis/summary.json",
    output:
        table="results/{system}/analysis/reference.csv",
        figure=report("results/{system}/analysis/reference.png", caption="../report/lj_reference.rst", category="{system}",
                      subcategory="4 verification against the literature", labels={"figure": "learned functional vs LJTS literature"}),
        svg="results/{system}/analysis/reference.svg",
    params:
        settings=settings_of("analysis", "lj-reference"),
        cutoff=config["sampling"]["lj"]["cutoff"],
    log:
        "logs/{system}/analysis/reference.log",
    wildcard_constraints:
        system="lj",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
    shell:
        "OMP_NUM_THREADS={threads} liquidscale analysis lj-reference --settings {params.settings:q} --cutoff {params.cutoff}"
        " --analysis results/{wildcards.system}/analysis --out results/{wildcards.system}/analysis > {log} 2>&1"


# the comparisons with a reference: FeOs for pets; the LJTS literature for lj, which holds for the 2.5 sigma cutoff only
REFERENCE_SYSTEMS = [s for s in SYSTEMS if s == "pets" or (s == "lj" and config["sampling"]["lj"]["cutoff"] == 2.5)]


rule analysis:
    input:
        expand("results/{system}/analysis/summary.json", system=SYSTEMS),
        expand("results/{system}/analysis/reference.csv", system=REFERENCE_SYSTEMS),
