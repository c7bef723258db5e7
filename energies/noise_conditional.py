"""Noise-conditional energies E(x, sigma): one model of every noise-perturbed density p_sigma = p * N(0, sigma^2 I).

Annealed samplers (Song & Ermon 2019) walk down a ladder of noise levels and need the energy, or its
score, at each level. A `NoiseConditionalEnergy` is that model: `forward(x, sigma)` with `sigma` a float
or a per-sample `Tensor[n]` returns `Tensor[n]`. `at(sigma)` fixes the level and gives a plain `Energy`
that every sampler accepts.

Called with one argument, `energy(x)` means `energy(x, default_sigma)`, the level at which the model
describes the data (usually its smallest sigma); this keeps the one-argument energy contract
(`check_energy`, samplers other than annealed ones) well defined. A model without a default raises.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy, autograd_energy_and_grad


class NoiseConditionalEnergy(Energy):
    """Base class for E(x, sigma); subclasses implement `forward(x, sigma) -> Tensor[n]`.

    Set `default_sigma` (an attribute, e.g. in `__init__`) to the level a one-argument call uses.
    """

    #: The noise level of `energy(x)` without sigma; None: a one-argument call is an error.
    default_sigma: float | None = None

    def __call__(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return super().__call__(x, self._noise_level(sigma))

    def _noise_level(self, sigma: float | Tensor | None) -> float | Tensor:
        if sigma is not None:
            return sigma
        if self.default_sigma is None:
            raise TypeError(
                f"noise-conditional energy {self.name} needs a noise level: call it as energy(x, sigma), "
                "use energy.at(sigma), or set its default_sigma"
            )
        return self.default_sigma

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, sigma) -> Tensor[n]")

    def energy_and_grad(self, x: Tensor, sigma: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`(E(x, sigma), grad_x E(x, sigma))` by autograd; sigma defaults to `default_sigma`.
        Subclasses with an analytic gradient override this (keeping the signature)."""
        return autograd_energy_and_grad(self.at(self._noise_level(sigma)), x)

    def at(self, sigma: float | Tensor) -> Energy:
        """The plain energy x -> E(x, sigma) at a fixed noise level."""
        if isinstance(sigma, Tensor):
            if not sigma.is_floating_point() or not bool(torch.isfinite(sigma).all() and (sigma > 0).all()):
                raise ValueError(f"noise level sigma must be finite and > 0; got {sigma}")
        elif isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"noise level sigma must be a finite number > 0; got {sigma!r}")
        return _AtNoiseLevel(self, sigma)


class _AtNoiseLevel(Energy):
    """E(., sigma) for a fixed sigma, sharing the parameters of the noise-conditional model."""

    def __init__(self, model: NoiseConditionalEnergy, sigma: float | Tensor):
        super().__init__()
        self.model = model
        self.sigma = sigma
        self.event_shape = model.event_shape

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, self.sigma)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:  # the model's, if it has an analytic one
        return self.model.energy_and_grad(x, self.sigma)

    @property
    def name(self) -> str:
        sigma = f"{self.sigma:g}" if isinstance(self.sigma, (int, float)) else "tensor"
        return f"{self.model.name}(sigma={sigma})"
