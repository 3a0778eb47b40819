"""Training the neural c1 functional on a profile dataset, and its held-out metrics.

Target (Euler-Lagrange): c1(z) = ln rho(z) + beta V_ext(z) - beta mu_k. Where a run's mu is known
(hard rods) it is used; otherwise (canonical MD) beta mu_k is fitted jointly with the network
("neural mu"). The per-run parameters enter the loss quadratically, so at every step they are set to
their exact least-squares optimum for the current network (the masked mean of ln rho + beta V - c1)
instead of being chased by gradient steps: the same joint minimum, reached as fast as with known mu.
The network's exact gauge c1[rho = 0] = 0 makes the fit unique.
Bins with too little density for a meaningful log are masked. Runs are mirrored z -> -z.
Interrupted trainings resume from ``checkpoint.pt`` (plain tensors, loaded with weights_only).
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import dataset as pds
from ..errors import UserError
from ..io import atomic_path, canonical_hash, write_json
from .model import NeuralC1, save_model
from .solver import ConvergenceError, SolverSettings, solve

CHECKPOINT_FILE = "checkpoint.pt"
CURVE_CSV = "training.csv"
CURVE_PNG = "training.png"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TrainingSettings:
    """The cdft config section for one system (``window`` is that system's entry of ``cdft.window``)."""

    window: float
    channels: tuple[int, ...] = (32, 32)
    optimizer: str = "lbfgs"
    max_epochs: int = 300
    patience: int = 30
    lbfgs_iterations: int = 20
    warmup_passes: int = 30
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    batch_runs: int = 8
    min_density_fraction: float = 1e-3
    mirror: bool = True
    use_known_mu: bool = True
    checkpoint_every: int = 10
    solve_tolerance: float = 1e-8

    @classmethod
    def from_stage_settings(cls, settings: Mapping[str, Any]) -> "TrainingSettings":
        """From ``stage_settings(config, system, 'cdft')``."""
        section = dict(settings["cdft"])
        system = settings["system"]
        windows = section.pop("window")
        if system not in windows:
            raise UserError(f"config key 'cdft.window.{system}' is missing: the window half-width of the {system} functional")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in section.items() if k in known}
        if "channels" in kwargs:
            kwargs["channels"] = tuple(kwargs["channels"])
        return cls(window=float(windows[system]), **kwargs)


@dataclass
class Runs:
    """The ok runs of one split as tensors: rho, beta V_ext, T, mask, ln rho + beta V (masked bins 0), known beta mu (NaN)."""

    run: np.ndarray
    rho: torch.Tensor
    beta_V: torch.Tensor
    T: torch.Tensor
    mask: torch.Tensor
    log_boltzmann_inverse: torch.Tensor
    beta_mu_known: torch.Tensor
    mean_density: torch.Tensor

    def __len__(self) -> int:
        return len(self.run)


def prepare_runs(ds, split: str, min_density_fraction: float) -> Runs:
    part = pds.ok_runs(ds, split)
    k_B = float(ds.attrs["k_B"])
    rho = torch.as_tensor(part[pds.RHO].values, dtype=torch.float64)
    T = torch.as_tensor(part[pds.TEMPERATURE].values, dtype=torch.float64)
    beta_V = torch.as_tensor(part[pds.V_EXT].values, dtype=torch.float64) / (k_B * T[:, None])
    mean_density = torch.as_tensor(part[pds.N_PARTICLES].values / (part[pds.AREA].values * pds.box_length(ds)))
    mask = (rho > min_density_fraction * rho.mean(1, keepdim=True)) & torch.isfinite(beta_V)
    target = torch.where(mask, torch.log(rho.clamp_min(1e-300)) + torch.where(mask, beta_V, 0.0), 0.0)
    beta_mu = torch.as_tensor(part[pds.MU].values, dtype=torch.float64) / (k_B * T)
    return Runs(part[pds.RUN].values, rho, beta_V, T, mask, target, beta_mu, mean_density)


def dataset_hash(ds) -> str:
    """SHA-256 of the data the functional learns from (profiles, potentials, T, mu, split, status)."""
    digest = hashlib.sha256()
    for name in (pds.RHO, pds.V_EXT, pds.TEMPERATURE, pds.MU, pds.SPLIT, pds.STATUS):
        digest.update(np.ascontiguousarray(ds[name].values).tobytes())
    return digest.hexdigest()


def fitted_beta_mu(model: NeuralC1, runs: Runs) -> torch.Tensor:
    """Least-squares beta mu of each run for a fixed network: the masked mean of ln rho + beta V - c1."""
    with torch.no_grad():
        residual = runs.log_boltzmann_inverse - model.c1(runs.rho, runs.T)
    return (residual * runs.mask).sum(1) / runs.mask.sum(1)


def c1_errors(model: NeuralC1, runs: Runs, use_known_mu: bool) -> dict[str, Any]:
    """Masked c1 errors per run, with the known beta mu or, where unknown or hidden, the least-squares one."""
    fitted = fitted_beta_mu(model, runs)
    known = torch.isfinite(runs.beta_mu_known) & use_known_mu
    beta_mu = torch.where(known, runs.beta_mu_known, fitted)
    with torch.no_grad():
        error = (model.c1(runs.rho, runs.T) - (runs.log_boltzmann_inverse - beta_mu[:, None])) * runs.mask
    count = runs.mask.sum(1)
    mse = (error**2).sum(1) / count
    return {
        "mse": float((error**2).sum() / count.sum()),
        "rmse_per_run": mse.sqrt().tolist(),
        "max_abs": float(error.abs().max()),
        "beta_mu_fitted": fitted.tolist(),
    }


class _Trainer:
    """Network + optimiser (+ the runs' known beta mu), with checkpointing of all of them.

    ``lbfgs``: full-batch L-BFGS, one epoch = ``lbfgs_iterations`` function evaluations (fast and
    precise for the small datasets of a campaign); ``adam``: minibatches of ``batch_runs`` runs with
    an exponentially decaying learning rate (for datasets too large for one batch).
    """

    def __init__(self, train: Runs, settings: TrainingSettings, dz: float, seed: int):
        torch.manual_seed(seed)
        s = settings
        self.settings, self.seed = s, seed
        density_scale = float(train.rho[train.mask].mean())
        T = train.T.numpy()
        self.model = NeuralC1(dz, s.window, s.channels, density_scale, [float(T.min()), float(T.max())])
        self.beta_mu_known = train.beta_mu_known
        self.known = torch.isfinite(train.beta_mu_known) & s.use_known_mu
        mirrored = (lambda x: torch.cat([x, x.flip(-1)])) if s.mirror else (lambda x: x)
        self.rho, self.mask, self.base = (mirrored(x) for x in (train.rho, train.mask, train.log_boltzmann_inverse))
        self.T = train.T.repeat(2) if s.mirror else train.T
        self.run_index = torch.arange(len(train)).repeat(2 if s.mirror else 1)
        if s.optimizer == "lbfgs":
            self.optimizer = torch.optim.LBFGS(
                self.model.parameters(),
                lr=1.0,
                max_iter=s.lbfgs_iterations,
                history_size=50,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-14,
                tolerance_change=1e-16,
            )
        elif s.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=s.learning_rate)
        else:
            raise UserError(f"config key 'cdft.optimizer': {s.optimizer!r} is not 'lbfgs' or 'adam'")
        decay = (s.final_learning_rate / s.learning_rate) ** (1.0 / max(s.max_epochs, 1))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda epoch: decay**epoch)
        self.epoch = 0
        self.history: list[list[float]] = []
        self.best_val = math.inf
        self.best_state: dict[str, torch.Tensor] = {}

    def loss(self, rows: torch.Tensor | slice) -> torch.Tensor:
        """Masked mean squared c1 error; unknown beta mu_k at their least-squares optimum for these rows."""
        mask, runs = self.mask[rows], self.run_index[rows]
        residual = (self.base[rows] - self.model.c1(self.rho[rows], self.T[rows])) * mask
        count = torch.zeros(len(self.known), dtype=torch.float64).index_add_(0, runs, mask.sum(1).double())
        fitted = torch.zeros(len(self.known), dtype=torch.float64).index_add_(0, runs, residual.sum(1)) / count.clamp_min(1)
        beta_mu = torch.where(self.known, self.beta_mu_known, fitted)
        return (((residual - beta_mu[runs, None]) * mask) ** 2).sum() / mask.sum()

    def run_epoch(self) -> float:
        self.model.train()
        if self.settings.optimizer == "adam":
            loss = self._adam_pass(self.optimizer, self.epoch)
            self.scheduler.step()
            return loss
        if self.epoch == 0:  # L-BFGS converges far faster from a roughly fitted network
            warmup = torch.optim.Adam(self.model.parameters(), lr=self.settings.learning_rate * 3)
            for step in range(self.settings.warmup_passes):
                self._adam_pass(warmup, -1 - step)
        return self.optimizer.step(self._closure).item()

    def _adam_pass(self, optimizer: torch.optim.Optimizer, seed_offset: int) -> float:
        """One pass over the (mirrored) training runs in seeded random minibatches."""
        rows_per_batch = (2 if self.settings.mirror else 1) * self.settings.batch_runs
        order = np.random.default_rng([self.seed, seed_offset + 1000]).permutation(len(self.rho))
        losses = []
        for start in range(0, len(order), rows_per_batch):
            loss = self.loss(torch.as_tensor(order[start : start + rows_per_batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def _closure(self) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = self.loss(slice(None))
        loss.backward()
        return loss

    def state(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 4),
            "best_val": self.best_val,
            "best_state": self.best_state,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"].tolist()
        self.best_val = float(state["best_val"])
        self.best_state = dict(state["best_state"])

def train_functional(ds, settings: TrainingSettings, seed: int, out_dir: str | Path, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Train on the train runs with early stopping on the val runs; write model, curve and held-out metrics.

    Returns the metrics dict (also written to ``metrics.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {name: prepare_runs(ds, name, settings.min_density_fraction) for name in pds.SPLIT_NAMES}
    for name in ("train", "val", "test"):
        if len(splits[name]) == 0:
            raise UserError(f"profile dataset of {ds.attrs['system']}: no ok runs in the {name} split; more runs are needed")
    data_hash = dataset_hash(ds)
    trainer = _Trainer(splits["train"], settings, pds.grid_spacing(ds), seed)
    key = canonical_hash({"settings": asdict(settings), "data": data_hash, "seed": seed})
    _resume(trainer, out_dir / CHECKPOINT_FILE, key)
    stale = 0 if not trainer.history else trainer.epoch - 1 - int(np.argmin([h[2] for h in trainer.history]))
    while trainer.epoch < settings.max_epochs and stale < settings.patience:
        train_mse = trainer.run_epoch()
        trainer.epoch += 1
        trainer.model.eval()
        val_mse = c1_errors(trainer.model, splits["val"], settings.use_known_mu)["mse"]
        trainer.history.append([trainer.epoch, train_mse, val_mse, trainer.optimizer.param_groups[0]["lr"]])
        if val_mse < trainer.best_val:
            trainer.best_val, stale = val_mse, 0
            trainer.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            stale += 1
        if trainer.epoch % settings.checkpoint_every == 0:
            with atomic_path(out_dir / CHECKPOINT_FILE) as tmp:
                torch.save(trainer.state(key), tmp)
    trainer.model.load_state_dict(trainer.best_state)
    trainer.model.eval()
    metrics = held_out_metrics(trainer.model, splits, settings, ds)
    metrics.update(epochs=trainer.epoch, best_val_mse=trainer.best_val)
    save_model(trainer.model, _metadata(ds, settings, data_hash, training_density_max(splits["train"]), provenance), out_dir)
    _write_curve(trainer.history, out_dir)
    write_json(out_dir / METRICS_FILE, metrics)
    (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return metrics


def _resume(trainer: _Trainer, path: Path, key: str) -> None:
    """Continue from a checkpoint written for the same settings, data and seed (otherwise start afresh)."""
    if not path.is_file():
        return
    try:
        state = torch.load(path, weights_only=True)
    except (RuntimeError, OSError, EOFError):
        return  # a corrupt checkpoint is only lost time: train from the start
    if state.get("key") == key:
        trainer.restore(state)


def held_out_metrics(model: NeuralC1, splits: Mapping[str, Runs], settings: TrainingSettings, ds) -> dict[str, Any]:
    """c1 errors on test runs; per test run the canonical self-consistent rho (same N) vs the data; fitted mu."""
    train, test = splits["train"], splits["test"]
    errors = c1_errors(model, test, settings.use_known_mu)
    hidden = torch.isfinite(train.beta_mu_known) & (not settings.use_known_mu)
    beta_mu_errors = (fitted_beta_mu(model, train) - train.beta_mu_known)[hidden].abs()
    density_max = training_density_max(train)
    profiles = [_solve_like(model, test, k, settings, ds, density_max) for k in range(len(test))]
    solved = [p for p in profiles if "max_abs_drho" in p]
    inside = [p for p in solved if not p["beyond_training_density"]]
    return {
        "density_unit": ds[pds.RHO].attrs["units"],
        "test_runs": test.run.tolist(),
        "test_c1_rmse": math.sqrt(errors["mse"]),
        "test_c1_rmse_per_run": errors["rmse_per_run"],
        "test_c1_max_abs": errors["max_abs"],
        "test_profiles": profiles,
        "test_rho_max_abs_error": max((p["max_abs_drho"] for p in solved), default=None),
        "test_rho_max_abs_error_within_training_density": max((p["max_abs_drho"] for p in inside), default=None),
        "test_solves_beyond_training_density": len(solved) - len(inside),
        "test_solve_failures": len(profiles) - len(solved),
        "training_density_max": density_max,
        "train_beta_mu_fit_max_abs_error": float(beta_mu_errors.max()) if hidden.any() else None,
        "train_beta_mu_fit_median_abs_error": float(beta_mu_errors.median()) if hidden.any() else None,
        "use_known_mu": settings.use_known_mu,
    }


def training_density_max(train: Runs) -> float:
    """The largest density the functional was trained on: a solution denser than this is an extrapolation."""
    return float(train.rho[train.mask].max())


def _solve_like(model: NeuralC1, runs: Runs, k: int, settings: TrainingSettings, ds, density_max: float) -> dict[str, Any]:
    """Solve canonically in run k's potential at its mean density, compare with its rho, flag a solution denser than any training bin."""
    k_B = float(ds.attrs["k_B"])
    T = float(runs.T[k])
    V = (runs.beta_V[k] * k_B * T).numpy()
    mean_density = float(runs.mean_density[k])
    record: dict[str, Any] = {"run": int(runs.run[k])}
    try:
        solution = solve(model, V, T, mean_density=mean_density, k_B=k_B, settings=SolverSettings(tol=settings.solve_tolerance * mean_density))
    except ConvergenceError as exc:
        record["failure"] = str(exc)
        return record
    drho = solution.rho - runs.rho[k].numpy()
    record.update(
        max_abs_drho=float(np.abs(drho).max()),
        rms_drho=float(np.sqrt(np.mean(drho**2))),
        iterations=solution.iterations,
        density_max=float(solution.rho.max()),
        beyond_training_density=bool(solution.rho.max() > density_max),
    )
    if torch.isfinite(runs.beta_mu_known[k]):
        record["beta_mu_error"] = solution.beta_mu - float(runs.beta_mu_known[k])
    return record


def _metadata(ds, settings: TrainingSettings, data_hash: str, density_max: float, provenance: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "system": ds.attrs["system"],
        "site": ds.attrs["site"],
        "dimension": int(ds.attrs["dimension"]),
        "length_unit": ds.attrs["length_unit"],
        "energy_unit": ds.attrs["energy_unit"],
        "temperature_unit": ds[pds.TEMPERATURE].attrs.get("units", ""),
        "density_unit": ds[pds.RHO].attrs["units"],
        "k_B": float(ds.attrs["k_B"]),
        "c1_convention": "c1 = ln rho + beta V_ext - beta mu, with ln(Lambda^d) absorbed into beta mu; c1[rho = 0] = 0",
        "training_data_hash": data_hash,
        "training_density_max": density_max,
        "training": asdict(settings),
        "provenance": dict(provenance),
    }


def _write_curve(history: list[list[float]], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(out_dir / CURVE_CSV) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_mse_c1", "val_mse_c1", "learning_rate"])
        writer.writerows([int(row[0]), *row[1:]] for row in history)
    data = np.asarray(history).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(data[:, 0], data[:, 1], label="train")
    ax.semilogy(data[:, 0], data[:, 2], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared c1 error")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_dir / CURVE_PNG) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
