"""Noise-conditional energies E(x, sigma): one energy per noise level, for annealed samplers.

E(x, sigma) is the energy of the data distribution convolved with N(0, sigma^2 I) (Song & Ermon 2019).
`forward(x, sigma)` takes sigma as a float or a per-sample Tensor[n]; `at(sigma)` fixes the level and
returns a plain `Energy` that any sampler can use.
"""

from __future__ import annotations

from torch import Tensor

from energies.base import Energy


class NoiseConditionalEnergy(Energy):
    """Base class: subclasses implement `forward(x, sigma) -> Tensor[n]`."""

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, sigma) -> Tensor[n]")

    def at(self, sigma: float) -> Energy:
        """The plain energy x -> E(x, sigma) at one fixed noise level."""
        return _AtNoiseLevel(self, float(sigma))


class _AtNoiseLevel(Energy):
    def __init__(self, conditional: NoiseConditionalEnergy, sigma: float):
        super().__init__()
        self.conditional = conditional
        self.sigma = sigma
        self.event_shape = conditional.event_shape

    def forward(self, x: Tensor) -> Tensor:
        return self.conditional(x, self.sigma)

    @property
    def name(self) -> str:
        return f"{self.conditional.name}.at({self.sigma:g})"
