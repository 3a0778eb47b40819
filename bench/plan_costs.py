"""Measure the per-unit costs `liquidscale plan` uses and write them as src/liquidscale/data/costs.yaml.

Three measurements, all on this machine's CPU, one thread, CPU time (not wall time: the machine is shared):
  demo   -- from a finished `make demo` folder: each benchmarked job's cpu_time (Snakemake `benchmark:`
            files) divided by its units of work from the same workflow functions the plan uses (frames
            and atoms per shard from summary.csv/failures.csv, atom-steps per MD job, training steps,
            cDFT network evaluations with the epochs actually run); the short unbenchmarked jobs from
            the start and finish times in the demo's Snakemake log (wall seconds).
  scf    -- one PySCF label (energy + forces) of clusters of 1..k molecules at a production level of theory.
  deepmd -- a DeePMD model of a production config's size, trained for a few steps on the demo's labels:
            the cost per training step (difference of two step counts), and its evaluation on a 192-atom
            water box against the demo's final model on the same box (the ratio scales the demo's MD rate).
Run: `python bench/plan_costs.py DEMO_DIR [--production config/water.yaml config/co2.yaml] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from liquidscale.io import read_json
from liquidscale.molecules import get_molecule
from liquidscale.reference.configurations import assign_shards, number_frames, read_extxyz
from liquidscale.plan import ATOMS_PER_MOLECULE, Workload, cdft_width, deepmd_macs_per_atom, load_config, neighbours_within_cutoff

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = re.compile(r"benchmarks/(?P<system>\w+)/(?P<path>.+)\.tsv$")


def cpu_time(path: Path) -> float:
    return float(pd.read_csv(path, sep="\t")["cpu_time"].iloc[0])


def demo_units(demo: Path) -> dict:
    config = load_config([demo / "config" / "config.yaml"])
    work = Workload(config)
    bench = demo / "benchmarks"
    results = demo / "results"
    label_units, label_cpu = [], []
    md_steps, md_cpu = 0.0, 0.0
    train_cpu, cdft_units, cdft_cpu, analysis_cpu, aggregate_cpu = [], 0.0, 0.0, [], []
    for system in config["systems"]:
        for tsv in sorted((bench / system / "reference").glob("iter*/label*.tsv")):
            iteration, shard = tsv.parent.name, int(tsv.stem[5:])
            configurations = str(results / system / "reference" / iteration / "configurations.extxyz")
            frames = assign_shards(number_frames(read_extxyz(configurations, get_molecule(system), configurations)), config["reference"]["shards"])[shard]
            label_units.append(float(sum(len(f.symbols) ** 3 for f in frames)))
            label_cpu.append(cpu_time(tsv))
        for tsv in sorted((bench / system / "mlip").glob("iter*/train*.tsv")):
            train_cpu.append(cpu_time(tsv) / config["mlip"]["training"]["steps"])
        for tsv in sorted((bench / system / "mlip").glob("iter*/explore.tsv")):
            md_steps += work.explore_atom_steps(system, int(tsv.parent.name[4:]))
            md_cpu += cpu_time(tsv)
        for tsv in sorted((bench / system / "sampling").glob("batch*.tsv")):
            md_steps += work.sampling_atom_steps(system, int(tsv.stem[5:]))
            md_cpu += cpu_time(tsv)
        aggregate_cpu.append(cpu_time(bench / system / "profiles.tsv"))
        metrics = read_json(results / system / "cdft" / "metrics.json")
        cdft = config["cdft"]
        evaluations = metrics["epochs"] * cdft["lbfgs_iterations"] + cdft["warmup_passes"]
        cdft_units += evaluations * config["sampling"]["runs"] * config["profiles"]["split"][0] * work.profile_bins(system) * cdft_width(cdft["channels"])
        cdft_cpu += cpu_time(bench / system / "cdft" / "train.tsv")
        analysis_cpu.append(cpu_time(bench / system / "analysis" / "run.tsv"))
    # labelling shard = overhead + a * sum(atoms^3): least squares over the shards
    A = np.column_stack([np.ones(len(label_units)), label_units])
    (overhead, per_atom3), *_ = np.linalg.lstsq(A, np.array(label_cpu), rcond=None)
    method = config["reference"]["method"]
    size = deepmd_macs_per_atom(config["mlip"], neighbours_within_cutoff(config, "water"))
    where = f"make demo (config/config.yaml) of {datetime.date.today().isoformat()}"
    return {
        "scf": [{"xc": method["xc"], "basis": method["basis"], "dispersion": method.get("dispersion"), "seconds_per_atom3": float(per_atom3), "device": "cpu",
                 "measured_on": f"{len(label_cpu)} labelling jobs of {where}, water and CO2 clusters of 3-9 atoms: cpu_time = overhead + a sum(atoms^3), least squares"}],
        "scf_job_overhead": {"seconds": max(float(overhead), 0.0), "measured_on": f"the same fit ({where})"},
        "deepmd_training": [{"macs_per_atom": size, "seconds_per_step": statistics.mean(train_cpu), "device": "cpu",
                             "measured_on": f"{len(train_cpu)} mlip_train jobs of {where} (demo model, 1 thread; cpu_time / steps, start-up and freeze included)"}],
        "deepmd_md": [{"macs_per_atom": size, "seconds_per_atom_step": md_cpu / md_steps, "device": "cpu",
                       "measured_on": f"the mlip_explore and sampling_batch jobs of {where} (demo model, 1 thread; cpu_time / atom-steps)"}],
        "cdft_training": {"seconds_per_unit": cdft_cpu / cdft_units, "measured_on": f"the cdft_train jobs of {where} (cpu_time / (network evaluations x training runs x bins x channel width), epochs actually run)"},
        "aggregation": {"overhead_seconds": statistics.mean(aggregate_cpu), "seconds_per_run_bin": None,
                        "measured_on": f"profiles_aggregate of {where} (start-up dominated)"},
        "jobs": {"analysis_system": {"seconds": statistics.mean(analysis_cpu), "measured_on": f"analysis_system jobs of {where} (the demo's analysis settings)"},
                 **short_jobs(demo, where)},
    }


def short_jobs(demo: Path, where: str) -> dict:
    """Unbenchmarked rules: mean wall seconds from 'rule X:'/'jobid: N' to 'Finished jobid: N' in the Snakemake log."""
    log = sorted((demo / ".snakemake" / "log").glob("*.snakemake.log"))[-1].read_text()
    stamp = r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]"
    started, finished, rule_of = {}, {}, {}
    for when, rule, jobid in re.findall(stamp + r"\n(?:local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)", log):
        started[jobid], rule_of[jobid] = datetime.datetime.strptime(when, "%a %b %d %H:%M:%S %Y"), rule
    for when, jobid in re.findall(stamp + r"\nFinished jobid: (\d+)", log):
        finished[jobid] = datetime.datetime.strptime(when, "%a %b %d %H:%M:%S %Y")
    seconds = defaultdict(list)
    for jobid, rule in rule_of.items():
        if jobid in finished:
            seconds[rule].append((finished[jobid] - started[jobid]).total_seconds())
    benchmarked = {"reference_label", "mlip_train", "mlip_explore", "sampling_batch", "profiles_aggregate", "cdft_train", "analysis_system", "all"}
    return {rule: {"seconds": statistics.mean(values), "measured_on": f"{len(values)} jobs of {where}: wall time in its Snakemake log (1 s resolution, shared machine)"}
            for rule, values in sorted(seconds.items()) if rule not in benchmarked}


def scf_units(configfile: Path, system: str, sizes: list[int]) -> dict:
    from liquidscale.molecules import get_molecule
    from liquidscale.reference.configurations import initial_clusters
    from liquidscale.reference.qm import label

    config = load_config([configfile])
    method = config["reference"]["method"]
    frames = initial_clusters(get_molecule(system), dict(config["reference"]["initial"], cluster_sizes=sizes, frames_per_size=1), 1)
    timings = []
    for frame in frames:
        start = time.process_time()
        label(frame.symbols, frame.positions, method)
        timings.append((len(frame.symbols), time.process_time() - start))
    atoms, seconds = timings[-1]
    slope = np.polyfit(np.log([a for a, _ in timings]), np.log([s for _, s in timings]), 1)[0]
    return {"xc": method["xc"], "basis": method["basis"], "dispersion": method.get("dispersion"), "seconds_per_atom3": seconds / atoms**3, "device": "cpu",
            "measured_on": f"one {system} label per cluster size ({', '.join(f'{a} atoms {s:.1f} s' for a, s in timings)}; CPU s, 1 thread): "
                           f"a = s / atoms^3 at the largest; measured exponent {slope:.2f}"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def deepmd_units(demo: Path, configfile: Path, demo_md_rate: float, demo_size: float) -> tuple[dict, dict]:
    """A production-size water model: training s/step (two step counts differenced) and MD rate scaled by
    its evaluation cost relative to the demo's final model on the same 192-atom box."""
    import torch

    from liquidscale.mlip import training
    from liquidscale.mlip.deepmd_potential import DeepMDPotential

    torch.set_num_threads(1)
    config = load_config([configfile])
    mlip = config["mlip"]
    neighbours = neighbours_within_cutoff(config, "water")
    sel = [round(neighbours / 3), round(2 * neighbours / 3)]
    size = deepmd_macs_per_atom({**mlip, "descriptor": {**mlip["descriptor"], "sel": sel}}, neighbours)
    data = sorted(p for p in (demo / "results" / "water" / "reference" / "iter000" / "data").iterdir() if p.is_dir())
    cpu = {}
    with tempfile.TemporaryDirectory() as scratch:
        for steps in (10, 60):
            folder = Path(scratch) / f"steps{steps}"
            folder.mkdir()
            settings = {**mlip, "training": {**mlip["training"], "steps": steps, "decay_steps": steps}}
            (folder / "input.json").write_text(json.dumps(training.training_input(settings, ["O", "H"], sel, [str(p) for p in data], 1)))
            before = _children_cpu()
            model = training.train_and_freeze(folder / "input.json", folder, 1)
            cpu[steps] = _children_cpu() - before
        per_step = (cpu[60] - cpu[10]) / 50
        box = 12.42  # 64 molecules at 0.0334 Å^-3
        grid = (np.arange(4) + 0.5) * box / 4
        centres = np.array([[x, y, z] for x in grid for y in grid for z in grid])
        water = np.array([[0, 0, 0], [0.757, 0.586, 0], [-0.757, 0.586, 0]])
        positions = (centres[:, None, :] + water[None]).reshape(-1, 3)[None]
        symbols = ["O", "H", "H"] * 64
        seconds = {}
        for name, path in (("production", model), ("demo", demo / "results" / "water" / "mlip" / "final" / "model0.pth")):
            potential = DeepMDPotential(path, symbols)
            potential(positions, np.array([[box] * 3]))
            start = time.process_time()
            for _ in range(5):
                potential(positions, np.array([[box] * 3]))
            seconds[name] = (time.process_time() - start) / 5
    ratio = seconds["production"] / seconds["demo"]
    source = f"water model of {configfile.name}'s size (sel {sel})"
    train = {"macs_per_atom": size, "seconds_per_step": per_step, "device": "cpu",
             "measured_on": f"{source}: dp --pt train of 60 minus 10 steps on the demo's water labels, CPU s / 50, 1 thread"}
    md = {"macs_per_atom": size, "seconds_per_atom_step": demo_md_rate * ratio, "device": "cpu",
          "measured_on": f"{source}: the demo's MD rate x {ratio:.3g}, the ratio of its energy+forces evaluation on a 192-atom water box "
                         f"({seconds['production'] * 1e3:.0f} ms) to the demo model's ({seconds['demo'] * 1e3:.1f} ms), CPU, 1 thread"}
    return train, md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a finished `make demo` folder (benchmarks/, results/, .snakemake/log)")
    parser.add_argument("--production", nargs="*", type=Path, default=[], help="production configs whose SCF level and model size to measure")
    parser.add_argument("--out", type=Path, default=REPO / "src" / "liquidscale" / "data" / "costs.yaml")
    args = parser.parse_args()
    units = demo_units(args.demo)
    for configfile in args.production:
        config = load_config([configfile])
        for system in (s for s in config["systems"] if s in ATOMS_PER_MOLECULE and s != "lj"):
            units["scf"].append(scf_units(configfile, system, [1, 2, 3]))
        if "water" in config["systems"]:
            demo_size = units["deepmd_md"][0]["macs_per_atom"]
            train, md = deepmd_units(args.demo, configfile, units["deepmd_md"][0]["seconds_per_atom_step"], demo_size)
            units["deepmd_training"].append(train)
            units["deepmd_md"].append(md)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    table = {
        "machine": f"{cpu}, {len([l for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('processor')])} cores shared with other work; CPU only (no GPU rate measured)",
        "date": datetime.date.today().isoformat(),
        "how": "bench/plan_costs.py (see its docstring); one-thread CPU seconds per unit of work",
        "units": units,
    }
    args.out.write_text("# Written by bench/plan_costs.py: measured per-unit costs for `liquidscale plan` (do not edit by hand;\n"
                        "# a site adds its own measured rates, e.g. GPU ones with device: gpu, in a copy passed as --costs).\n"
                        + yaml.safe_dump(table, sort_keys=False, width=200))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
