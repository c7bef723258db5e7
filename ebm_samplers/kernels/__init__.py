"""Built-in kernels, one file each (importing this package registers them), and their shared parts.

The building blocks are public so user kernels compose them the way the built-ins do:
`langevin_proposal`/`langevin_log_density` (the Langevin move and its density), `metropolis_accept`
(the MH correction), `where_state` (keep accepted proposals per chain).
"""

from ebm_samplers.kernels._kinetic import KineticState, MomentumState
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
    "langevin_log_density",
    "langevin_proposal",
    "metropolis_accept",
    "nonfinite",
    "per_chain",
    "where_state",
]
