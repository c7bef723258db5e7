"""Built-in kernels, one file each (importing this package registers them), and their shared parts.

The building blocks are public so user kernels compose them the way the built-ins do:
`langevin_proposal`/`langevin_log_density` (the Langevin move and its density), `metropolis_accept`
(the MH correction), `where_state` (keep accepted proposals per chain), `kick`/`drift`/`leapfrog`
(Hamiltonian sub-flows) and `sample_momentum`/`kinetic_energy` with `KineticState`/`MomentumState`
(a state with a diagonal metric, and with momentum; warm-up adapts the metric of any such state).
"""

from ebm_samplers.kernels._integrators import drift, kick, leapfrog
from ebm_samplers.kernels._kinetic import KineticState, MomentumState, kinetic_energy, sample_momentum
from ebm_samplers.kernels._langevin import langevin_log_density, langevin_proposal
from ebm_samplers.kernels._metropolis import metropolis_accept
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, nonfinite, per_chain, where_state
from ebm_samplers.kernels.hmc import HMC
from ebm_samplers.kernels.mala import MALA
from ebm_samplers.kernels.ula import ULA
from ebm_samplers.kernels.underdamped_langevin import UnderdampedLangevin

__all__ = [
    "HMC",
    "MALA",
    "ULA",
    "Info",
    "Kernel",
    "KineticState",
    "MomentumState",
    "State",
    "UnderdampedLangevin",
    "check_positive",
    "drift",
    "kick",
    "kinetic_energy",
    "langevin_log_density",
    "langevin_proposal",
    "leapfrog",
    "metropolis_accept",
    "nonfinite",
    "per_chain",
    "sample_momentum",
    "where_state",
]
