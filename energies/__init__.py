"""What is sampled: the energy contract and a library of energies with known truth.

An energy is any callable `f(x: Tensor[n, *event_shape]) -> Tensor[n]` with E(x) = -log p(x) + const.
"""

from energies.banana import Banana
from energies.base import Energy, energy_and_grad
from energies.contract import CallableEnergy, as_energy, check_energy
from energies.funnel import Funnel
from energies.gaussian import Gaussian
from energies.mixture import GaussianMixture
from energies.neural import ConvEnergy, MLPEnergy, NoiseConditionalMLP
from energies.noise_conditional import NoiseConditionalEnergy
from energies.numba_energy import NumbaEnergy

#: Built-in energies by name, each constructible with no arguments (used by the command line).
BUILTIN_ENERGIES = {
    "mixture": GaussianMixture,
    "gaussian2d": lambda: Gaussian([0.0, 0.0], [[1.0, 0.8], [0.8, 1.0]]),
    "funnel": Funnel,
    "banana": Banana,
}

__all__ = [
    "BUILTIN_ENERGIES",
    "Banana",
    "CallableEnergy",
    "ConvEnergy",
    "Energy",
    "Funnel",
    "Gaussian",
    "GaussianMixture",
    "MLPEnergy",
    "NoiseConditionalEnergy",
    "NoiseConditionalMLP",
    "NumbaEnergy",
    "as_energy",
    "check_energy",
    "energy_and_grad",
]
