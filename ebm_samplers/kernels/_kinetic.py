"""Momentum, mass matrix and kinetic energy shared by HMC and underdamped Langevin.

With a diagonal mass matrix M (stored as its inverse, the metric, per chain and coordinate):

    p ~ N(0, M),   K(p) = 1/2 p^T M^{-1} p,   dx/dt = M^{-1} p.

Warm-up sets M^{-1} to an estimate of the target's variances, which makes every coordinate move on
the same scale (the step size then only has to suit the whitened problem).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers.kernels.base import State


@dataclass
class KineticState(State):
    """A state with a diagonal inverse mass (metric) per chain and coordinate, shape (n, *event)."""

    inverse_mass: Tensor


@dataclass
class MomentumState(KineticState):
    """A state that also carries its momentum between steps (underdamped Langevin), shape (n, *event)."""

    momentum: Tensor


def initial_inverse_mass(value, like: Tensor, what: str) -> Tensor:
    """The starting metric (n, *event) from a kernel's `inverse_mass` parameter.

    None gives the identity; a number or a nested list of event shape gives the same diagonal to every
    chain. Entries must be finite and > 0.
    """
    if value is None:
        return torch.ones_like(like)
    given = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    event_shape = like.shape[1:]
    if given.ndim != 0 and given.shape != event_shape:
        raise ValueError(
            f"{what} inverse_mass has shape {tuple(given.shape)}; expected a number or the event shape "
            f"{tuple(event_shape)}"
        )
    if not bool(torch.isfinite(given).all()) or bool((given <= 0).any()):
        raise ValueError(f"{what} inverse_mass entries must be finite and > 0")
    return given.expand_as(like).clone()


def sample_momentum(inverse_mass: Tensor, generator: torch.Generator) -> Tensor:
    """p ~ N(0, M) with M = diag(1 / inverse_mass)."""
    noise = torch.randn(inverse_mass.shape, generator=generator, dtype=inverse_mass.dtype, device=inverse_mass.device)
    return noise / torch.sqrt(inverse_mass)


def velocity(momentum: Tensor, inverse_mass: Tensor) -> Tensor:
    """dx/dt = M^{-1} p per chain, shape (n, *event) (NUTS's p-sharp in the no-U-turn criterion)."""
    return momentum * inverse_mass


def kinetic_energy(momentum: Tensor, inverse_mass: Tensor) -> Tensor:
    """K(p) = 1/2 p^T M^{-1} p per chain, shape (n,)."""
    return 0.5 * (momentum.square() * inverse_mass).reshape(momentum.shape[0], -1).sum(-1)
