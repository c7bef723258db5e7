"""The `Energy` base class: an `nn.Module` that maps `x: Tensor[n, *event_shape]` to `Tensor[n]`.

An energy is E(x) = -log p(x) + const. Any callable with that signature is an energy for the samplers;
subclassing `Energy` only adds optional knowledge that samplers, tests and diagnostics can use:
an analytic gradient, a normalised `log_prob`, exact `sample`, ground-truth `mean` and `covariance`,
and `perturbed(sigma)` (the energy of p convolved with N(0, sigma^2 I), for annealed samplers).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Energy(nn.Module):
    """Base class for energies E(x) = -log p(x) + const over `x: Tensor[n, *event_shape]`.

    Subclasses implement `forward(x) -> Tensor[n]` and may override `energy_and_grad` with an analytic
    gradient (the default uses autograd). Methods a target cannot provide raise `NotImplementedError`
    that names the energy, so tests and diagnostics can tell "unknown" from "wrong".
    """

    #: Shape of one sample (without the batch axis); None when the energy accepts several shapes.
    event_shape: torch.Size | None = None

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x) -> Tensor[n]")

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return `(E(x), dE/dx)` with shapes `(n,)` and `x.shape`, detached from any graph."""
        return autograd_energy_and_grad(self, x)

    def score(self, x: Tensor) -> Tensor:
        """The score grad log p(x) = -grad E(x)."""
        return -self.energy_and_grad(x)[1]

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalised log density; only energies with a known normaliser provide it."""
        raise NotImplementedError(f"{self.name} has no normalised log_prob")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """`n` exact independent samples; only targets with a known sampler provide it."""
        raise NotImplementedError(f"{self.name} cannot draw exact samples")

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(f"{self.name} has no known mean")

    @property
    def covariance(self) -> Tensor:
        raise NotImplementedError(f"{self.name} has no known covariance")

    def perturbed(self, sigma: float) -> Energy:
        """The energy of p convolved with N(0, sigma^2 I); used by annealed samplers."""
        raise NotImplementedError(f"{self.name} has no closed-form perturbed(sigma)")

    @property
    def name(self) -> str:
        return type(self).__name__


def autograd_energy_and_grad(energy, x: Tensor) -> tuple[Tensor, Tensor]:
    """Evaluate `energy(x)` and its gradient with autograd, whatever the caller's grad mode.

    Summing before `autograd.grad` is exact because sample i's energy depends on x[i] only (the
    energy contract); one backward pass then gives every per-sample gradient.
    """
    with torch.enable_grad():
        x_leaf = x.detach().requires_grad_(True)
        value = energy(x_leaf)
        if not isinstance(value, Tensor) or not value.requires_grad:
            raise TypeError(
                f"energy {_describe(energy)} returned a value with no gradient path to x; "
                "expected a differentiable function of x (did it call .detach(), .item() or numpy?)"
            )
        (grad,) = torch.autograd.grad(value.sum(), x_leaf)
    return value.detach(), grad


def energy_and_grad(energy, x: Tensor) -> tuple[Tensor, Tensor]:
    """`(E(x), grad E(x))` for any energy: the analytic gradient when the energy offers one."""
    if isinstance(energy, Energy):
        return energy.energy_and_grad(x)
    return autograd_energy_and_grad(energy, x)


def has_analytic_gradient(energy) -> bool:
    """Whether `energy_and_grad(energy, x)` uses a gradient the energy's class writes out, not autograd."""
    return isinstance(energy, Energy) and type(energy).energy_and_grad is not Energy.energy_and_grad


def _describe(energy) -> str:
    if isinstance(energy, Energy):
        return energy.name
    return getattr(energy, "__name__", None) or type(energy).__name__
