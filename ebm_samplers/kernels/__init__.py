"""Built-in kernels, one file each (importing this package registers them), and their shared parts.

The building blocks are public so user kernels compose them the way the built-ins do:
`langevin_noise`/`langevin_move`/`langevin_proposal`/`langevin_log_density` (the Langevin move and its
density), `metropolis_accept` (the MH correction; `acceptance_uniform` and `metropolis_decision` are its draw
and its decision; `reject_diverging` rejects non-finite proposals and flags them as divergences),
`StepFailure`/`with_failure` (which chains failed, for the run's `on_nonfinite`), `where_state` (keep
accepted proposals per chain), `kick`/`drift`/`leapfrog` (Hamiltonian
sub-flows) and `sample_momentum`/`kinetic_energy` with `KineticState`/`MomentumState` (a state with a diagonal
metric, and with momentum; warm-up adapts the metric of any such state). A kernel that subclasses
`DrawThenAdvance` (draw its random numbers, then a deterministic `advance`) has its whole transition compiled
as one graph by `sample(..., compile_step=True)`.
"""

from ebm_samplers.kernels._integrators import drift, kick, leapfrog
from ebm_samplers.kernels._kinetic import KineticState, MomentumState, kinetic_energy, sample_momentum
from ebm_samplers.kernels._langevin import langevin_log_density, langevin_move, langevin_noise, langevin_proposal
from ebm_samplers.kernels._metropolis import (
    acceptance_uniform,
    metropolis_accept,
    metropolis_decision,
    reject_diverging,
)
from ebm_samplers.kernels.annealed_langevin import AnnealedLangevin
from ebm_samplers.kernels.base import (
    Draws,
    DrawThenAdvance,
    Info,
    Kernel,
    State,
    StepFailure,
    check_positive,
    nonfinite,
    per_chain,
    where_state,
    with_failure,
)
from ebm_samplers.kernels.data_jump import DataJump, ModeJump, held_out_bandwidth
from ebm_samplers.kernels.hmc import HMC
from ebm_samplers.kernels.mala import MALA
from ebm_samplers.kernels.nuts import NUTS
from ebm_samplers.kernels.parallel_tempering import ParallelTempering
from ebm_samplers.kernels.persistent import Negatives, Persistent, PersistentChains
from ebm_samplers.kernels.sgld import SGLD
from ebm_samplers.kernels.ula import ULA
from ebm_samplers.kernels.underdamped_langevin import UnderdampedLangevin

__all__ = [
    "HMC",
    "MALA",
    "NUTS",
    "SGLD",
    "ULA",
    "AnnealedLangevin",
    "DataJump",
    "DrawThenAdvance",
    "Draws",
    "Info",
    "Kernel",
    "KineticState",
    "ModeJump",
    "MomentumState",
    "Negatives",
    "ParallelTempering",
    "Persistent",
    "PersistentChains",
    "State",
    "StepFailure",
    "UnderdampedLangevin",
    "acceptance_uniform",
    "check_positive",
    "drift",
    "held_out_bandwidth",
    "kick",
    "kinetic_energy",
    "langevin_log_density",
    "langevin_move",
    "langevin_noise",
    "langevin_proposal",
    "leapfrog",
    "metropolis_accept",
    "metropolis_decision",
    "nonfinite",
    "per_chain",
    "reject_diverging",
    "sample_momentum",
    "where_state",
    "with_failure",
]
