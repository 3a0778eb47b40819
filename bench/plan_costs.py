"""Measure the per-unit costs `liquidscale plan` uses and write them as src/liquidscale/data/costs.yaml.

Five measurements, all on this machine's CPU, one thread, CPU time (not wall time: the machine is shared):
  demo   -- from a finished `make demo` folder: each benchmarked job's cpu_time (Snakemake `benchmark:`
            files) divided by its units of work from the same workflow functions the plan uses (frames
            and atoms per shard from configurations.extxyz and assign_shards, atom-steps per MD job, training steps,
            cDFT network evaluations with the epochs actually run).
  cdft   -- one c1 evaluation with its gradient per bin, the demo's network vs a production config's.
  bookkeeping -- rules without a `benchmark:`: the first demo job of each rerun from the shell command in the
            demo's Snakemake log, in a scratch copy of its results; CPU seconds per job.
  scf    -- one PySCF label (energy + forces) of clusters of 1..k molecules at a production level of theory.
  deepmd -- a DeePMD model of a production config's size, trained for a few steps on the demo's labels:
            the cost per training step (difference of two step counts), and its evaluation on a 192-atom
            water box against the demo's model (iteration 0, the final model's architecture): the ratio scales
            the demo's MD rate.
The measurements behind the committed table are in bench/plan_costs_measurements/.
Run: `python bench/plan_costs.py scf config/water.yaml water >> scf.jsonl` (per production level),
`python bench/plan_costs.py deepmd DEMO_DIR config/water.yaml > deepmd.jsonl`,
`python bench/plan_costs.py cdft DEMO_DIR config/water.yaml > cdft.jsonl`,
`python bench/plan_costs.py bookkeeping DEMO_DIR > bookkeeping.jsonl`, then
`python bench/plan_costs.py table DEMO_DIR --scf scf.jsonl --deepmd deepmd.jsonl --cdft cdft.jsonl --bookkeeping bookkeeping.jsonl`.
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
from liquidscale.plan import Workload, cdft_width, deepmd_macs_per_atom, load_config, neighbours_within_cutoff

REPO = Path(__file__).resolve().parents[1]


def cpu_time(path: Path) -> float:
    return float(pd.read_csv(path, sep="\t")["cpu_time"].iloc[0])


def demo_units(demo: Path) -> dict:
    """Units measured on the demo's benchmarked jobs; a stage the demo has not finished is left out."""
    config = load_config([demo / "config" / "config.yaml"])
    work = Workload(config)
    bench, results = demo / "benchmarks", demo / "results"
    where = f"make demo (config/config.yaml) of {datetime.date.today().isoformat()}"
    label_units, label_cpu, train_cpu, analysis_cpu, aggregate_cpu = [], [], [], [], []
    md = {"explore": [0.0, 0.0, 0], "sampling": [0.0, 0.0, 0]}  # atom-steps, cpu seconds, jobs
    cdft_units = cdft_cpu = 0.0
    for system in config["systems"]:
        for tsv in sorted((bench / system / "reference").glob("iter*/label*.tsv")):
            iteration, shard = tsv.parent.name, int(tsv.stem[5:])
            configurations = str(results / system / "reference" / iteration / "configurations.extxyz")
            frames = assign_shards(number_frames(read_extxyz(configurations, get_molecule(system), configurations)), config["reference"]["shards"])[shard]
            label_units.append(float(sum(len(f.symbols) ** 3 for f in frames)))
            label_cpu.append(cpu_time(tsv))
        train_cpu += [cpu_time(tsv) / config["mlip"]["training"]["steps"] for tsv in sorted((bench / system / "mlip").glob("iter*/train*.tsv"))]
        for kind, pattern, steps in (("explore", "mlip/iter*/explore.tsv", lambda t: work.explore_atom_steps(system, int(t.parent.name[4:]))),
                                     ("sampling", "sampling/batch*.tsv", lambda t: work.sampling_atom_steps(system, int(t.stem[5:])))):
            for tsv in sorted((bench / system).glob(pattern)):
                md[kind][0] += steps(tsv)
                md[kind][1] += cpu_time(tsv)
                md[kind][2] += 1
        if (bench / system / "profiles.tsv").is_file():
            aggregate_cpu.append(cpu_time(bench / system / "profiles.tsv"))
        if (bench / system / "cdft" / "train.tsv").is_file():
            cdft = config["cdft"]
            evaluations = read_json(results / system / "cdft" / "metrics.json")["epochs"] * cdft["lbfgs_iterations"] + cdft["warmup_passes"]
            cdft_units += evaluations * config["sampling"]["runs"] * config["profiles"]["split"][0] * work.profile_bins(system) * cdft_width(cdft["channels"])
            cdft_cpu += cpu_time(bench / system / "cdft" / "train.tsv")
        if (bench / system / "analysis" / "run.tsv").is_file():
            analysis_cpu.append(cpu_time(bench / system / "analysis" / "run.tsv"))
    # labelling shard = overhead + a * sum(atoms^3): least squares over the shards
    (overhead, per_atom3), *_ = np.linalg.lstsq(np.column_stack([np.ones(len(label_units)), label_units]), np.array(label_cpu), rcond=None)
    method = config["reference"]["method"]
    size = deepmd_macs_per_atom(config["mlip"], neighbours_within_cutoff(config, "water"))
    steps, seconds = md["explore"][0] + md["sampling"][0], md["explore"][1] + md["sampling"][1]
    units = {
        "scf": [{"xc": method["xc"], "basis": method["basis"], "dispersion": method.get("dispersion"), "seconds_per_atom3": float(per_atom3), "device": "cpu",
                 "measured_on": f"{len(label_cpu)} labelling jobs of {where}, water and CO2 clusters of 3-9 atoms: cpu_time = overhead + a sum(atoms^3), least squares"}],
        "scf_job_overhead": {"seconds": max(float(overhead), 0.0), "measured_on": f"the same fit ({where})"},
        "deepmd_training": [{"macs_per_atom": size, "seconds_per_step": statistics.mean(train_cpu), "device": "cpu",
                             "measured_on": f"{len(train_cpu)} mlip_train jobs of {where} (demo model, 1 thread; cpu_time / steps, start-up and freeze included)"}],
        "deepmd_md": [{"macs_per_atom": size, "seconds_per_atom_step": seconds / steps, "device": "cpu",
                       "measured_on": f"{md['explore'][2]} mlip_explore and {md['sampling'][2]} sampling_batch jobs of {where} (demo model, 1 thread; cpu_time / atom-steps)"}],
    }
    if cdft_cpu:
        units["cdft_training"] = [{"channel_width": cdft_width(config["cdft"]["channels"]), "seconds_per_unit": cdft_cpu / cdft_units, "device": "cpu",
                                   "measured_on": f"the cdft_train jobs of {where} (cpu_time / (network evaluations x training runs x bins x channel width), epochs actually run)"}]
    if aggregate_cpu:
        units["aggregation"] = {"overhead_seconds": statistics.mean(aggregate_cpu), "seconds_per_run_bin": aggregation_rate(demo, config),
                                "measured_on": f"overhead: profiles_aggregate jobs of {where}; per run-bin: aggregating 64 copies of its water batch0000.nc"
                                               " in-process (CPU s / (runs x bins))"}
    if analysis_cpu:
        units["jobs"] = {"analysis_system": {"seconds": statistics.mean(analysis_cpu), "measured_on": f"analysis_system jobs of {where} (the demo's analysis settings)"}}
    return units


def aggregation_rate(demo: Path, config, copies: int = 64) -> float:
    """CPU seconds per run-bin of streaming aggregation, on copies of a real batch file (run ids shifted)."""
    import xarray as xr

    from liquidscale.config import stage_settings
    from liquidscale.sampling.aggregate import aggregate

    template = xr.load_dataset(demo / "results" / "water" / "sampling" / "batch0000.nc")
    runs = template.sizes["run"]
    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for k in range(copies):
            files.append(Path(scratch) / f"batch{k:04d}.nc")
            template.assign_coords(run=template["run"].values + k * runs).to_netcdf(files[-1])
        start = time.process_time()
        aggregate(files, Path(scratch) / "profiles.nc", stage_settings(config, "water", "profiles"))
        seconds = time.process_time() - start
    return seconds / (copies * runs * template.sizes["z"])


def measure_scf(configfile: Path, system: str, sizes: list[int]) -> None:
    """Print one JSON line per cluster size: CPU seconds of one label at the config's level of theory."""
    from liquidscale.reference.configurations import initial_clusters
    from liquidscale.reference.qm import label

    method = load_config([configfile])["reference"]["method"]
    for frame in initial_clusters(get_molecule(system), dict(load_config([configfile])["reference"]["initial"], cluster_sizes=sizes, frames_per_size=1), 1):
        start, cpu = time.perf_counter(), time.process_time()
        label(frame.symbols, frame.positions, method)
        print(json.dumps({"system": system, "method": method, "atoms": len(frame.symbols), "seconds": time.perf_counter() - start,
                          "cpu_seconds": time.process_time() - cpu}), flush=True)


def scf_units(timings_file: Path) -> list[dict]:
    """One cost entry per level in the timings: a = CPU s / atoms^3 at the largest cluster measured."""
    levels: dict[tuple, list[dict]] = defaultdict(list)
    for line in timings_file.read_text().splitlines():
        record = json.loads(line)
        levels[(record["system"], json.dumps(record["method"], sort_keys=True))].append(record)
    entries = []
    for (system, _), records in levels.items():
        records.sort(key=lambda r: r["atoms"])
        method, largest = records[0]["method"], records[-1]
        slope = np.polyfit(np.log([r["atoms"] for r in records]), np.log([r["cpu_seconds"] for r in records]), 1)[0] if len(records) > 1 else float("nan")
        sizes = ", ".join(f"{r['atoms']} atoms {r['cpu_seconds']:.1f} s" for r in records)
        entries.append({"xc": method["xc"], "basis": method["basis"], "dispersion": method.get("dispersion"),
                        "seconds_per_atom3": largest["cpu_seconds"] / largest["atoms"] ** 3, "device": "cpu",
                        "measured_on": f"one {system} label per cluster size ({sizes}; CPU s, 1 thread, bench/plan_costs.py scf):"
                                       f" a = s / atoms^3 at the largest; fitted exponent {slope:.2f}"})
    return entries


BOOKKEEPING = ("reference_configurations", "reference_collect", "mlip_data", "mlip_test", "mlip_select", "mlip_feed_reference", "mlip_final",
               "sampling_statepoints")


def measure_bookkeeping(demo: Path) -> None:
    """Print one JSON line per rule without a `benchmark:`: CPU seconds of its first job, rerun from the shell
    command in the demo's Snakemake log inside a scratch copy of the demo's results (its outputs removed first)."""
    import shutil
    import subprocess

    log = "\n".join(path.read_text() for path in sorted((demo / ".snakemake" / "log").glob("*.snakemake.log")))
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        match = re.match(r"(?:local)?rule (\w+):\n", block)
        command = re.search(r"^Shell command: (.*)$", block, re.M)
        outputs = re.search(r"^    output: (.*)$", block, re.M)
        if match and command and outputs and match.group(1) in BOOKKEEPING:
            jobs.setdefault(match.group(1), (outputs.group(1).split(", "), command.group(1)))
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(demo / "results", Path(scratch) / "results")
        for rule, (outputs, command) in jobs.items():
            for output in outputs:
                target = Path(scratch) / output
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
            log_file = re.search(r"> (logs/\S+)", command)
            if log_file:
                (Path(scratch) / log_file.group(1)).parent.mkdir(parents=True, exist_ok=True)
            before = _children_cpu()
            subprocess.run(["bash", "-c", command], cwd=scratch, check=True)
            print(json.dumps({"rule": rule, "cpu_seconds": _children_cpu() - before}), flush=True)


def bookkeeping_units(timings_file: Path) -> dict:
    where = f"{timings_file.name}: the first demo job of the rule rerun from its logged command (bench/plan_costs.py bookkeeping), CPU s"
    return {r["rule"]: {"seconds": r["cpu_seconds"], "measured_on": where} for r in map(json.loads, timings_file.read_text().splitlines())}


def measure_cdft(demo: Path, configfile: Path, runs: int = 16) -> None:
    """Print one JSON line: CPU s per bin of one c1 evaluation with its gradient (an L-BFGS function
    evaluation's work per bin) for the demo's network and for CONFIG's, on water's production grid."""
    import torch

    from liquidscale.cdft.model import NeuralC1
    from liquidscale.plan import cdft_width

    torch.set_num_threads(1)
    production = load_config([configfile])
    bins = round(production["sampling"]["water"]["box"][2] / production["sampling"]["water"]["bin_width"])
    record = {"configfile": configfile.name, "bins": bins}
    for name, config in (("demo", load_config([demo / "config" / "config.yaml"])), ("production", production)):
        cdft = config["cdft"]
        model = NeuralC1(production["sampling"]["water"]["bin_width"], cdft["window"]["water"], cdft["channels"], 0.03, [280.0, 650.0],
                         cdft["architecture"], cdft["temperature_inputs"])
        rho = torch.rand(runs, bins, dtype=torch.float64) * 0.03
        T = torch.full((runs,), 400.0, dtype=torch.float64)
        for _ in range(2):
            model.c1(rho, T).square().sum().backward()
        start = time.process_time()
        for _ in range(5):
            model.c1(rho, T).square().sum().backward()
        record[name] = {"width": cdft_width(cdft["channels"]), "seconds_per_bin": (time.process_time() - start) / (5 * runs * bins)}
    print(json.dumps(record), flush=True)


def cdft_units(timings_file: Path, demo_rate: float) -> list[dict]:
    """A cDFT entry per measured production network: the demo's rate x (its cost per bin / the demo network's) / (width ratio)."""
    entries = []
    for r in map(json.loads, timings_file.read_text().splitlines()):
        ratio = r["production"]["seconds_per_bin"] / r["demo"]["seconds_per_bin"]
        entries.append({"channel_width": r["production"]["width"], "seconds_per_unit": demo_rate * ratio * r["demo"]["width"] / r["production"]["width"], "device": "cpu",
                         "measured_on": f"network of {r['configfile']}: the demo's rate x {ratio:.3g}, its c1 + gradient cost per bin"
                                        f" ({r['production']['seconds_per_bin'] * 1e6:.2f} us) over the demo network's ({r['demo']['seconds_per_bin'] * 1e6:.2f} us)"
                                        f" on {r['bins']} bins, CPU, 1 thread (bench/plan_costs.py cdft)"})
    return entries


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_deepmd(demo: Path, configfile: Path) -> None:
    """Print one JSON line for a water model of CONFIG's size: training CPU s/step (two step counts
    differenced) and its evaluation cost relative to the demo's model on the same 192-atom box."""
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
        for name, path in (("production", model), ("demo", demo / "results" / "water" / "mlip" / "iter000" / "model0" / "model.pth")):
            potential = DeepMDPotential(path, symbols)
            for _ in range(3):  # TorchScript's profiling executor optimises the graph over the first calls
                potential(positions, np.array([[box] * 3]))
            start = time.process_time()
            for _ in range(10):
                potential(positions, np.array([[box] * 3]))
            seconds[name] = (time.process_time() - start) / 10
    print(json.dumps({"configfile": configfile.name, "sel": sel, "macs_per_atom": size, "train_seconds_per_step": per_step,
                      "eval_seconds": seconds["production"], "demo_eval_seconds": seconds["demo"]}), flush=True)


def deepmd_units(timings_file: Path, demo_md_rate: float) -> tuple[list[dict], list[dict]]:
    """Training and MD entries per measured model size; the MD rate is the demo's scaled by the evaluation ratio."""
    train, md = [], []
    for r in map(json.loads, timings_file.read_text().splitlines()):
        source = f"water model of {r['configfile']}'s size (sel {r['sel']}; bench/plan_costs.py deepmd)"
        ratio = r["eval_seconds"] / r["demo_eval_seconds"]
        train.append({"macs_per_atom": r["macs_per_atom"], "seconds_per_step": r["train_seconds_per_step"], "device": "cpu",
                      "measured_on": f"{source}: dp --pt train of 60 minus 10 steps on the demo's water labels, CPU s / 50, 1 thread"})
        md.append({"macs_per_atom": r["macs_per_atom"], "seconds_per_atom_step": demo_md_rate * ratio, "device": "cpu",
                   "measured_on": f"{source}: the demo's MD rate x {ratio:.3g}, the ratio of its energy+forces evaluation on a 192-atom water box "
                                  f"({r['eval_seconds'] * 1e3:.0f} ms) to the demo model's ({r['demo_eval_seconds'] * 1e3:.1f} ms), CPU, 1 thread"})
    return train, md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    scf = modes.add_parser("scf", help="print one JSON line per cluster size: CPU seconds of a label at CONFIG's level")
    scf.add_argument("configfile", type=Path)
    scf.add_argument("system")
    scf.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3], help="molecules per cluster")
    deepmd = modes.add_parser("deepmd", help="print one JSON line: training and evaluation cost of a water model of CONFIG's size")
    deepmd.add_argument("demo", type=Path)
    deepmd.add_argument("configfile", type=Path)
    cdft = modes.add_parser("cdft", help="print one JSON line: c1 evaluation + gradient cost per bin of the demo's network and CONFIG's")
    cdft.add_argument("demo", type=Path)
    cdft.add_argument("configfile", type=Path)
    book = modes.add_parser("bookkeeping", help="print one JSON line per unbenchmarked rule: CPU seconds of a demo job rerun in a scratch copy")
    book.add_argument("demo", type=Path)
    table = modes.add_parser("table", help="write the cost table from a finished demo, SCF timings and production model sizes")
    table.add_argument("demo", type=Path, help="a finished `make demo` folder (benchmarks/, results/)")
    table.add_argument("--scf", type=Path, help="JSON lines of `plan_costs.py scf` runs (production levels of theory)")
    table.add_argument("--bookkeeping", type=Path, help="JSON lines of `plan_costs.py bookkeeping` (rules without a benchmark file)")
    table.add_argument("--cdft", type=Path, help="JSON lines of `plan_costs.py cdft` (production network sizes)")
    table.add_argument("--deepmd", type=Path, help="JSON lines of `plan_costs.py deepmd` (production model sizes)")
    table.add_argument("--out", type=Path, default=REPO / "src" / "liquidscale" / "data" / "costs.yaml")
    args = parser.parse_args()
    if args.mode == "scf":
        measure_scf(args.configfile, args.system, args.sizes)
        return
    if args.mode == "deepmd":
        measure_deepmd(args.demo, args.configfile)
        return
    if args.mode == "cdft":
        measure_cdft(args.demo, args.configfile)
        return
    if args.mode == "bookkeeping":
        measure_bookkeeping(args.demo)
        return
    units = demo_units(args.demo)
    if args.cdft:
        units["cdft_training"] += cdft_units(args.cdft, units["cdft_training"][0]["seconds_per_unit"])
    if args.bookkeeping:
        units.setdefault("jobs", {}).update(bookkeeping_units(args.bookkeeping))
    if args.scf:
        units["scf"] += scf_units(args.scf)
    if args.deepmd:
        train, md = deepmd_units(args.deepmd, units["deepmd_md"][0]["seconds_per_atom_step"])
        units["deepmd_training"] += train
        units["deepmd_md"] += md
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    cores = sum(line.startswith("processor") for line in cpuinfo)
    costs = {
        "machine": f"{cpu}, {cores} cores shared with other work; CPU only (no GPU rate measured)",
        "date": datetime.date.today().isoformat(),
        "how": "bench/plan_costs.py (see its docstring); one-thread CPU seconds per unit of work",
        "units": units,
    }
    args.out.write_text("# Written by bench/plan_costs.py: measured per-unit costs for `liquidscale plan` (do not edit by hand;\n"
                        "# a site adds its own measured rates, e.g. GPU ones with device: gpu, in a copy passed as --costs).\n"
                        + yaml.safe_dump(costs, sort_keys=False, width=200))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
