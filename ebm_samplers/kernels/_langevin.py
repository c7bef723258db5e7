"""The Langevin proposal shared by ULA, MALA and the annealed and persistent samplers.

Euler-Maruyama discretisation of the overdamped Langevin diffusion dX = -grad E(X) dt + sqrt(2) dW
with step h (Roberts & Tweedie 1996):

    x' = x - h grad E(x) + sqrt(2h) xi,   xi ~ N(0, I)

so q(x' | x) = N(x'; x - h grad E(x), 2h I) and, up to a constant that cancels in the MH ratio
when both directions use the same h,

    log q(x' | x) = -||x' - x + h grad E(x)||^2 / (4h).

MALA needs only the difference of the two directions. With d = x' - x, g = grad E(x), g' = grad E(x'),
expanding both squares cancels ||d||^2 and leaves one inner product (`langevin_log_ratio`):

    log q(x | x') - log q(x' | x) = 1/2 (g + g') . (d - h/2 (g' - g))

which is cheaper than two squared norms and free of their cancellation (each is O(dimension), their
difference is not).
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
    # two fused multiply-adds: every small tensor operation costs microseconds of dispatch at any size
    return torch.addcmul(position, h, grad, value=-1.0).addcmul_(torch.sqrt(2.0 * h), noise)


def langevin_proposal(position: Tensor, grad: Tensor, step_size: Tensor, generator: torch.Generator) -> Tensor:
    """x' = x - h grad E(x) + sqrt(2h) xi, xi ~ N(0, I), with a per-chain step `step_size` of shape (n,)."""
    return langevin_move(position, grad, step_size, langevin_noise(position, generator))


def langevin_log_density(to: Tensor, start: Tensor, grad_at_start: Tensor, step_size: Tensor) -> Tensor:
    """log q(to | start) up to the h-dependent constant, shape (n,)."""
    h = per_chain(step_size, start)
    return -squared_norm(to - start + h * grad_at_start) / (4.0 * step_size)


def langevin_log_ratio(start: Tensor, to: Tensor, grad_at_start: Tensor, grad_at_to: Tensor, step_size: Tensor):
    """log q(start | to) - log q(to | start) = 1/2 (g + g') . (d - h/2 (g' - g)), d = to - start, shape (n,)."""
    h = per_chain(step_size, start)
    grad_sum = (grad_at_start + grad_at_to).reshape(start.shape[0], -1)
    shifted = torch.addcmul(to - start, h, grad_at_to - grad_at_start, value=-0.5).reshape(start.shape[0], -1)
    return 0.5 * torch.linalg.vecdot(grad_sum, shifted)
