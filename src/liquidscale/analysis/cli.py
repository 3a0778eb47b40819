"""``liquidscale analysis run``: thermodynamics, confinement and supercritical lines of one trained functional.

torch and the science modules are imported inside the action, so ``liquidscale --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cli import add_settings_arguments
from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("analysis", help="phase behaviour from a trained functional")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="EOS, binodal, critical point, Widom/Fisher-Widom lines, interface, pores, figures")
    add_settings_arguments(run)
    run.add_argument("--model", required=True, help="folder of the trained functional (model.json + model.safetensors)")
    run.add_argument("--profiles", help="profile dataset (profiles.nc) whose test runs are drawn simulated vs functional")
    run.add_argument("--out", required=True, help="output folder, e.g. results/water/analysis")
    run.add_argument("--threads", type=int, default=1, help="torch threads")
    run.set_defaults(func=_run)
    ref = actions.add_parser("pets-reference", help="the pets analysis beside FeOs's own PeTS answers -> reference.csv, reference.png/.svg")
    add_settings_arguments(ref)
    ref.add_argument("--analysis", required=True, help="folder of the pets analysis (binodal.csv, critical_point.csv, interface.csv, pores.csv, widom.csv)")
    ref.add_argument("--out", required=True, help="output folder for reference.csv and the figure")
    ref.set_defaults(func=_pets_reference)
    lj = actions.add_parser("lj-reference", help="the lj analysis beside the published LJTS data and FeOs's PeTS EOS -> reference.csv, reference.png/.svg")
    add_settings_arguments(lj)
    lj.add_argument("--analysis", required=True, help="folder of the lj analysis (binodal.csv, critical_point.csv, interface.csv, widom.csv, fisher_widom.csv)")
    lj.add_argument("--out", required=True, help="output folder for reference.csv and the figure")
    lj.add_argument("--cutoff", type=float, required=True, help="the sampled potential's cutoff (sampling.lj.cutoff); the literature is for 2.5 sigma")
    lj.set_defaults(func=_lj_reference)


def _pets_reference(args) -> None:
    from .pets_reference import write_reference_comparison

    if args.settings["system"] != "pets":
        raise UserError(f"analysis pets-reference compares the pets system with FeOs, not {args.settings['system']!r}")
    rows = write_reference_comparison(args.analysis, args.out, args.settings)
    checked = [r for r in rows if r["within_target"] is not None]
    print(json.dumps({"rows": len(rows), "missing": sum(r["status"] == "missing" for r in rows),
                      "within_target": f"{sum(bool(r['within_target']) for r in checked)}/{len(checked)}"}))


def _lj_reference(args) -> None:
    from ..fluids.ljts import CUTOFF
    from .lj_reference import write_reference_comparison

    if args.settings["system"] != "lj":
        raise UserError(f"analysis lj-reference compares the lj system with the LJTS literature, not {args.settings['system']!r}")
    if args.cutoff != CUTOFF:
        raise UserError(f"--cutoff {args.cutoff:g}: the published LJTS data are for the potential truncated and shifted at {CUTOFF:g} sigma")
    rows = write_reference_comparison(args.analysis, args.out)
    checked = [r for r in rows if r["within_target"] is not None]
    print(json.dumps({"rows": len(rows), "missing": sum(r["status"] == "missing" for r in rows),
                      "within_target": f"{sum(bool(r['within_target']) for r in checked)}/{len(checked)}"}))


def _run(args) -> None:
    import torch

    from ..cdft.model import load_model
    from ..dataset import open_profile_dataset
    from ..io import provenance
    from .run import AnalysisSettings, run_analysis

    torch.set_num_threads(args.threads)
    settings = args.settings
    functional, metadata = load_model(args.model)
    if metadata["system"] != settings["system"]:
        raise UserError(f"{args.model}: the functional is for system '{metadata['system']}', not '{settings['system']}'")
    inputs = {"model": Path(args.model) / "model.safetensors"}
    profiles = None
    if args.profiles:
        profiles = open_profile_dataset(args.profiles)
        inputs["profiles"] = args.profiles
    record = provenance(settings, seeds={"seed": settings["seed"]}, inputs=inputs, model_training_data_hash=metadata.get("training_data_hash"))
    summary = run_analysis(functional, metadata, AnalysisSettings.from_config(settings["analysis"]), Path(args.out), record, profiles)
    print(json.dumps({k: summary[k] for k in ("bulk", "timings_s")}, indent=1, default=str))
