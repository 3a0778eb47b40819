"""``liquidscale cdft <action>``: hard-rod verification data and neural-functional training.

torch is imported only inside the actions, so ``liquidscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import settings_json
from ..errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("cdft", help="neural classical DFT: hard-rod verification data, training of the c1 functional")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    data = actions.add_parser("hard-rods-data", help="exact Percus profiles of hard rods in random potentials (known mu) -> profiles.nc")
    _common(data)
    data.set_defaults(func=_hard_rods_data)

    pets = actions.add_parser("pets-data", help="FeOs's PeTS cDFT profiles in random potentials between hard walls (known mu) -> profiles.nc")
    _common(pets)
    pets.set_defaults(func=_pets_data)

    train = actions.add_parser("train", help="train the neural c1 functional on a profile dataset; write model, curve, held-out metrics")
    _common(train)
    train.add_argument("--profiles", required=True, type=Path, help="profile dataset (profiles.nc)")
    train.set_defaults(func=_train)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True, type=settings_json, help="JSON of stage_settings(config, system, stage): stage 'profiles' for hard-rods-data and pets-data, 'cdft' for train")
    parser.add_argument("--out", required=True, type=Path, help="output file (hard-rods-data, pets-data) or folder (train)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


def _hard_rods_data(args) -> None:
    import torch

    from ..dataset import write_profile_dataset
    from ..io import provenance
    from ..fluids.hard_rods import hard_rod_dataset

    torch.set_num_threads(args.threads)
    settings = args.settings
    if settings["system"] != "hard_rods":
        raise UserError(f"cdft hard-rods-data makes the hard_rods system's data, not {settings['system']!r}")
    record = provenance(settings, seeds={"hard_rods": settings["seed"]})
    ds = hard_rod_dataset(settings["system_settings"], settings["profiles"]["split"], settings["seed"], record)
    write_profile_dataset(ds, args.out)


def _pets_data(args) -> None:
    from ..dataset import write_profile_dataset
    from ..fluids.pets import pets_dataset
    from ..io import provenance

    settings = args.settings
    if settings["system"] != "pets":
        raise UserError(f"cdft pets-data makes the pets system's data, not {settings['system']!r}")
    record = provenance(settings, seeds={"pets": settings["seed"]})
    ds = pets_dataset(settings["system_settings"], settings["profiles"]["split"], settings["seed"], record)
    write_profile_dataset(ds, args.out)


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
