"""How it is sampled: kernels in a registry, the `sample()` run loop and `Trace`.

>>> import ebm_samplers, energies
>>> trace = ebm_samplers.sample(energies.GaussianMixture(), "mala", n_chains=4, n_steps=1000, seed=0)
"""

from ebm_samplers.kernels import (
    HMC,
    MALA,
    ULA,
    Info,
    Kernel,
    Negatives,
    PersistentChains,
    State,
    UnderdampedLangevin,
)
from ebm_samplers.moments import Moments
from ebm_samplers.registry import available_samplers, get_sampler, register_sampler
from ebm_samplers.replay_buffer import ReplayBuffer
from ebm_samplers.run import sample
from ebm_samplers.stopping import Converged
from ebm_samplers.trace import Trace

__all__ = [
    "HMC",
    "MALA",
    "ULA",
    "Converged",
    "Info",
    "Kernel",
    "Moments",
    "Negatives",
    "PersistentChains",
    "ReplayBuffer",
    "State",
    "Trace",
    "UnderdampedLangevin",
    "available_samplers",
    "get_sampler",
    "register_sampler",
    "sample",
]
