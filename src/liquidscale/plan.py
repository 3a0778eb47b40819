"""``liquidscale plan --configfile X [--configfile Y]``: jobs per rule and their cost, before submitting.

The job list is Snakemake's own: a dry run of the workflow with the campaign's config in an empty
scratch folder (so the counts are those of ``snakemake -n`` on a fresh campaign). Each job is then
costed from the config (frames and atoms per labelling shard, atom-steps per MD job, training steps,
cDFT epochs) times a measured per-unit cost from ``data/costs.yaml`` (or ``--costs FILE``), and every
estimate names what its unit was measured on. Core-hours assume the measured one-core rate scales
with a job's threads. GPU jobs are costed with a GPU rate only where the cost table has one; otherwise
their CPU-rate estimate is shown apart (an upper bound for a GPU node), never passed off as GPU-hours.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
DEFAULT_CONFIGFILE = REPO / "config" / "config.yaml"
COSTS = Path(__file__).resolve().parent / "data" / "costs.yaml"
ATOMS_PER_MOLECULE = {"water": 3, "co2": 3, "lj": 1}
# rule -> stage it belongs to in the plan's totals (rules not listed: the stage is the rule's prefix)
STAGE_OF_RULE = {"mlip_feed_reference": "mlip", "profiles_aggregate": "profiles", "cdft_reference_fluid_profiles": "profiles", "all": "target"}
STAGES = ("reference", "mlip", "sampling", "profiles", "cdft", "analysis", "coexistence")
TOTALS = ("jobs", "core_hours", "gpu_hours", "gpu_jobs_at_cpu_rate_core_hours", "unestimated_jobs")


def load_config(configfiles: Sequence[str | Path]) -> dict[str, Any]:
    """The campaign config as ``snakemake [--configfile FILES]`` builds it: the files over the schema
    defaults, or the demo (``config/config.yaml``) when no file is given."""
    from .config import effective_config

    return effective_config([str(path) for path in configfiles] or [str(DEFAULT_CONFIGFILE)])


# ---- the job list (Snakemake's dry run) ----------------------------------------------------------
@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1
    gpu: int = 0


HEADER = re.compile(r"^(?:local)?rule (\w+):$")


def parse_dry_run(text: str) -> list[Job]:
    """Every 'rule X:' block of a dry run's output with its wildcards, threads and gpu resource."""
    jobs, current = [], None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            current = {"rule": header.group(1), "wildcards": {}, "threads": None, "resources": {}}
            jobs.append(current)
            continue
        if current is None or not line.startswith("    "):
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            current["wildcards"] = dict(item.split("=", 1) for item in value.split(", "))
        elif key == "resources":
            current["resources"] = dict(item.split("=", 1) for item in value.split(", ") if "=" in item)
        elif key == "threads":
            current["threads"] = int(value)
    return [
        Job(j["rule"], j["wildcards"], j["threads"] or int(j["resources"].get("cpus_per_task", 1)), int(j["resources"].get("gpu", 0)))
        for j in jobs
    ]


def dry_run(config: Mapping[str, Any], timeout: float = 600) -> list[Job]:
    """The jobs ``snakemake -n`` lists for a fresh campaign with ``config`` (in an empty scratch folder)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="liquidscale-plan-") as scratch:
        workdir = Path(scratch)
        configfile = workdir / "plan_config.yaml"
        configfile.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        for path in (config["reference"].get("extra_configurations") or {}).values():
            if not Path(path).is_absolute():  # inputs named relative to where snakemake runs
                (workdir / path).parent.mkdir(parents=True, exist_ok=True)
                (workdir / path).symlink_to(Path(path).resolve())
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
                   "--configfile", str(configfile), "-n", "--cores", "1"]
        try:
            result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"the dry run of the workflow took longer than {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise UserError(f"the dry run of the workflow failed:\n{tail}")
    return parse_dry_run(result.stdout + result.stderr)


# ---- measured per-unit costs -----------------------------------------------------------------------
def load_costs(path: str | Path | None = None) -> dict[str, Any]:
    from .config import load_yaml

    costs = load_yaml(path or COSTS)
    if not isinstance(costs, Mapping) or "units" not in costs:
        raise UserError(f"{path or COSTS}: not a cost table (needs 'units'; see {COSTS})")
    return costs


def deepmd_macs_per_atom(mlip: Mapping[str, Any], neighbours: float) -> float:
    """Multiply-adds per atom of a se_e2_a-type DeePMD model: embedding net per neighbour, the descriptor
    contraction, the fitting net. The size measure the measured MD and training rates are scaled by."""
    descriptor = mlip["descriptor"]
    embedding = [1, *descriptor["neuron"]]
    per_neighbour = sum(a * b for a, b in zip(embedding, embedding[1:])) + 4 * embedding[-1]
    width = embedding[-1] * descriptor["axis_neuron"]
    fitting = [width, *mlip["fitting_neuron"], 1]
    return neighbours * per_neighbour + 4 * width + sum(a * b for a, b in zip(fitting, fitting[1:]))


def neighbours_within_cutoff(config: Mapping[str, Any], system: str) -> float:
    """Neighbours per atom: the descriptor's ``sel`` where given, else atoms within rcut at the liquid density."""
    sel = config["mlip"]["descriptor"]["sel"]
    if isinstance(sel, list):
        return float(sum(sel))
    liquid = config["sampling"][system]["slab_density"] * ATOMS_PER_MOLECULE[system]
    return 4.0 / 3.0 * math.pi * config["mlip"]["descriptor"]["rcut"] ** 3 * liquid


@dataclass(frozen=True)
class Rate:
    """A per-unit cost for one job: seconds per unit, the device it was measured on, and on what."""

    seconds: float
    device: str
    basis: str


def sized_rate(entries: Sequence[Mapping[str, Any]], key: str, size: float, device: str, what: str, size_key: str = "macs_per_atom") -> Rate | None:
    """The rate ``key`` for a model of ``size`` (MACs per atom) on ``device`` (gpu falls back to cpu):
    the measured point itself, else interpolated linearly in size between measured points, else scaled in
    proportion to size from the nearest measured model; the basis says which."""
    for wanted in dict.fromkeys((device, "cpu")):
        points = sorted((e for e in entries if e.get("device", "cpu") == wanted), key=lambda e: e[size_key])
        if points:
            break
    else:
        return None
    sizes = [p[size_key] for p in points]
    values = [p[key] for p in points]
    source = "; ".join(p["measured_on"] for p in points)
    if any(math.isclose(size, s, rel_tol=1e-6) for s in sizes):
        k = next(i for i, s in enumerate(sizes) if math.isclose(size, s, rel_tol=1e-6))
        return Rate(values[k], wanted, f"{what} measured ({wanted}) on this model size: {points[k]['measured_on']}")
    if len(points) >= 2 and sizes[0] < size < sizes[-1]:
        k = next(i for i, s in enumerate(sizes) if s > size)
        t = (size - sizes[k - 1]) / (sizes[k] - sizes[k - 1])
        return Rate(values[k - 1] + t * (values[k] - values[k - 1]), wanted, f"{what} interpolated in size ({size:.3g} {size_key}) between {wanted} measurements: {source}")
    k = 0 if size < sizes[0] else len(points) - 1
    return Rate(values[k] * size / sizes[k], wanted, f"{what} scaled x{size / sizes[k]:.3g} by size ({size:.3g} vs {sizes[k]:.3g} {size_key}) from {wanted} measurement: {points[k]['measured_on']}")


def scf_rate(costs: Mapping[str, Any], method: Mapping[str, Any]) -> Rate | None:
    """Seconds per atom^3 of one label at this level (xc, basis, dispersion); None if never measured."""
    def same(entry):
        return (entry["xc"].lower(), entry["basis"].lower(), entry.get("dispersion")) == (method["xc"].lower(), method["basis"].lower(), method.get("dispersion"))

    for entry in costs["units"].get("scf", []):
        if same(entry):
            return Rate(entry["seconds_per_atom3"], entry.get("device", "cpu"), f"{entry['xc']}/{entry['basis']} labels: {entry['measured_on']}")
    return None


# ---- what one job does (from the config, with the workflow's own functions) ------------------------
class Workload:
    """Per-system work of each kind of job, computed once from the validated config."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self._cache: dict[tuple, Any] = {}

    def _cached(self, key: tuple, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def label_atoms(self, system: str, iteration: int, shard: int) -> list[int]:
        """Atoms per frame of one labelling shard. Iteration 0: the actual clusters and bulk environments (and extra
        frames); later iterations: max_candidates environments of the mean size of cuts from packed boxes at the
        densest sampled state (measured on the demo: 2.0 water molecules per cut planned, 2.1 selected)."""
        return self._cached(("shards", system, min(iteration, 1)), lambda: self._shard_atoms(system, iteration))[shard]

    def _shard_atoms(self, system: str, iteration: int) -> list[list[int]]:
        """Atoms per frame of every shard, split by the labelling jobs' own ``assign_shards``."""
        import math

        import numpy as np

        from .mlip.exploration import densest
        from .molecules import get_molecule
        from .reference.configurations import Frame, assign_shards, bulk_environments, iteration0_configurations

        reference = self.config["reference"]
        molecule = get_molecule(system)
        density = densest(self.config["sampling"], system)
        if iteration == 0:
            extra = (reference.get("extra_configurations") or {}).get(system)
            frames = iteration0_configurations(molecule, reference, self.config["seed"], extra, density)
        else:
            environment = reference["environment"]
            reach = environment["core_radius"] + environment["shell"]
            molecules = max(environment["bulk_molecules"], math.ceil(density * (2 * reach) ** 3) + 1)  # a box that holds the cut
            samples = bulk_environments(molecule, {**environment, "bulk_frames": 8, "bulk_test_frames": 0, "bulk_molecules": molecules},
                                        reference["initial"], density, self.config["seed"])
            n_atoms = round(float(np.mean([len(f.symbols) for f in samples])))
            frames = [Frame(["X"] * n_atoms, np.zeros((n_atoms, 3))) for _ in range(self.config["mlip"]["select"]["max_candidates"])]
        return [[len(f.symbols) for f in shard] for shard in assign_shards(frames, reference["shards"])]

    def explore_atom_steps(self, system: str, iteration: int) -> float:
        """Replicas (the workflow's own state points) x atoms x steps, plus the ensemble's evaluation of the saved frames."""
        from .config import rule_settings
        from .mlip.exploration import expected_frames, state_points

        settings = rule_settings(self.config, system, "mlip", "explore")
        explore = settings["mlip"]["explore"]
        replicas = state_points(system, explore, settings["sampling"], settings["system_settings"]["temperature_range"], settings["seed"],
                                iteration, self.config["mlip"]["descriptor"]["rcut"])
        atoms = explore["molecules"] * ATOMS_PER_MOLECULE[system]
        ensemble = self.config["mlip"]["ensemble_size"] * expected_frames(explore)
        return len(replicas) * atoms * (explore["steps"] + ensemble)

    def sampling_atom_steps(self, system: str, batch: int) -> float:
        """Replicas of the batch x atoms (the state-point table's molecule count) x all MD steps."""
        molecules = self._cached(("statepoints", system), lambda: self._molecules_per_batch(system))[batch]
        sampling = self.config["sampling"]
        steps = sampling["minimisation_steps"] + sampling["equilibration_steps"] + sampling["production_steps"]
        return float(molecules * ATOMS_PER_MOLECULE[system] * steps)

    def coexistence_atom_steps(self, system: str) -> float:
        """Slabs (one per temperature) x atoms (the step's own molecule count) x all MD steps."""
        from .config import rule_settings
        from .coexistence.run import slab_molecules

        settings = rule_settings(self.config, system, "coexistence", "run")
        coexistence = settings["coexistence"]
        steps = settings["sampling"]["minimisation_steps"] + coexistence["equilibration_steps"] + coexistence["production_steps"]
        return float(len(coexistence[system]["temperatures"]) * slab_molecules(settings) * ATOMS_PER_MOLECULE[system] * steps)

    def _molecules_per_batch(self, system: str) -> dict[int, int]:
        """batch -> molecules in all its replicas, from the workflow's own state-point table."""
        from .config import stage_settings
        from .sampling.statepoints import statepoint_table, system_sampling

        table = statepoint_table(system_sampling(stage_settings(self.config, system, "sampling")))
        return {int(b): int(n) for b, n in table.groupby("batch")["n_molecules"].sum().items()}

    def profile_bins(self, system: str) -> int:
        block = self.config["sampling"][system]
        return round(block["box"][2] / block["bin_width"])

    def cdft_units(self, system: str) -> float:
        """Network evaluations of one training run's bins x channel width, over max_epochs (an upper bound:
        early stopping ends sooner) and every network of the ensemble. The cDFT rate is measured per this unit."""
        cdft = self.config["cdft"]
        train_runs = self.config["sampling"]["runs"] * self.config["profiles"]["split"][0]
        evaluations = cdft["max_epochs"] * (cdft["lbfgs_iterations"] if cdft["optimizer"] == "lbfgs" else 1)
        evaluations += cdft["warmup_passes"] if cdft["optimizer"] == "lbfgs" else 0
        return evaluations * cdft["ensemble"] * train_runs * self.profile_bins(system) * cdft_width(cdft["channels"])


def cdft_width(channels: Sequence[int]) -> float:
    """Multiply-adds per bin of the c1 network beyond its FFT convolutions: the pointwise layers plus one per channel in and out."""
    return float(sum(a * b for a, b in zip(channels, channels[1:])) + channels[0] + channels[-1])


# ---- costing each job ----------------------------------------------------------------------------------
@dataclass
class Cost:
    core_seconds: float | None = None  # CPU jobs, and GPU jobs without a GPU rate (at the CPU rate)
    gpu_seconds: float | None = None
    basis: str = ""


def job_cost(job: Job, work: Workload, costs: Mapping[str, Any]) -> Cost:
    units = costs["units"]
    config = work.config
    system = job.wildcards.get("system", "")
    device = "gpu" if job.gpu else "cpu"
    fixed = units.get("jobs", {}).get(job.rule)

    def priced(amount: float, rate: Rate | None, overhead: float = 0.0) -> Cost:
        if rate is None:
            return Cost(basis="no measured rate for this job in the cost table")
        seconds = amount * rate.seconds + overhead
        if rate.device == "gpu":
            return Cost(gpu_seconds=seconds, basis=rate.basis)
        return Cost(core_seconds=seconds, basis=rate.basis)

    if job.rule == "reference_label":
        atoms = work.label_atoms(system, int(job.wildcards["iteration"]), int(job.wildcards["shard"]))
        return priced(sum(n**3 for n in atoms), scf_rate(costs, config["reference"]["method"]), units.get("scf_job_overhead", {}).get("seconds", 0.0))
    if job.rule in ("mlip_train", "mlip_explore", "sampling_batch", "coexistence_slabs") and system in ("water", "co2"):
        size = deepmd_macs_per_atom(config["mlip"], neighbours_within_cutoff(config, system))
        if job.rule == "mlip_train":
            rate = sized_rate(units.get("deepmd_training", []), "seconds_per_step", size, device, "DeePMD training steps")
            return priced(config["mlip"]["training"]["steps"], rate)
        rate = sized_rate(units.get("deepmd_md", []), "seconds_per_atom_step", size, device, "DeePMD MD atom-steps")
        if job.rule == "mlip_explore":
            return priced(work.explore_atom_steps(system, int(job.wildcards["iteration"])), rate)
        if job.rule == "coexistence_slabs":
            return priced(work.coexistence_atom_steps(system), rate)
        return priced(work.sampling_atom_steps(system, int(job.wildcards["batch"])), rate)
    if job.rule == "profiles_aggregate" and "aggregation" in units:
        entry = units["aggregation"]
        rate = Rate(entry["seconds_per_run_bin"], "cpu", f"streaming aggregation: {entry['measured_on']}")
        return priced(config["sampling"]["runs"] * work.profile_bins(system), rate, entry.get("overhead_seconds", 0.0))
    if job.rule == "cdft_train" and system in ATOMS_PER_MOLECULE:
        width = cdft_width(config["cdft"]["channels"])
        rate = sized_rate(units.get("cdft_training", []), "seconds_per_unit", width, "cpu", "cDFT training (max_epochs: an upper bound)", "channel_width")
        return priced(work.cdft_units(system), rate)
    if fixed is not None:
        return Cost(core_seconds=fixed["seconds"], basis=f"per job: {fixed['measured_on']}")
    if job.rule == "all":
        return Cost(core_seconds=0.0, basis="target rule, no work")
    return Cost(basis="no measured rate for this job in the cost table")


# ---- the plan ----------------------------------------------------------------------------------------
def stage_of(rule: str) -> str:
    return STAGE_OF_RULE.get(rule, rule.split("_")[0])


def make_plan(configfiles: Sequence[str | Path], costs_file: str | Path | None = None) -> dict[str, Any]:
    config = load_config(configfiles)
    costs = load_costs(costs_file)
    jobs = dry_run(config)
    work = Workload(config)
    rules: dict[str, dict[str, Any]] = {}
    for job in jobs:
        cost = job_cost(job, work, costs)
        row = rules.setdefault(job.rule, {"rule": job.rule, "stage": stage_of(job.rule), "jobs": 0, "gpu_jobs": 0, "core_hours": 0.0,
                                          "gpu_hours": 0.0, "gpu_jobs_at_cpu_rate_core_hours": 0.0, "unestimated_jobs": 0, "basis": set()})
        row["jobs"] += 1
        row["gpu_jobs"] += job.gpu > 0
        if cost.core_seconds is None and cost.gpu_seconds is None:
            row["unestimated_jobs"] += 1
        elif cost.gpu_seconds is not None:
            row["gpu_hours"] += cost.gpu_seconds / 3600
        elif job.gpu:
            row["gpu_jobs_at_cpu_rate_core_hours"] += cost.core_seconds / 3600
        else:
            row["core_hours"] += cost.core_seconds / 3600
        if cost.basis:
            row["basis"].add(cost.basis)
    ordered = sorted(rules.values(), key=lambda row: STAGES.index(row["stage"]) if row["stage"] in STAGES else len(STAGES))
    stages: dict[str, dict[str, float]] = {}
    for row in ordered:
        row["basis"] = sorted(row["basis"])
        if row["stage"] in STAGES:
            totals = stages.setdefault(row["stage"], dict.fromkeys(TOTALS, 0))
            for key in TOTALS:
                totals[key] += row[key]
    return {
        "configfiles": [*map(str, configfiles)] or [str(DEFAULT_CONFIGFILE.relative_to(REPO))],
        "systems": list(config["systems"]),
        "jobs": len(jobs),
        "rules": ordered,
        "stages": dict(stages),
        "costs": {key: costs.get(key) for key in ("machine", "date", "how")},
        "assumptions": ASSUMPTIONS,
    }


ASSUMPTIONS = [
    "job counts: Snakemake's dry run of a fresh campaign with this config",
    "core-hours: one-core CPU rates (cpu_time of the measured jobs), assumed to scale with a job's threads",
    "GPU jobs without a measured GPU rate are costed at the CPU rate in their own column, not as GPU-hours",
    "labelling beyond iteration 0 and cDFT training (max_epochs) are upper bounds; SCF cost scales as atoms^3 from the measured sizes",
]


def _hours(value: float) -> str:
    return "-" if value == 0 else f"{value:.3g}"


def render_text(plan: Mapping[str, Any]) -> str:
    lines = [f"plan for {' + '.join(plan['configfiles'])}: systems {', '.join(plan['systems'])}, {plan['jobs']} jobs",
             "", f"{'rule':<30}{'jobs':>7}{'gpu jobs':>10}{'core-h':>10}{'GPU-h':>10}{'GPU jobs at CPU rate, core-h':>30}"]
    for row in plan["rules"]:
        flag = f"  ({row['unestimated_jobs']} not estimated)" if row["unestimated_jobs"] else ""
        lines.append(f"{row['rule']:<30}{row['jobs']:>7}{row['gpu_jobs']:>10}{_hours(row['core_hours']):>10}{_hours(row['gpu_hours']):>10}"
                     f"{_hours(row['gpu_jobs_at_cpu_rate_core_hours']):>30}{flag}")
    lines += ["", f"{'stage':<30}{'jobs':>7}{'':>10}{'core-h':>10}{'GPU-h':>10}{'GPU jobs at CPU rate, core-h':>30}"]
    for stage, row in plan["stages"].items():
        flag = f"  ({row['unestimated_jobs']} not estimated)" if row["unestimated_jobs"] else ""
        lines.append(f"{stage:<30}{row['jobs']:>7}{'':>10}{_hours(row['core_hours']):>10}{_hours(row['gpu_hours']):>10}{_hours(row['gpu_jobs_at_cpu_rate_core_hours']):>30}{flag}")
    lines += ["", f"measured on: {plan['costs']['machine']} ({plan['costs']['date']})", "what each estimate rests on:"]
    for row in plan["rules"]:
        for basis in row["basis"]:
            lines.append(f"  {row['rule']}: {basis}")
    lines += ["assumptions:", *(f"  {a}" for a in plan["assumptions"])]
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="jobs per rule and estimated core- and GPU-hours of a campaign, before submitting")
    parser.add_argument("--configfile", action="append", default=[], type=Path, help="config file(s) as given to snakemake (merged over config/config.yaml, like snakemake)")
    parser.add_argument("--costs", type=Path, help=f"cost table with your site's measured rates (default: {COSTS.name} in the package)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    parser.set_defaults(func=_run)


def _run(args) -> None:
    plan = make_plan(args.configfile, args.costs)
    sys.stdout.write(json.dumps(plan, indent=1) + "\n" if args.json else render_text(plan))
