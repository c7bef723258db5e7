"""Built-in kernels, one file each (importing this package registers them), and their shared parts.

The building blocks are public so user kernels compose them the way the built-ins do:
`langevin_proposal`/`langevin_log_density` (the Langevin move and its density), `metropolis_accept`
(the MH correction), `where_state` (keep accepted proposals per chain).
"""

from ebm_samplers.kernels._langevin import langevin_log_density, langevin_proposal
from ebm_samplers.kernels._metropolis import metropolis_accept
from ebm_samplers.kernels.annealed_langevin import AnnealedLangevin
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, nonfinite, per_chain, where_state
from ebm_samplers.kernels.mala import MALA
from ebm_samplers.kernels.parallel_tempering import ParallelTempering
from ebm_samplers.kernels.persistent import Persistent
from ebm_samplers.kernels.ula import ULA

__all__ = [
    "MALA",
    "ULA",
    "AnnealedLangevin",
    "Info",
    "Kernel",
    "ParallelTempering",
    "Persistent",
    "State",
    "check_positive",
    "langevin_log_density",
    "langevin_proposal",
    "metropolis_accept",
    "nonfinite",
    "per_chain",
    "where_state",
]
