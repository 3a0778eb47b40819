"""``liquidscale cdft <action>``: reference-fluid verification data and neural-functional training.

torch is imported only inside the actions, so ``liquidscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import add_settings_arguments
from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("cdft", help="neural classical DFT: reference-fluid verification data, training of the c1 functional")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    data = actions.add_parser("fluid-data", help="profiles of a reference fluid (hard_rods: exact Percus; pets: FeOs's PeTS cDFT) in random potentials, mu known -> profiles.nc")
    _common(data)
    data.set_defaults(func=_fluid_data)

    train = actions.add_parser("train", help="train the neural c1 functional on a profile dataset; write model, curve, held-out metrics")
    _common(train)
    train.add_argument("--profiles", required=True, type=Path, help="profile dataset (profiles.nc)")
    train.set_defaults(func=_train)


def _common(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="output file (fluid-data) or folder (train)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


# reference fluid -> "module:function(block, split_fractions, seed, provenance)" making its profile dataset
FLUID_DATASETS = {
    "hard_rods": "liquidscale.fluids.hard_rods:hard_rod_dataset",
    "pets": "liquidscale.fluids.pets:pets_dataset",
}


def _fluid_data(args) -> None:
    import importlib

    import torch

    from ..dataset import write_profile_dataset
    from ..io import provenance

    torch.set_num_threads(args.threads)
    settings = args.settings
    system = settings["system"]
    if system not in FLUID_DATASETS:
        raise UserError(f"cdft fluid-data makes the data of a reference fluid ({', '.join(FLUID_DATASETS)}), not of {system!r}")
    module, function = FLUID_DATASETS[system].split(":")
    make_dataset = getattr(importlib.import_module(module), function)
    record = provenance(settings, seeds={system: settings["seed"]})
    write_profile_dataset(make_dataset(settings["system_settings"], settings["profiles"]["split"], settings["seed"], record), args.out)


def _train(args) -> None:
    import torch

    from ..dataset import open_profile_dataset
    from ..io import provenance
    from .train import TrainingSettings, train_functional

    torch.set_num_threads(args.threads)
    settings = args.settings
    ds = open_profile_dataset(args.profiles)
    record = provenance(settings, seeds={"cdft": settings["seed"]}, inputs={"profiles": args.profiles})
    metrics = train_functional(ds, TrainingSettings.from_stage_settings(settings), settings["seed"], args.out, record)
    print(json.dumps({k: v for k, v in metrics.items() if k != "test_profiles"}, indent=1))
