"""The Langevin proposal shared by ULA, MALA and the annealed and persistent samplers.

Euler-Maruyama discretisation of the overdamped Langevin diffusion dX = -grad E(X) dt + sqrt(2) dW
with step h (Roberts & Tweedie 1996):

    x' = x - h grad E(x) + sqrt(2h) xi,   xi ~ N(0, I)

so q(x' | x) = N(x'; x - h grad E(x), 2h I) and, up to a constant that cancels in the MH ratio
when both directions use the same h,

    log q(x' | x) = -||x' - x + h grad E(x)||^2 / (4h).

For the forward move x' - x + h grad E(x) = sqrt(2h) xi, so log q(x' | x) = -||xi||^2 / 2: MALA reads it off
the noise it drew (`langevin_noise_log_density`) instead of a second pass over x, x' and the gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.kernels.base import per_chain, squared_norm


def langevin_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    """xi ~ N(0, I) of the shape, dtype and device of `like`."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def langevin_move(position: Tensor, grad: Tensor, step_size: Tensor, noise: Tensor) -> Tensor:
    """x' = x - h grad E(x) + sqrt(2h) xi for given noise xi and a per-chain step `step_size` of shape (n,)."""
    h = per_chain(step_size, position)
    return position - h * grad + torch.sqrt(2.0 * h) * noise


def langevin_proposal(position: Tensor, grad: Tensor, step_size: Tensor, generator: torch.Generator) -> Tensor:
    """x' = x - h grad E(x) + sqrt(2h) xi, xi ~ N(0, I), with a per-chain step `step_size` of shape (n,)."""
    return langevin_move(position, grad, step_size, langevin_noise(position, generator))


def langevin_noise_log_density(noise: Tensor) -> Tensor:
    """log q(x' | x) = -||xi||^2 / 2 for the move x' made with noise xi (same constant as below), shape (n,)."""
    return -0.5 * squared_norm(noise)


def langevin_log_density(to: Tensor, start: Tensor, grad_at_start: Tensor, step_size: Tensor) -> Tensor:
    """log q(to | start) up to the h-dependent constant, shape (n,)."""
    h = per_chain(step_size, start)
    return -squared_norm(to - start + h * grad_at_start) / (4.0 * step_size)
