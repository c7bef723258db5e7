"""The Langevin proposal shared by ULA, MALA and the annealed and persistent samplers.

Euler-Maruyama discretisation of the overdamped Langevin diffusion dX = -A grad E(X) dt + sqrt(2) A^{1/2} dW
with step h and a preconditioner A = M^{-1} (the metric, see `_kinetic`; the identity by default; Roberts &
Tweedie 1996, Roberts & Stramer 2002):

    x' = x - h A grad E(x) + sqrt(2h) A^{1/2} xi,   xi ~ N(0, I)

so q(x' | x) = N(x'; x - h A grad E(x), 2h A) and, up to a constant that cancels in the MH ratio when both
directions use the same h and A,

    log q(x' | x) = -(x' - x + h A g)^T A^{-1} (x' - x + h A g) / (4h).

MALA needs only the difference of the two directions. With d = x' - x, g = grad E(x), g' = grad E(x'),
expanding both quadratic forms cancels d^T A^{-1} d and leaves one inner product (`langevin_log_ratio`):

    log q(x | x') - log q(x' | x) = 1/2 (g + g') . (d - h/2 A (g' - g))

(using g'^T A g' - g^T A g = (g + g')^T A (g' - g) for a symmetric A). This needs no A^{-1}, is cheaper than
two quadratic forms and free of their cancellation (each is O(dimension), their difference is not). A is a
diagonal Tensor (n, *event), a `DenseMetric`, or None for the identity, whose path has no extra operation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.kernels._kinetic import Metric, colour_noise, precondition
from ebm_samplers.kernels.base import per_chain, squared_norm


def langevin_noise(like: Tensor, generator: torch.Generator, inverse_mass: Metric | None = None) -> Tensor:
    """A^{1/2} xi, xi ~ N(0, I) of the shape, dtype and device of `like` (covariance A; the identity for None)."""
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return colour_noise(noise, inverse_mass)


def langevin_move(
    position: Tensor, grad: Tensor, step_size: Tensor, noise: Tensor, inverse_mass: Metric | None = None
) -> Tensor:
    """x' = x - h A grad E(x) + sqrt(2h) noise for given noise (already coloured: `langevin_noise` with the same
    A) and a per-chain step `step_size` of shape (n,)."""
    h = per_chain(step_size, position)
    # two fused multiply-adds: every small tensor operation costs microseconds of dispatch at any size
    drift = grad if inverse_mass is None else precondition(grad, inverse_mass)
    return torch.addcmul(position, h, drift, value=-1.0).addcmul_(torch.sqrt(2.0 * h), noise)


def langevin_proposal(
    position: Tensor, grad: Tensor, step_size: Tensor, generator: torch.Generator, inverse_mass: Metric | None = None
) -> Tensor:
    """x' = x - h A grad E(x) + sqrt(2h) A^{1/2} xi, xi ~ N(0, I), with a per-chain step `step_size` of shape (n,)."""
    return langevin_move(position, grad, step_size, langevin_noise(position, generator, inverse_mass), inverse_mass)


def langevin_log_density(
    to: Tensor, start: Tensor, grad_at_start: Tensor, step_size: Tensor, inverse_mass: Metric | None = None
) -> Tensor:
    """log q(to | start) up to the (h, A)-dependent constant, shape (n,) (the direct form, for tests)."""
    h = per_chain(step_size, start)
    residual = to - start + h * precondition(grad_at_start, inverse_mass)
    if inverse_mass is None:
        quadratic = squared_norm(residual)
    elif isinstance(inverse_mass, Tensor):
        quadratic = squared_norm(residual / torch.sqrt(inverse_mass))
    else:  # r^T A^{-1} r = ||L^{-1} r||^2, i.e. the rows r L^{-T}
        quadratic = squared_norm(residual.reshape(residual.shape[0], -1) @ inverse_mass.inverse_cholesky.T)
    return -quadratic / (4.0 * step_size)


def langevin_log_ratio(
    start: Tensor,
    to: Tensor,
    grad_at_start: Tensor,
    grad_at_to: Tensor,
    step_size: Tensor,
    inverse_mass: Metric | None = None,
) -> Tensor:
    """log q(start | to) - log q(to | start) = 1/2 (g + g') . (d - h/2 A (g' - g)), d = to - start, shape (n,)."""
    h = per_chain(step_size, start)
    grad_sum = (grad_at_start + grad_at_to).reshape(start.shape[0], -1)
    change = grad_at_to - grad_at_start
    if inverse_mass is not None:
        change = precondition(change, inverse_mass)
    shifted = torch.addcmul(to - start, h, change, value=-0.5).reshape(start.shape[0], -1)
    return 0.5 * torch.linalg.vecdot(grad_sum, shifted)
