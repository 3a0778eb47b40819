"""``liquidscale status [RESULTS]``: where a campaign stands, read from its outputs alone.

One screen per system found under the results folder: reference frames labelled / failed per
iteration; per concurrent-learning iteration the accurate / candidate / failed fractions, the
held-out force RMSE and whether the stop criterion was met; sampling runs done / failed / pending
(pending: in ``statepoints.csv`` but no batch file yet) with failure reasons counted; the profile
dataset's size; the functional's held-out errors; the analysis' headline results or the reason each
is missing; the coexistence step's densities per slab temperature or the reason there are none. Nothing of Snakemake's bookkeeping (``.snakemake``) is read, so the view is the same on a
copy of the results. netCDF files are opened for their dimensions and small per-run variables only
(never the profiles), so 10^4 runs take about a second.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import dataset as names
from .errors import UserError

# numbers inside a failure reason (steps, distances, ratios) vary run by run: they are replaced by '#'
# so that reasons of one kind are counted together
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
STAGE_MARKERS = ("reference", "mlip", "sampling", "profiles.nc", "cdft", "analysis", "coexistence")


def reason_kind(reason: str) -> str:
    return NUMBER.sub("#", reason.strip())


def count_reasons(reasons: Iterable[str]) -> list[dict[str, Any]]:
    """[{reason (numbers as '#'), count, example}], most frequent first."""
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    for reason in reasons:
        kind = reason_kind(reason)
        counts[kind] += 1
        examples.setdefault(kind, reason.strip())
    return [{"reason": kind, "count": n, "example": examples[kind]} for kind, n in counts.most_common()]


def _read_json(path: Path) -> dict[str, Any] | None:
    """A stage's JSON output, or None while it does not exist; a damaged one is an error naming the file."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc}); rerun the rule that wrote it") from None


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _iterations(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("iter[0-9][0-9][0-9]") if p.is_dir())


# ---- reference ---------------------------------------------------------------------------------
def reference_status(system_dir: Path) -> list[dict[str, Any]] | None:
    """Per iteration: frames, labelled, failed (with reasons) once collected; shards done before that."""
    folder = system_dir / "reference"
    if not folder.is_dir():
        return None
    rows = []
    for it in _iterations(folder):
        row: dict[str, Any] = {"iteration": int(it.name[4:])}
        record = _read_json(it / "provenance.json")
        if record is not None:
            row.update(state="collected", frames=record["n_frames"], labelled=record["n_labelled"], failed=record["n_failed"])
            failures = it / "failures.csv"
            row["failure_reasons"] = count_reasons(r["reason"] for r in _csv_rows(failures)) if failures.is_file() else []
        else:
            shards = sorted(p for p in (it / "shards").glob("shard[0-9][0-9]") if p.is_dir())
            row.update(state="labelling" if shards else "waiting", shards_done=len(shards), has_configurations=(it / "configurations.extxyz").is_file())
        rows.append(row)
    return rows


# ---- mlip ----------------------------------------------------------------------------------------
def mlip_status(system_dir: Path) -> dict[str, Any] | None:
    """Per iteration the held-out errors (metrics.json) and DP-GEN's fractions (selection.json); the final model."""
    folder = system_dir / "mlip"
    if not folder.is_dir():
        return None
    iterations = []
    for it in _iterations(folder):
        row: dict[str, Any] = {"iteration": int(it.name[4:]), "members_trained": sum(1 for p in it.glob("model[0-9]*") if p.is_dir())}
        metrics = _read_json(it / "metrics.json")
        if metrics is not None:
            row.update(train_frames=metrics["frames"]["train"], test_frames=metrics["frames"]["test"], **metrics["held_out_mean"],
                       bulk_force_rmse=metrics["bulk_mean"]["force_rmse"])
        selection = _read_json(it / "selection.json")
        if selection is not None:
            row.update({key: selection[key] for key in ("frames", "accurate", "candidate", "failed", "selected", "converged") if key in selection})
            row["explored_frames"] = row.pop("frames", None)
        row["state"] = "selected" if selection is not None else "tested" if metrics is not None else "training"
        iterations.append(row)
    final = _read_json(folder / "final" / "metadata.json")
    summary = None if final is None else {"iteration": final["iteration"], "converged": final["converged"], **final.get("metrics", {})}
    return {"iterations": iterations, "final": summary}


# ---- sampling --------------------------------------------------------------------------------
def expected_runs(statepoints: Path) -> dict[int, list[int]]:
    """batch -> run ids from the state-point table (csv module: fast on 10^4 rows, no pandas)."""
    batches: dict[int, list[int]] = {}
    for row in _csv_rows(statepoints):
        batches.setdefault(int(row["batch"]), []).append(int(row["run"]))
    return batches


def read_run_status(path: Path) -> tuple[list[int], list[str]] | None:
    """(status per run, failure reason per failed run) of a batch file, from the small per-run variables only.

    None when the file cannot be read (a damaged or foreign file)."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            status = [int(s) for s in nc.variables[names.STATUS][:]]
            reasons = []
            if any(s != names.STATUS_OK for s in status):
                all_reasons = nc.variables[names.FAILURE_REASON][:]
                reasons = [str(all_reasons[i]) for i, s in enumerate(status) if s != names.STATUS_OK]
    except (OSError, KeyError, RuntimeError):
        return None
    return status, reasons


def sampling_status(system_dir: Path) -> dict[str, Any] | None:
    folder = system_dir / "sampling"
    if not folder.is_dir():
        return None
    statepoints = folder / "statepoints.csv"
    expected = expected_runs(statepoints) if statepoints.is_file() else None
    files = {int(p.stem[5:]): p for p in folder.glob("batch[0-9][0-9][0-9][0-9].nc")}
    done = failed = 0
    reasons: list[str] = []
    unreadable = []
    for batch, path in sorted(files.items()):
        read = read_run_status(path)
        if read is None:
            unreadable.append(path.name)
            continue
        status, why = read
        done += sum(s == names.STATUS_OK for s in status)
        failed += len(status) - sum(s == names.STATUS_OK for s in status)
        reasons += why
    result: dict[str, Any] = {
        "statepoints": expected is not None,
        "batch_files": len(files),
        "done": done,
        "failed": failed,
        "failure_reasons": count_reasons(reasons),
        "unreadable_batch_files": unreadable,
    }
    if expected is not None:
        missing = sorted(set(expected) - set(files) | {int(name[5:9]) for name in unreadable})
        result.update(
            runs=sum(len(v) for v in expected.values()),
            batches=len(expected),
            pending=sum(len(expected[b]) for b in missing if b in expected),
            pending_batches=missing,
        )
    return result


# ---- profiles, cdft, analysis ------------------------------------------------------------------
def profiles_status(system_dir: Path) -> dict[str, Any] | None:
    """Size of profiles.nc (runs, bins, bytes) and its ok / failed runs and split, without reading rho."""
    import netCDF4

    path = system_dir / "profiles.nc"
    if not path.is_file():
        return None
    try:
        with netCDF4.Dataset(path) as nc:
            status = Counter(int(s) for s in nc.variables[names.STATUS][:])
            split = Counter(int(s) for s in nc.variables[names.SPLIT][:])
            result = {"runs": len(nc.dimensions[names.RUN]), "bins": len(nc.dimensions[names.Z]), "bytes": path.stat().st_size}
    except (OSError, KeyError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable profile dataset ({exc}); rerun its rule") from None
    by_name = {value: key for key, value in names.SPLIT_NAMES.items()}
    result.update(ok=status.get(names.STATUS_OK, 0), failed=sum(n for s, n in status.items() if s != names.STATUS_OK),
                  split={by_name.get(s, str(s)): n for s, n in sorted(split.items())})
    return result


# metrics.json keys shown (the per-run lists and the test profiles stay in the file)
CDFT_KEYS = ("epochs", "best_val_mse", "test_c1_rmse", "test_c1_max_abs", "test_rho_max_abs_error", "test_rho_max_abs_error_within_training_density",
             "test_solves_beyond_training_density", "test_solve_failures", "training_density_max", "train_beta_mu_fit_median_abs_error",
             "train_beta_mu_fit_max_abs_error", "density_unit")


def cdft_status(system_dir: Path) -> dict[str, Any] | None:
    metrics = _read_json(system_dir / "cdft" / "metrics.json")
    if metrics is None:
        return {"state": "training"} if (system_dir / "cdft").is_dir() else None
    return {"state": "trained", "test_runs": len(metrics.get("test_runs", [])), **{k: metrics[k] for k in CDFT_KEYS if k in metrics}}


# summary.json parts whose own result or reason is shown beside the headline
ANALYSIS_PARTS = ("supercritical", "interface", "pores")


def analysis_status(system_dir: Path) -> dict[str, Any] | None:
    """Tc, rho_c, binodal points and status (or the reason), and each other part's reason if it has one."""
    summary = _read_json(system_dir / "analysis" / "summary.json")
    if summary is None:
        return {"state": "running"} if (system_dir / "analysis").is_dir() else None
    bulk = summary.get("bulk", {})
    critical = bulk.get("critical_point") or {}
    units = summary.get("units", {})
    length = units.get("length_unit", "")
    dimension = units.get("dimension", 3)
    result = {
        "state": "done",
        "status": bulk.get("status"),
        "reason": bulk.get("reason") or "",
        "Tc": critical.get("T"),
        "rho_c": critical.get("rho"),
        "temperature_unit": units.get("temperature_unit", ""),
        "density_unit": f"{length}^-{dimension}" if length else "",
        "binodal_points": bulk.get("binodal_points", 0),
        "temperature_range": summary.get("temperature_range"),
        "coverage": (summary.get("coverage") or {}).get("status"),
        "network_Tc": [n.get("T") for n in bulk.get("critical_point_of_each_network", [])],
        "parts": {},
    }
    for part in ANALYSIS_PARTS:
        entry = summary.get(part)
        if isinstance(entry, Mapping):
            result["parts"][part] = entry.get("reason") or "found"
    return result


def coexistence_status(system_dir: Path) -> dict[str, Any] | None:
    """Per slab temperature: the verdict, the coexisting densities with their errors or the reason there are none."""
    path = system_dir / "coexistence" / "coexistence.csv"
    if not path.is_file():
        return {"state": "running"} if (system_dir / "coexistence").is_dir() else None
    columns = ("rho_liquid", "rho_liquid_stderr", "rho_vapour", "rho_vapour_stderr")
    try:
        with open(path, newline="") as handle:
            rows = [{"T": float(row["T"]), "status": row["status"], "reason": row["reason"],
                     **{key: float(row[key]) if row[key] else None for key in columns}} for row in csv.DictReader(handle)]
    except (KeyError, ValueError, TypeError):
        return {"state": "unreadable", "path": str(path)}
    return {"state": "done", "temperatures": rows, "functional": functional_comparison(system_dir / "coexistence" / "functional_vs_direct.csv")}


def functional_comparison(path: Path) -> list[dict[str, Any]] | None:
    """Rung 4's rows (the functional beside the direct densities), None before the comparison ran or when unreadable."""
    if not path.is_file():
        return None
    try:
        with open(path, newline="") as handle:
            return [{"T": float(row["T"]), "phase": row["phase"], "status": row["status"], "reason": row["reason"], "route": row["route"],
                     "relative_difference": float(row["relative_difference"]) if row["relative_difference"] else None,
                     "pull": float(row["pull"]) if row["pull"] else None, "tolerance": float(row["tolerance"]),
                     "within_tolerance": row["within_tolerance"] == "True"} for row in csv.DictReader(handle)]
    except (KeyError, ValueError, TypeError):
        return None


# ---- the campaign ---------------------------------------------------------------------------------
def find_systems(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir() and any((p / marker).exists() for marker in STAGE_MARKERS))


def campaign_status(results: str | Path) -> dict[str, Any]:
    results = Path(results)
    systems = find_systems(results) if results.is_dir() else []  # none yet: the campaign has not started here
    return {
        "results": str(results),
        "systems": {
            s.name: {
                "reference": reference_status(s),
                "mlip": mlip_status(s),
                "sampling": sampling_status(s),
                "profiles": profiles_status(s),
                "cdft": cdft_status(s),
                "analysis": analysis_status(s),
                "coexistence": coexistence_status(s),
            }
            for s in systems
        },
    }


# ---- plain text -----------------------------------------------------------------------------------
def _g(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def _reason_lines(reasons: list[dict[str, Any]], indent: str) -> list[str]:
    return [f"{indent}{r['count']:>5} x {r['example'] if r['count'] == 1 else r['reason']}" for r in reasons]


def _text_reference(rows) -> list[str]:
    lines = []
    for row in rows:
        head = f"  iter{row['iteration']:03d}  "
        if row["state"] == "collected":
            lines.append(f"{head}{row['frames']} frames: {row['labelled']} labelled, {row['failed']} failed")
            lines += _reason_lines(row["failure_reasons"], " " * 12)
        else:
            what = f"{row['shards_done']} shard(s) labelled, not collected" if row["state"] == "labelling" else "waiting for its configurations" if not row["has_configurations"] else "configurations written, no shard labelled yet"
            lines.append(f"{head}{what}")
    return lines


def _text_mlip(mlip) -> list[str]:
    lines = ["  iter  members  train/test frames  force RMSE (eV/Å)  bulk (eV/Å)  accurate  candidate  failed  selected  converged"]
    for r in mlip["iterations"]:
        frames = f"{r['train_frames']}/{r['test_frames']}" if "train_frames" in r else "-"
        converged = {True: "yes", False: "no"}.get(r.get("converged"), "-")
        lines.append(f"  {r['iteration']:03d}   {r['members_trained']:>7}  {frames:>17}  {_g(r.get('force_rmse')):>17}  {_g(r.get('bulk_force_rmse')):>11}  {_g(r.get('accurate'), 2):>8}"
                     f"  {_g(r.get('candidate'), 2):>9}  {_g(r.get('failed'), 2):>6}  {_g(r.get('selected')):>8}  {converged:>9}")
    final = mlip["final"]
    if final:
        lines.append(f"  final model: iteration {final['iteration']:03d}, stop criterion (accurate fraction, bulk force RMSE) {'met' if final['converged'] else 'not met'};"
                     f" held-out force RMSE {_g(final.get('force_rmse'))} eV/Å, bulk {_g(final.get('bulk_force_rmse'))} eV/Å")
    else:
        lines.append("  final model: not yet")
    return lines


def _text_sampling(s) -> list[str]:
    if s["statepoints"]:
        lines = [f"  {s['runs']} runs in {s['batches']} batches: {s['done']} done, {s['failed']} failed, {s['pending']} pending"
                 f" ({len(s['pending_batches'])} batch file(s) missing)"]
    else:
        lines = [f"  no statepoints.csv yet; {s['batch_files']} batch file(s): {s['done']} done, {s['failed']} failed"]
    if s["unreadable_batch_files"]:
        lines.append(f"  unreadable (counted pending): {', '.join(s['unreadable_batch_files'][:5])}{' ...' if len(s['unreadable_batch_files']) > 5 else ''}")
    if s["failure_reasons"]:
        lines.append("  failures:")
        lines += _reason_lines(s["failure_reasons"], "  ")
    return lines


def _text_profiles(p) -> list[str]:
    split = ", ".join(f"{k} {n}" for k, n in p["split"].items())
    return [f"  profiles.nc: {p['runs']} runs x {p['bins']} bins, {_size(p['bytes'])} ({p['ok']} ok, {p['failed']} failed; {split})"]


def _text_cdft(c) -> list[str]:
    if c["state"] != "trained":
        return ["  training (no metrics.json yet)"]
    unit = c.get("density_unit", "")
    lines = [f"  {c.get('epochs', '-')} epochs; held-out c1 RMSE {_g(c.get('test_c1_rmse'))} (max {_g(c.get('test_c1_max_abs'))}) on {c['test_runs']} test runs"]
    lines.append(f"  held-out self-consistent profiles: max |drho| {_g(c.get('test_rho_max_abs_error'))} {unit};"
                 f" {c.get('test_solves_beyond_training_density', 0)} denser than any training bin, {c.get('test_solve_failures', 0)} failed to solve")
    if c.get("train_beta_mu_fit_median_abs_error") is not None:
        lines.append(f"  fitted beta mu vs known: median {_g(c['train_beta_mu_fit_median_abs_error'])}, worst {_g(c['train_beta_mu_fit_max_abs_error'])}")
    return lines


def _text_analysis(a) -> list[str]:
    if a["state"] != "done":
        return ["  running (no summary.json yet)"]
    if a["Tc"] is not None:
        head = f"  Tc = {_g(a['Tc'], 5)} {a['temperature_unit']}, rho_c = {_g(a['rho_c'], 4)} {a['density_unit']}, {a['binodal_points']} binodal points (status: {a['status']})"
    else:
        head = f"  no critical point (status: {a['status']}); {a['binodal_points']} binodal points"
    lines = [head]
    if a["network_Tc"]:
        located = [T for T in a["network_Tc"] if T is not None]
        spread = f"Tc {_g(min(located), 5)} to {_g(max(located), 5)}" if located else "no critical point"
        lines.append(f"  each of the ensemble's {len(a['network_Tc'])} networks: {spread} ({len(located)} with a critical point)")
    if a["reason"]:
        lines.append(f"  reason: {a['reason']}")
    for part, why in a["parts"].items():
        if a["reason"] and why.endswith(a["reason"]):  # the parts that need a binodal repeat its reason
            why = why[: -len(a["reason"])].rstrip(": ") + " (reason above)"
        lines.append(f"  {part}: {why}")
    return lines


def _text_coexistence(c) -> list[str]:
    if c["state"] == "running":
        return ["  running (no coexistence.csv yet)"]
    if c["state"] == "unreadable":
        return [f"  {c['path']}: unreadable; rerun the coexistence_slabs rule"]
    lines = []
    for row in c["temperatures"]:
        if row["status"] == "ok":
            lines.append(f"  T = {_g(row['T'], 5)}: liquid {_g(row['rho_liquid'], 4)} ± {_g(row['rho_liquid_stderr'], 2)}, vapour {_g(row['rho_vapour'], 4)} ± {_g(row['rho_vapour_stderr'], 2)}")
        else:
            lines.append(f"  T = {_g(row['T'], 5)}: {row['status']}: {row['reason']}")
    for row in c.get("functional") or []:
        if row["status"] == "compared":
            verdict = "within" if row["within_tolerance"] else "outside"
            lines.append(f"  functional ({row['route']} route) vs direct, {row['phase']} at T = {_g(row['T'], 5)}: {row['relative_difference']:+.1%}"
                         f" ({row['pull']:+.1f} standard errors), {verdict} {row['tolerance']:.0%}")
        elif row["phase"] == "liquid" and not row["reason"].startswith("direct MD"):  # the functional's reason, once per temperature
            lines.append(f"  functional vs direct at T = {_g(row['T'], 5)}: {row['reason']}")
    return lines


RENDERERS = (("reference", _text_reference), ("mlip", _text_mlip), ("sampling", _text_sampling),
             ("profiles", _text_profiles), ("cdft", _text_cdft), ("analysis", _text_analysis), ("coexistence", _text_coexistence))


def render_text(status: Mapping[str, Any]) -> str:
    if not status["systems"]:
        return (
            f"{status['results']}: no campaign output yet (no system folder with {', '.join(STAGE_MARKERS)}); "
            "start one with snakemake, or name the folder that holds results/<system>/\n"
        )
    screens = []
    for system, stages in status["systems"].items():
        lines = [f"== {system}  ({Path(status['results']) / system})"]
        for stage, render in RENDERERS:
            lines.append(f"{stage}:")
            lines += render(stages[stage]) if stages[stage] is not None else ["  not started"]
        screens.append("\n".join(lines))
    return "\n\n".join(screens) + "\n"


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="where a campaign stands, per system, read from its results folder")
    parser.add_argument("results", nargs="?", default="results", type=Path, help="results folder (default: results)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    parser.set_defaults(func=_run)


def _run(args) -> None:
    status = campaign_status(args.results)
    sys.stdout.write(json.dumps(status, indent=1) + "\n" if args.json else render_text(status))
