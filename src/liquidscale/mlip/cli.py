"""``liquidscale mlip <action>``: the commands the concurrent-learning rules call.

Actions, per system and iteration i: ``data`` (gather labels of iterations 0..i, held-out split,
``sel``), ``train`` (one ensemble member: dp train + freeze), ``test`` (dp test of every member,
metrics JSON, learning curves), ``explore`` (MD + model deviation), ``select`` (clusters for the
reference stage) and ``final`` (the models the sampling stage uses, metadata, convergence figure).
Heavy imports stay inside the functions so that ``liquidscale --help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_settings_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("mlip", help="DeePMD ensemble training, exploration and model-deviation selection")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, func) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        add_settings_arguments(sub)
        sub.add_argument("--iteration", type=int, default=0, help="concurrent-learning iteration")
        sub.add_argument("--out", required=True, help="output file or folder")
        sub.add_argument("--threads", type=int, default=1, help="CPU threads (a job resource: not in --settings)")
        sub.set_defaults(func=func)
        return sub

    sub = action("data", "gather labelled data of iterations 0..i, split held-out frames, size sel", _data)
    sub.add_argument("--reference", nargs="+", required=True, help="reference/iter{k}/data folders, k = 0..i in order")
    sub = action("train", "train and freeze one ensemble member (dp --pt train/freeze)", _train)
    sub.add_argument("--member", type=int, required=True, help="ensemble member index")
    sub.add_argument("--data", required=True, help="this iteration's mlip data folder")
    sub.add_argument("--previous", help="the same member's folder of the previous iteration (reused when no data were added)")
    sub = action("test", "every member on the held-out frames and the held-out bulk environments; metrics JSON and learning curves", _test)
    sub.add_argument("--data", required=True, help="this iteration's mlip data folder")
    sub.add_argument("--models", nargs="+", required=True, help="member folders")
    sub.add_argument("--figure", required=True, help="learning-curve figure (png)")
    sub = action("explore", "MD with model 0 at the campaign's state points; model deviation of every saved frame", _explore)
    sub.add_argument("--models", nargs="+", required=True, help="member folders of this iteration (each with model.pth)")
    sub = action("select", "classify explored frames, cut and pick clusters for the reference stage", _select)
    sub.add_argument("--explore", required=True, help="this iteration's exploration folder")
    sub.add_argument("--metrics", required=True, help="this iteration's metrics JSON (its held-out bulk force RMSE)")
    sub.add_argument("--report", required=True, help="selection report JSON")
    sub = action("final", "collect the last iteration's models, metadata and convergence figure", _final)
    sub.add_argument("--iterations", nargs="+", required=True, help="mlip/iter{k} folders, k = 0..last in order")



def _data(args) -> None:
    import numpy as np

    from ..io import atomic_path, file_hash, provenance, write_json
    from ..molecules import get_molecule
    from . import data
    from .exploration import densest

    settings = args.settings
    mlip = settings["mlip"]
    molecule = get_molecule(settings["system"])
    type_map = list(molecule.type_map)
    sources = [(k, Path(p)) for k, p in enumerate(args.reference)]
    with atomic_path(args.out) as tmp:
        counts = data.split_data(sources, type_map, mlip["training"]["test_fraction"], settings["seed"], tmp)
        rcut = mlip["descriptor"]["rcut"]
        seen = np.max([data.neighbour_counts(data.load_frames(f, type_map), rcut, len(type_map)) for f in data.system_folders([tmp / "train"])], axis=0)
        per_molecule = [molecule.symbols.count(el) for el in type_map]
        bulk = data.bulk_neighbour_estimate(rcut, densest(settings["sampling"], settings["system"]), per_molecule)
        summary = {
            "system": settings["system"],
            "iteration": args.iteration,
            "type_map": type_map,
            "frames": counts,
            "neighbours_in_data": seen.tolist(),
            "sel_auto": data.auto_sel(seen, bulk),
            "train_hash": file_hash(tmp / "train"),
            "reference_hashes": {f"iter{k:03d}": file_hash(p) for k, p in sources},
            "provenance": provenance(settings, seeds={"split": settings["seed"]}),
        }
        write_json(tmp / "summary.json", summary)


def _train(args) -> None:
    import os
    import shutil

    from ..device import device_record, resolve_device
    from ..io import atomic_path, canonical_hash, provenance, read_json, write_json
    from . import data, training

    settings = args.settings
    mlip = settings["mlip"]
    device = resolve_device(mlip["training"]["device"], "mlip.training.device")
    if device == "cpu":
        os.environ["DEVICE"] = "cpu"  # dp --pt otherwise takes any GPU it sees
    summary = read_json(Path(args.data) / "summary.json")
    seed = training.member_seed(settings["seed"], settings["system"], args.iteration, args.member)
    previous = Path(args.previous) if args.previous else None
    workdir = training.training_folder(args.out)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        if previous is not None and read_json(previous / "member.json")["train_hash"] == summary["train_hash"]:
            # no frames were added (the previous selection was empty): reuse, do not retrain
            for name in ("model.pth", "lcurve.out", "input.json"):
                shutil.copy2(previous / name, tmp / name)
            reused_from = str(previous)
        else:
            data.check_folders(Path(args.data) / "train", summary["type_map"], "mlip_data", args.data)
            train_dirs = [str(p.resolve()) for p in data.system_folders([Path(args.data) / "train"])]
            sel = training.resolve_sel(mlip["descriptor"]["type"], mlip["descriptor"]["sel"], summary["sel_auto"], len(summary["type_map"]))
            dp_input = training.training_input(mlip, summary["type_map"], sel, train_dirs, seed)
            # trained beside the output, not in the temporary folder: a killed job's retry continues from
            # DeePMD's last checkpoint there (dp --pt train --restart)
            restart = training.resume_training(workdir, canonical_hash({"input": dp_input, "train_hash": summary["train_hash"]}))
            write_json(workdir / "input.json", dp_input)
            training.train_and_freeze(workdir / "input.json", workdir, args.threads, restart)
            for name in ("model.pth", "lcurve.out", "input.json"):
                shutil.copy2(workdir / name, tmp / name)
            reused_from = None
        write_json(
            tmp / "member.json",
            {
                "member": args.member,
                "seed": seed,
                "train_hash": summary["train_hash"],
                "reused_from": reused_from,
                "provenance": provenance(settings, seeds={"model": seed}, inputs={"train": Path(args.data) / "train"}, compute=device_record(device)),
            },
        )
    shutil.rmtree(workdir, ignore_errors=True)


def _test(args) -> None:
    import numpy as np

    from ..io import provenance, read_json, write_json
    from . import data, training

    settings = args.settings
    _set_threads(args.threads)
    summary = read_json(Path(args.data) / "summary.json")
    type_map = summary["type_map"]
    parts = {"held_out": Path(args.data) / "test", "bulk": Path(args.data) / "bulk"}
    for part in parts.values():
        data.check_folders(part, type_map, "mlip_data", args.data)
    members = []
    for folder in map(Path, args.models):
        curve = training.read_lcurve(folder / "lcurve.out")
        members.append(
            {
                "model": folder.name,
                **{name: training.held_out_errors(folder / "model.pth", part, type_map) for name, part in parts.items()},
                "train_final": {"energy_rmse_per_atom": float(curve["rmse_e_trn"][-1]), "force_rmse": float(training.force_column(curve)[-1])},
                "seed": read_json(folder / "member.json")["seed"],
            }
        )
    metrics = {
        "system": settings["system"],
        "iteration": args.iteration,
        "frames": summary["frames"],
        "units": {"energy_rmse_per_atom": "eV/atom", "force_rmse": "eV/Å"},
        "force_atoms": "weighted as trained (plain clusters and environments' core atoms 1, their shell atoms reference.environment.shell_force_weight); bulk: core atoms only",
        "held_out_mean": {key: float(np.mean([m["held_out"][key] for m in members])) for key in ("energy_rmse_per_atom", "force_rmse")},
        "bulk_mean": {"force_rmse": float(np.mean([m["bulk"]["force_rmse"] for m in members]))},
        "members": members,
        "provenance": provenance(settings, inputs={"data": Path(args.data) / "summary.json"}),
    }
    write_json(args.out, metrics)
    curves = [training.read_lcurve(Path(folder) / "lcurve.out") for folder in args.models]
    training.plot_learning_curves(curves, Path(args.figure), f"{settings['system']} iteration {args.iteration}")


def _explore(args) -> None:
    from ..device import device_record, resolve_device
    from ..io import atomic_path, provenance, write_json
    from ..molecules import get_molecule
    from . import exploration
    from .deepmd_potential import DeepMDPotential

    settings = args.settings
    mlip, system = settings["mlip"], settings["system"]
    explore = mlip["explore"]
    _set_threads(args.threads)
    device = resolve_device(explore["device"], "mlip.explore.device")
    molecule = get_molecule(system)
    symbols = list(molecule.symbols) * explore["molecules"]
    models = [DeepMDPotential(Path(folder) / "model.pth", symbols, device, explore["precision"]) for folder in args.models]
    temperature_range = settings["system_settings"]["temperature_range"]
    sampling = settings["sampling"]
    replicas = exploration.state_points(system, explore, sampling, temperature_range, settings["seed"], args.iteration, models[0].cutoff)
    symbols, trajectory, failures = exploration.run_exploration(models[0], molecule, replicas, explore, sampling[system], device)
    deviation, atom = exploration.frame_deviations(models, trajectory)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        exploration.write_exploration(tmp, symbols, trajectory, replicas, deviation, atom)
        write_json(
            tmp / "explore.json",
            {
                "replicas": [exploration.replica_record(r) for r in replicas],
                "failures": {str(k): v for k, v in failures.items()},
                "missing_frames": exploration.expected_frames(explore) * len(replicas) - len(trajectory.positions),
                "provenance": provenance(
                    settings,
                    seeds={"replicas": [r.seed for r in replicas]},
                    inputs={f"model{k}": Path(p) / "model.pth" for k, p in enumerate(args.models)},
                    compute=device_record(device, explore["precision"]),
                ),
            },
        )


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _select(args) -> None:
    from ..io import atomic_path, provenance, read_json, write_json
    from ..molecules import get_molecule
    from . import exploration, selection

    settings = args.settings
    molecule = get_molecule(settings["system"])
    symbols, frames, cells, deviation, atom = exploration.read_exploration(args.explore)
    missing = read_json(Path(args.explore) / "explore.json")["missing_frames"]
    bulk_force_rmse = read_json(args.metrics)["bulk_mean"]["force_rmse"]
    clusters, report = selection.select_clusters(
        symbols, frames, cells, deviation, atom, molecule, settings["mlip"]["select"], settings["environment"], missing, bulk_force_rmse
    )
    with atomic_path(args.out) as tmp:
        selection.write_clusters(tmp, clusters, settings["system"], args.iteration)
    report.update(
        system=settings["system"],
        iteration=args.iteration,
        trust_lo=settings["mlip"]["select"]["trust_lo"],
        trust_hi=settings["mlip"]["select"]["trust_hi"],
        selected_deviation=[c.deviation for c in clusters],
        selected_molecules=[len(c.symbols) // len(molecule.symbols) for c in clusters],
        provenance=provenance(settings, inputs={"model_devi": Path(args.explore) / "model_devi.csv", "metrics": args.metrics}),
    )
    write_json(args.report, report)


def _final(args) -> None:
    import shutil

    from ..io import atomic_path, provenance, read_json, write_json
    from . import convergence

    settings = args.settings
    iterations = [Path(p) for p in args.iterations]
    last = iterations[-1]
    members = sorted(p for p in last.glob("model*") if p.is_dir())
    data_summary = read_json(last / "data" / "summary.json")
    history = convergence.history(iterations)
    out = Path(args.out)
    for k, member in enumerate(members):
        with atomic_path(out / f"model{k}.pth") as tmp:
            shutil.copy2(member / "model.pth", tmp)
    descriptor = read_json(members[0] / "input.json")["model"]["descriptor"]
    metadata = {
        "system": settings["system"],
        "iteration": len(iterations) - 1,
        "models": [f"model{k}.pth" for k in range(len(members))],
        "type_map": data_summary["type_map"],
        "rcut": descriptor["rcut"],
        "descriptor": descriptor["type"],
        "sel": descriptor["sel"],
        "training_frames": data_summary["frames"],
        "training_data_hashes": {"train": data_summary["train_hash"], **data_summary["reference_hashes"]},
        "metrics": {**read_json(last / "metrics.json")["held_out_mean"], "bulk_force_rmse": history[-1]["bulk_force_rmse"]},
        "history": history,
        "converged": history[-1]["converged"],
        "versions": convergence.versions(),
        "training_compute": [read_json(m / "member.json")["provenance"].get("compute") for m in members],
        "provenance": provenance(settings, inputs={f"model{k}": m / "model.pth" for k, m in enumerate(members)}),
    }
    convergence.write_table(history, out / "convergence.csv")
    convergence.plot(history, out / "convergence.png", settings["system"])
    write_json(out / "metadata.json", metadata)
