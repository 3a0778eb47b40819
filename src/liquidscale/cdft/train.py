"""Training the neural c1 functional on a profile dataset, and its held-out metrics.

Target (Euler-Lagrange): c1(z) = ln rho(z) + beta V_ext(z) - beta mu_k. Where a run's mu is known
(hard rods) it is used; otherwise (canonical MD) beta mu_k is fitted jointly with the network
("neural mu"). The per-run parameters enter the loss quadratically, so at every step they are set to
their exact least-squares optimum for the current network (the masked mean of ln rho + beta V - c1)
instead of being chased by gradient steps: the same joint minimum, reached as fast as with known mu.
The network's exact gauge c1[rho = 0] = 0 makes the fit unique.
Where a run also carries a Widom test-particle beta mu (``beta_mu_widom`` with its stderr; LJ runs), that
measurement is a Gaussian prior on the run's beta mu (``cdft.widom_anchor``): the gauge alone lets a slow,
T-dependent offset of the level of c1 through, which an independent measurement of mu pins.
Bins with too little density for a meaningful log are masked. Where the dataset carries a per-bin
standard error of rho, each bin's squared residual is weighted by the inverse variance of its ln rho
(the fitted beta mu_k become weighted means) and bins without a clear signal are masked (``usable_bins``).
Runs are mirrored z -> -z.
``cdft.ensemble`` > 1 trains that many networks from consecutive seeds and saves their mean c1 (``EnsembleC1``).
Interrupted trainings resume from ``checkpoint.pt`` (plain tensors, loaded with weights_only; an ensemble's
networks from ``members/NN/checkpoint.pt``).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import dataset as pds
from ..errors import UserError
from ..io import atomic_path, canonical_hash, write_json
from ..logs import setup_logging
from .functional import Functional
from .heldout import canonical_prediction
from .model import EnsembleC1, NeuralC1, save_model
from .solver import ConvergenceError, SolverSettings

CHECKPOINT_FILE = "checkpoint.pt"
CURVE_CSV = "training.csv"
CURVE_PNG = "training.png"
HELDOUT_PNG = "heldout_profiles.png"
METRICS_FILE = "metrics.json"
MEMBERS_FOLDER = "members"  # an ensemble's networks' checkpoints while it trains

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    """The cdft config section for one system (``window`` is that system's entry of ``cdft.window``)."""

    window: float
    architecture: str = "conv"
    temperature_inputs: tuple[str, ...] = ("T", "1/T")
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
    min_signal_to_noise: float = 3.0
    log_density_noise_floor: float = 0.01
    mirror: bool = True
    use_known_mu: bool = True
    widom_anchor: bool = True
    checkpoint_every: int = 10
    solve_tolerance: float = 1e-8
    ensemble: int = 1

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
        for key in ("channels", "temperature_inputs"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(window=float(windows[system]), **kwargs)


@dataclass
class Runs:
    """The ok runs of one split as tensors: rho, beta V_ext, T, mask, loss weight per bin (0 where masked, mean 1
    over the split's unmasked bins), ln rho + beta V (masked bins 0), known beta mu (NaN), Widom beta mu and
    stderr (NaN where not measured), and the Widom prior's weight on the loss weights' scale (0: not anchored)."""

    run: np.ndarray
    rho: torch.Tensor
    beta_V: torch.Tensor
    T: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor
    log_boltzmann_inverse: torch.Tensor
    beta_mu_known: torch.Tensor
    mean_density: torch.Tensor
    beta_mu_widom: torch.Tensor
    beta_mu_widom_stderr: torch.Tensor
    widom_precision: torch.Tensor

    def __len__(self) -> int:
        return len(self.run)


def prepare_runs(ds, split: str, settings: TrainingSettings) -> Runs:
    part = pds.ok_runs(ds, split)
    k_B = float(ds.attrs["k_B"])
    rho = torch.as_tensor(part[pds.RHO].values, dtype=torch.float64)
    stderr = torch.as_tensor(part[pds.RHO_STDERR].values, dtype=torch.float64) if pds.RHO_STDERR in part else None
    T = torch.as_tensor(part[pds.TEMPERATURE].values, dtype=torch.float64)
    beta_V = torch.as_tensor(part[pds.V_EXT].values, dtype=torch.float64) / (k_B * T[:, None])
    mean_density = torch.as_tensor(part[pds.N_PARTICLES].values / (part[pds.AREA].values * pds.box_length(ds)))
    mask = usable_bins(rho, stderr, beta_V, settings)
    if pds.DENSITY_ESTIMATOR in ds.attrs:  # simulated bin averages, not the point values of exact profiles
        mask &= ~steep_potential_bins(beta_V)
    weight = inverse_variance_weights(rho, stderr, mask, settings.log_density_noise_floor)
    target = log_density_target(rho, stderr, mask) + torch.where(mask, beta_V, 0.0)
    beta_mu = torch.as_tensor(part[pds.MU].values, dtype=torch.float64) / (k_B * T)
    nan = torch.full_like(T, math.nan)
    widom, widom_stderr = (torch.as_tensor(part[name].values, dtype=torch.float64) if name in part else nan
                           for name in (pds.BETA_MU_WIDOM, pds.BETA_MU_WIDOM_STDERR))
    measured = torch.isfinite(widom) & (widom_stderr > 0)
    scale = log_density_variance_scale(rho, stderr, mask, settings.log_density_noise_floor)
    precision = torch.where(measured & settings.widom_anchor, scale / torch.where(measured, widom_stderr, 1.0) ** 2, 0.0)
    return Runs(part[pds.RUN].values, rho, beta_V, T, mask, weight, target, beta_mu, mean_density, widom, widom_stderr, precision)


def neighbour_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of each bin's four neighbours (+-1, +-2 bins, periodic): a local estimate independent of the bin's own noise."""
    return sum(x.roll(shift, 1) for shift in (-2, -1, 1, 2)) / 4


def usable_bins(rho: torch.Tensor, stderr: torch.Tensor | None, beta_V: torch.Tensor, settings: TrainingSettings) -> torch.Tensor:
    """Bins whose ln rho is meaningful: finite V, rho > 0 and above ``min_density_fraction`` of the run's mean.

    With a known stderr a bin is decided on its four neighbours only (their density above
    ``min_signal_to_noise`` of their standard error and above the fraction), never on its own noisy
    value or own stderr: a test on the bin itself keeps it preferentially when it fluctuated one way
    (a histogram's stderr grows with its own count) and biases ln rho there. The one own-value test
    left is that the bias-corrected density of ``log_density_target`` is positive (no log of the
    slightly negative densities of force sampling); a zero histogram count is kept.
    """
    finite = torch.isfinite(beta_V)
    if stderr is None:
        return (rho > settings.min_density_fraction * rho.mean(1, keepdim=True)) & finite
    density, variance = neighbour_mean(rho), neighbour_mean(stderr**2)
    clear = (density > settings.min_signal_to_noise * variance.sqrt()) & (density > settings.min_density_fraction * rho.mean(1, keepdim=True))
    return clear & (_debiased_density(rho, density, variance) > 0) & finite


# Largest difference of beta V_ext (k_B T) between a bin and its neighbours (+-1, +-2 bins) for which a simulated
# bin average still stands for the density at the bin's centre; random potentials stay well below it (<= ~1 per
# 0.1 sigma bin), MD's steep walls (30 k_B T within 0.02 sigma) and sharp soft-wall edges exceed it.
MAX_POTENTIAL_STEP = 2.0


def steep_potential_bins(beta_V: torch.Tensor) -> torch.Tensor:
    """Bins of simulated profiles where V_ext changes by more than ``MAX_POTENTIAL_STEP`` within the neighbourhood
    ``usable_bins`` judges them by: at a steep wall's edge the histogram averages the density over both sides of it,
    so ln rho + beta V at the bin's centre is no Euler-Lagrange target (measured on the LJ validation data: c1 errors
    up to 18 there), and bins inside the wall would be kept on their neighbours' density."""
    return sum((beta_V.roll(shift, 1) - beta_V).abs() > MAX_POTENTIAL_STEP for shift in (-2, -1, 1, 2)) > 0


def _debiased_density(rho: torch.Tensor, density: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """rho + var / (2 rho_local): its log has no first-order noise bias, E ln(rho_hat + var/2rho) = ln rho + O(var^2).

    For a histogram (var = rho / scale) this is (count + 1/2) / scale, whose log is unbiased to O(1/count^2),
    where ln count is low by 1 / (2 count). The local density and variance come from the neighbours.
    """
    return rho + variance / (2 * density.clamp_min(1e-300))


def log_density_target(rho: torch.Tensor, stderr: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """ln rho of the unmasked bins (0 elsewhere), corrected for the bias of the log of a noisy density where stderr is known."""
    if stderr is not None:
        rho = _debiased_density(rho, neighbour_mean(rho), neighbour_mean(stderr**2))
    return torch.where(mask, torch.log(torch.where(mask, rho, 1.0)), 0.0)


def _log_density_variance(rho: torch.Tensor, stderr: torch.Tensor, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """var(ln rho) + floor^2 per bin (floor^2 where masked), var(ln rho) = var / rho^2 from the neighbours."""
    density, variance = neighbour_mean(rho), neighbour_mean(stderr**2)
    return torch.where(mask, variance / torch.where(mask, density, 1.0) ** 2, 0.0) + floor**2


def log_density_variance_scale(rho: torch.Tensor, stderr: torch.Tensor | None, mask: torch.Tensor, floor: float) -> float:
    """The variance of ln rho that loss weight 1 stands for: the weights' normalisation constant, so that a
    measurement of beta mu with standard error s weighs scale / s^2 on the loss weights' scale.

    Noisy data: the harmonic mean over unmasked bins of var(ln rho) + floor^2. Exact data weigh every bin 1
    with no variance behind it; there a bin counts as ln rho known to the floor, floor^2 (the limit of the
    noisy case as stderr -> 0: below the floor the network's own error, not the data's, limits the fit).
    """
    if stderr is None:
        return floor**2
    return float(mask.sum() / torch.where(mask, 1.0 / _log_density_variance(rho, stderr, mask, floor), 0.0).sum())


def inverse_variance_weights(rho: torch.Tensor, stderr: torch.Tensor | None, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """Loss weight per bin: 1 / (var(ln rho) + floor^2), normalised to mean 1 on ``mask``.

    var(ln rho) = var / rho^2 from the neighbours' density and variance, not the bin's own: weights that
    grow with a bin's own upward fluctuation (a histogram's stderr / rho = 1 / sqrt(count)) bias the
    weighted fit of ln rho upwards by ~1 / (2 count), most in the dilute bins that pin the gauge c1[0] = 0.
    The floor (``log_density_noise_floor``, in ln rho) keeps exact or nearly exact bins from outweighing
    all others by orders of magnitude: below it the network's own error, not the data's, limits the fit.
    Exact data (no stderr) weigh every unmasked bin 1.
    """
    if stderr is None:
        return mask.double()
    weight = torch.where(mask, 1.0 / _log_density_variance(rho, stderr, mask, floor), 0.0)
    return weight * mask.sum() / weight.sum()


def dataset_hash(ds) -> str:
    """SHA-256 of the data the functional learns from (profiles, potentials, T, mu, split, status; Widom mu where present)."""
    digest = hashlib.sha256()
    widom = [name for name in (pds.BETA_MU_WIDOM, pds.BETA_MU_WIDOM_STDERR) if name in ds]
    for name in (pds.RHO, pds.V_EXT, pds.TEMPERATURE, pds.MU, pds.SPLIT, pds.STATUS, *widom):
        digest.update(np.ascontiguousarray(ds[name].values).tobytes())
    return digest.hexdigest()


def fitted_beta_mu(model: Functional, runs: Runs, anchored: bool = True) -> torch.Tensor:
    """Least-squares beta mu of each run for a fixed network: the weighted mean of ln rho + beta V - c1, with the
    Widom value as one more observation of weight ``widom_precision`` where anchored (the loss's optimum);
    ``anchored=False``: from the profile alone."""
    with torch.no_grad():
        residual = runs.log_boltzmann_inverse - model.c1(runs.rho, runs.T)
    if not anchored:
        return (residual * runs.weight).sum(1) / runs.weight.sum(1)
    return anchored_mean((residual * runs.weight).sum(1), runs.weight.sum(1), runs.widom_precision, runs.beta_mu_widom)


def anchored_mean(weighted_sum: torch.Tensor, total_weight: torch.Tensor, precision: torch.Tensor, beta_mu_widom: torch.Tensor) -> torch.Tensor:
    """(sum w r + lambda mu_W) / (sum w + lambda): the optimum of sum w (r - mu)^2 + lambda (mu - mu_W)^2 (lambda = 0: unanchored)."""
    prior = torch.where(precision > 0, precision * beta_mu_widom, 0.0)
    return (weighted_sum + prior) / (total_weight + precision).clamp_min(1e-300)


def c1_errors(model: Functional, runs: Runs, use_known_mu: bool) -> dict[str, Any]:
    """Weighted c1 errors per run (weights 0/1 for exact data), with the known beta mu or, where unknown or hidden, the
    least-squares one (Widom-anchored where the runs are)."""
    fitted = fitted_beta_mu(model, runs)
    known = torch.isfinite(runs.beta_mu_known) & use_known_mu
    beta_mu = torch.where(known, runs.beta_mu_known, fitted)
    with torch.no_grad():
        error = (model.c1(runs.rho, runs.T) - (runs.log_boltzmann_inverse - beta_mu[:, None])) * runs.mask
    squared = runs.weight * error**2
    mse = squared.sum(1) / runs.weight.sum(1)
    return {
        "mse": float(squared.sum() / runs.weight.sum()),
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
        self.model = self.network(train, s, dz)
        self.beta_mu_known = train.beta_mu_known
        self.known = torch.isfinite(train.beta_mu_known) & s.use_known_mu
        self.widom_precision = torch.where(self.known, 0.0, train.widom_precision)
        # 0, not NaN, where unanchored: a NaN in the branch torch.where drops still poisons the gradient
        self.beta_mu_widom = torch.where(self.widom_precision > 0, train.beta_mu_widom, 0.0)
        mirrored = (lambda x: torch.cat([x, x.flip(-1)])) if s.mirror else (lambda x: x)
        self.rho, self.weight, self.base = (mirrored(x) for x in (train.rho, train.weight, train.log_boltzmann_inverse))
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

    @staticmethod
    def network(train: Runs, settings: TrainingSettings, dz: float) -> NeuralC1:
        """A network (initialised from torch's global RNG) scaled to the training runs' densities and temperatures."""
        T = train.T.numpy()
        return NeuralC1(dz, settings.window, settings.channels, float(train.rho[train.mask].mean()), [float(T.min()), float(T.max())],
                        settings.architecture, settings.temperature_inputs)

    def loss(self, rows: torch.Tensor | slice) -> torch.Tensor:
        """Weighted mean squared c1 error plus the Widom priors lambda (mu_k - mu_W)^2 (one per row: a mirrored run
        counts its prior twice, as it counts its bins); unknown beta mu_k at their optimum for these rows."""
        weight, runs = self.weight[rows], self.run_index[rows]
        residual = self.base[rows] - self.model.c1(self.rho[rows], self.T[rows])
        precision = self.widom_precision[runs]
        n = len(self.known)
        fitted = anchored_mean(torch.zeros(n, dtype=torch.float64).index_add_(0, runs, (weight * residual).sum(1)),
                               torch.zeros(n, dtype=torch.float64).index_add_(0, runs, weight.sum(1)),
                               torch.zeros(n, dtype=torch.float64).index_add_(0, runs, precision), self.beta_mu_widom)
        beta_mu = torch.where(self.known, self.beta_mu_known, fitted)
        prior = (precision * (beta_mu[runs] - self.beta_mu_widom[runs]) ** 2).sum()
        return ((weight * (residual - beta_mu[runs, None]) ** 2).sum() + prior) / weight.sum()

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

    ``settings.ensemble`` > 1: that many networks from seeds ``seed``, ``seed + 1``, ..., trained side by side
    (one process each, up to torch's thread count, the threads shared out), and saved as their mean c1.
    Returns the metrics dict (also written to ``metrics.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {name: prepare_runs(ds, name, settings) for name in pds.SPLIT_NAMES}
    for name in ("train", "val", "test"):
        if len(splits[name]) == 0:
            raise UserError(f"profile dataset of {ds.attrs['system']}: no ok runs in the {name} split; more runs are needed")
    data_hash = dataset_hash(ds)
    log.info("%s: %d train, %d val, %d test runs; %s, at most %d epochs, %d network(s)", ds.attrs["system"], len(splits["train"]),
             len(splits["val"]), len(splits["test"]), settings.optimizer, settings.max_epochs, settings.ensemble)
    jobs = [_MemberJob(splits["train"], splits["val"], settings, pds.grid_spacing(ds), seed + k, data_hash,
                       out_dir if settings.ensemble == 1 else out_dir / MEMBERS_FOLDER / f"{k:02d}", k if settings.ensemble > 1 else None)
            for k in range(settings.ensemble)]
    results = _train_members(jobs)
    networks = []
    for job, result in zip(jobs, results):
        network = _Trainer.network(splits["train"], settings, job.dz)
        network.load_state_dict(result.best_state)
        networks.append(network)
    model = networks[0] if len(networks) == 1 else EnsembleC1(networks)
    model.eval()
    log.info("training stopped after %s epochs; held-out metrics and self-consistent solves of %d test runs",
             "/".join(str(len(r.history)) for r in results), len(splits["test"]))
    metrics = held_out_metrics(model, splits, settings, ds)
    metrics.update(epochs=max(len(r.history) for r in results), best_val_mse=c1_errors(model, splits["val"], settings.use_known_mu)["mse"])
    if len(networks) > 1:
        metrics["members"] = [{"seed": job.seed, "epochs": len(r.history), "best_val_mse": r.best_val,
                               "test_c1_rmse": math.sqrt(c1_errors(network, splits["test"], settings.use_known_mu)["mse"])}
                              for job, r, network in zip(jobs, results, networks)]
    metadata = _metadata(ds, settings, data_hash, splits["train"], provenance)
    save_model(model, metadata, out_dir)
    _write_curve([r.history for r in results], out_dir, metadata["system"])
    _heldout_figure(ds, splits["test"], metrics["test_profiles"], metadata, out_dir / HELDOUT_PNG)
    write_json(out_dir / METRICS_FILE, metrics)
    (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    shutil.rmtree(out_dir / MEMBERS_FOLDER, ignore_errors=True)
    return metrics


@dataclass
class _MemberJob:
    """One network's training: its data, settings, seed, checkpoint folder and (in an ensemble) its index for the log."""

    train: Runs
    val: Runs
    settings: TrainingSettings
    dz: float
    seed: int
    data_hash: str
    folder: Path
    member: int | None
    threads: int = 0  # 0: as the calling process


@dataclass
class _MemberResult:
    best_state: dict[str, torch.Tensor]
    history: list[list[float]]
    best_val: float


def _train_members(jobs: list[_MemberJob]) -> list[_MemberResult]:
    """Each job's network trained; more than one side by side in spawned processes, the threads shared out."""
    threads = torch.get_num_threads()
    workers = min(len(jobs), threads)
    if workers <= 1:
        return [_train_member(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [replace(job, threads=max(1, threads // workers)) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=setup_logging,
                             initargs=(logging.getLogger("liquidscale").getEffectiveLevel(),)) as pool:
        return list(pool.map(_train_member, jobs))


def _train_member(job: _MemberJob) -> _MemberResult:
    """Train one network to early stopping, checkpointing in ``job.folder`` (and resuming from a checkpoint there written
    for the same settings, data and seed; an ensemble member's last checkpoint stays until the ensemble is saved)."""
    if job.threads:
        torch.set_num_threads(job.threads)
    settings = job.settings
    job.folder.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(job.train, settings, job.dz, job.seed)
    key = canonical_hash({"settings": asdict(settings), "data": job.data_hash, "seed": job.seed})
    _resume(trainer, job.folder / CHECKPOINT_FILE, key)
    stale = 0 if not trainer.history else trainer.epoch - 1 - int(np.argmin([h[2] for h in trainer.history]))
    who = "" if job.member is None else f"network {job.member}: "
    while trainer.epoch < settings.max_epochs and stale < settings.patience:
        train_mse = trainer.run_epoch()
        trainer.epoch += 1
        trainer.model.eval()
        val_mse = c1_errors(trainer.model, job.val, settings.use_known_mu)["mse"]
        trainer.history.append([trainer.epoch, train_mse, val_mse, trainer.optimizer.param_groups[0]["lr"]])
        if val_mse < trainer.best_val:
            trainer.best_val, stale = val_mse, 0
            trainer.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            stale += 1
        log.info("%sepoch %d/%d: train loss %.4g, val loss %.4g (best %.4g, %d epochs without improvement of %d allowed)",
                 who, trainer.epoch, settings.max_epochs, train_mse, val_mse, trainer.best_val, stale, settings.patience)
        finished = trainer.epoch >= settings.max_epochs or stale >= settings.patience
        if trainer.epoch % settings.checkpoint_every == 0 or (finished and job.member is not None):
            with atomic_path(job.folder / CHECKPOINT_FILE) as tmp:
                torch.save(trainer.state(key), tmp)
    return _MemberResult(trainer.best_state, trainer.history, trainer.best_val)


def _resume(trainer: _Trainer, path: Path, key: str) -> None:
    """Continue from a checkpoint written for the same settings, data and seed (otherwise start afresh)."""
    if not path.is_file():
        return
    try:
        state = torch.load(path, weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        # a corrupt checkpoint is only lost time: train from the start
        log.warning("%s: unreadable checkpoint (%s), training from the start", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return
    if state.get("key") == key:
        trainer.restore(state)
        log.info("resumed from %s at epoch %d", path, trainer.epoch)


def held_out_metrics(model: Functional, splits: Mapping[str, Runs], settings: TrainingSettings, ds) -> dict[str, Any]:
    """c1 errors on test runs; per test run the canonical prediction (same N, ``canonical_prediction``) vs the data; fitted mu."""
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
        "beta_mu_fit_minus_widom": widom_check(model, splits, settings),
    }


# the target for |profile-fitted beta mu - Widom beta mu| (kT)
WIDOM_CHECK_TARGET = 0.05


def widom_check(model: Functional, splits: Mapping[str, Runs], settings: TrainingSettings) -> dict[str, Any]:
    """Per split, the runs' profile-only least-squares beta mu (``fitted_beta_mu(anchored=False)``) minus their
    Widom beta mu: an independent check of the network's level of c1 on runs the prior did not touch.

    Train runs with the anchor on were pulled towards their Widom values in training, so only val (whose Widom
    values enter just the choice of the early-stopping epoch) and test runs are independent there; ``independent``
    says which splits are.
    """
    record: dict[str, Any] = {"target_abs": WIDOM_CHECK_TARGET, "widom_anchor": settings.widom_anchor}
    for name, runs in splits.items():
        measured = torch.isfinite(runs.beta_mu_widom) & (runs.beta_mu_widom_stderr > 0)
        difference = (fitted_beta_mu(model, runs, anchored=False) - runs.beta_mu_widom)[measured].numpy()
        in_stderr = np.abs(difference / runs.beta_mu_widom_stderr[measured].numpy())
        stats = {"runs": int(measured.sum()), "independent": not (name == "train" and settings.widom_anchor)}
        if len(difference):
            stats.update(median=float(np.median(difference)), median_abs=float(np.median(np.abs(difference))),
                         max_abs=float(np.abs(difference).max()), median_abs_in_stderr=float(np.median(in_stderr)),
                         max_abs_in_stderr=float(in_stderr.max()))
        record[name] = stats
    return record


def training_density_max(train: Runs) -> float:
    """The largest density the functional was trained on: a solution denser than this is an extrapolation."""
    return float(train.rho[train.mask].max())


def _solve_like(model: Functional, runs: Runs, k: int, settings: TrainingSettings, ds, density_max: float) -> dict[str, Any]:
    """Predict run k's profile canonically (its potential and mean density; from its rho and from a uniform
    start, the lower F kept), compare with its rho, flag a solution denser than any training bin."""
    k_B = float(ds.attrs["k_B"])
    T = float(runs.T[k])
    V = (runs.beta_V[k] * k_B * T).numpy()
    mean_density = float(runs.mean_density[k])
    rho_data = runs.rho[k].numpy()
    record: dict[str, Any] = {"run": int(runs.run[k])}
    try:
        prediction = canonical_prediction(model, V, T, mean_density, rho_data, k_B, SolverSettings(tol=settings.solve_tolerance * mean_density))
    except ConvergenceError as exc:
        record["failure"] = str(exc)
        return record
    drho = prediction.rho - rho_data
    record.update(
        rho=prediction.rho,  # for the held-out figure; train_functional takes it out before metrics.json
        start=prediction.start,
        max_abs_drho=float(np.abs(drho).max()),
        rms_drho=float(np.sqrt(np.mean(drho**2))),
        density_max=float(prediction.rho.max()),
        beyond_training_density=bool(prediction.rho.max() > density_max),
        max_abs_difference_between_starts=prediction.max_abs_difference,
        starts={
            name: {"failure": o.failure} if o.rho is None
            else {"max_abs_drho": float(np.abs(o.rho - rho_data).max()), "beta_F": o.beta_F, "iterations": o.iterations}
            for name, o in prediction.outcomes.items()
        },
    )
    if torch.isfinite(runs.beta_mu_known[k]):
        record["beta_mu_error"] = prediction.beta_mu - float(runs.beta_mu_known[k])
    if torch.isfinite(runs.beta_mu_widom[k]):
        record["beta_mu_minus_widom"] = prediction.beta_mu - float(runs.beta_mu_widom[k])
    return record


# coverage bands: at most this many, each with at least this many training runs where the data allow
COVERAGE_MAX_BANDS = 8
COVERAGE_MIN_RUNS_PER_BAND = 10
# density_max of a band: this quantile of its unmasked training-bin densities
COVERAGE_DENSITY_QUANTILE = 0.95


def coverage(train: Runs, density_unit: str) -> dict[str, Any]:
    """What the functional knows: the training temperature range, split into bands with their densities.

    Bands partition [T_min, T_max]: consecutive training temperatures (one temperature never split)
    grouped into about equally populated bands, with edges midway between neighbouring groups; one
    training temperature gives one band with T_low == T_high. Per band, ``density_max`` is the
    95th percentile of the unmasked training-bin densities: the bulk-like density its data cover (a
    quantile, because the few densest bins are packed layers at walls or in wells, not bulk states
    the functional has seen), and ``density_peak`` the largest such bin.
    """
    T = train.T.numpy()
    temperatures = np.unique(T)
    n_bands = min(len(temperatures), COVERAGE_MAX_BANDS, max(1, len(T) // COVERAGE_MIN_RUNS_PER_BAND))
    # a temperature's band: where the middle of its runs falls in the T-ordered list of all runs
    sorted_T = np.sort(T)
    middle = 0.5 * (np.searchsorted(sorted_T, temperatures, side="left") + np.searchsorted(sorted_T, temperatures, side="right"))
    _, first = np.unique(np.minimum((middle * n_bands / len(T)).astype(int), n_bands - 1), return_index=True)
    groups = np.split(temperatures, first[1:])
    edges = [float(T.min())] + [float(0.5 * (a[-1] + b[0])) for a, b in zip(groups, groups[1:])] + [float(T.max())]
    bands = []
    for group, low, high in zip(groups, edges, edges[1:]):
        in_band = torch.as_tensor(np.isin(T, group))
        densities = train.rho[in_band][train.mask[in_band]].numpy()
        bands.append({"T_low": low, "T_high": high, "runs": int(in_band.sum()),
                      "density_max": float(np.quantile(densities, COVERAGE_DENSITY_QUANTILE)), "density_peak": float(densities.max())})
    return {"temperature_range": [edges[0], edges[-1]], "temperature_bands": bands, "density_unit": density_unit}


def _metadata(ds, settings: TrainingSettings, data_hash: str, train: Runs, provenance: Mapping[str, Any]) -> dict[str, Any]:
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
        "training_density_max": training_density_max(train),
        "coverage": coverage(train, ds[pds.RHO].attrs["units"]),
        "training": asdict(settings),
        "provenance": dict(provenance),
    }


def _write_curve(histories: list[list[list[float]]], out_dir: Path, system: str) -> None:
    """training.csv (one block of epochs per network; ``network`` 0 alone without an ensemble) and its figure."""
    from ..plotting import save
    from .figures import training_curve

    with atomic_path(out_dir / CURVE_CSV) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "epoch", "train_mse_c1", "val_mse_c1", "learning_rate"])
        writer.writerows([k, int(row[0]), *row[1:]] for k, history in enumerate(histories) for row in history)
    save(training_curve([np.asarray(h).reshape(-1, 4) for h in histories], system), out_dir / CURVE_PNG)


def _heldout_figure(ds, test: Runs, records: list[dict[str, Any]], metadata: Mapping[str, Any], path: Path) -> None:
    """A few held-out runs spread over temperature, simulated vs predicted; ``records[k]`` (test run k) gives up its profile here."""
    from ..plotting import save
    from .figures import heldout_profiles, pick_runs

    predicted = {k: r.pop("rho") for k, r in enumerate(records) if "rho" in r}
    solved = list(predicted)
    runs = [{"run": int(test.run[k]), "T": float(test.T[k]), "rho_simulated": test.rho[k].numpy(), "rho_predicted": predicted[k],
             "max_abs_drho": records[k]["max_abs_drho"], "beyond_training_density": records[k]["beyond_training_density"]}
            for k in (solved[i] for i in pick_runs([float(test.T[k]) for k in solved]))]
    failures = [f"run {r['run']}: {r['failure']}" for r in records if "failure" in r]
    save(heldout_profiles(ds[pds.Z].values, runs, metadata, metadata["system"], failures), path)
