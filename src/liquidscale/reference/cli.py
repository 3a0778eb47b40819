"""``liquidscale reference configurations|label|collect``: the PySCF reference stage's commands.

PySCF, ase and dpdata are imported inside the actions, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from ..cli import add_settings_arguments
from ..errors import UserError



def register(subparsers) -> None:
    parser = subparsers.add_parser("reference", help="PySCF reference labels (energies, forces) of molecular clusters")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    conf = actions.add_parser("configurations", help="write iteration 0's clusters (and extra configurations) as extxyz")
    add_settings_arguments(conf)
    conf.add_argument("--out", required=True, help="results/{system}/reference/iter000/configurations.extxyz")
    conf.set_defaults(func=_configurations)

    label = actions.add_parser("label", help="label one shard of the configurations with PySCF")
    add_settings_arguments(label)
    label.add_argument("--configurations", required=True, help="extxyz of the iteration's configurations")
    label.add_argument("--shard", required=True, type=int, help="shard index k (0 <= k < reference.shards); frames are split so shard costs balance")
    label.add_argument("--threads", type=int, default=1, help="PySCF (OpenMP) threads")
    label.add_argument("--out", required=True, help="shard folder (results/{system}/reference/iter{i}/shards/shard{k})")
    label.set_defaults(func=_label)

    collect = actions.add_parser("collect", help="merge the shards into deepmd/npy data, extxyz, CSVs and provenance")
    add_settings_arguments(collect)
    collect.add_argument("--configurations", required=True, help="extxyz of the iteration's configurations")
    collect.add_argument("--out", required=True, help="iteration folder (results/{system}/reference/iter{i})")
    collect.add_argument("shards", nargs="+", help="shard folders")
    collect.set_defaults(func=_collect)


def _seeds(settings: dict) -> dict[str, int]:
    from .configurations import system_stream

    return {"seed": settings["seed"], "system_stream": system_stream(settings["system"])}


def _configurations(args: argparse.Namespace) -> None:
    from ..molecules import get_molecule
    from .configurations import iteration0_configurations, frames_to_atoms, write_extxyz

    settings = args.settings
    reference = settings["reference"]
    frames = iteration0_configurations(get_molecule(settings["system"]), reference, settings["seed"], reference["extra_configurations"], settings["bulk_density"])
    write_extxyz(args.out, frames_to_atoms(frames))
    print(f"{len(frames)} configurations -> {args.out}")


def _read_configurations(settings: dict, path: str) -> list:
    from ..molecules import get_molecule
    from .configurations import number_frames, read_extxyz

    return number_frames(read_extxyz(path, get_molecule(settings["system"]), source=path))


def _label(args: argparse.Namespace) -> None:
    from pyscf import lib

    from ..molecules import get_molecule
    from .configurations import assign_shards
    from .output import write_shard
    from .qm import gpu_available, label_shard

    settings = args.settings
    reference = settings["reference"]
    shards = reference["shards"]
    if not 0 <= args.shard < shards:
        raise UserError(f"--shard {args.shard}: must be in 0..{shards - 1} ('reference.shards' is {shards})")
    lib.num_threads(args.threads)
    use_gpu = reference["use_gpu"] and gpu_available()
    if reference["use_gpu"] and not use_gpu:
        print("reference.use_gpu is set but gpu4pyscf cannot be imported here: labelling on the CPU", file=sys.stderr)
    frames = assign_shards(_read_configurations(settings, args.configurations), shards)[args.shard]
    molecule = get_molecule(settings["system"])
    atoms_list, failures = label_shard(frames, reference["method"], molecule.type_map, args.shard, use_gpu=use_gpu)
    write_shard(args.out, atoms_list, failures)
    print(f"shard {args.shard}: {len(atoms_list)} labelled, {len(failures)} failed -> {args.out}")


def _collect(args: argparse.Namespace) -> None:
    from ..molecules import get_molecule
    from .output import collect

    settings = args.settings
    n_frames = len(_read_configurations(settings, args.configurations))
    counts = collect(args.shards, args.configurations, n_frames, args.out, settings, get_molecule(settings["system"]), _seeds(settings))
    print(f"{counts['n_labelled']} labelled and {counts['n_failed']} failed of {counts['n_frames']} frames -> {args.out}")
