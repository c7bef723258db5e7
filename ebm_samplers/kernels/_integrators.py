"""Symplectic building blocks for Hamiltonian dynamics with H(x, p) = E(x) + 1/2 p^T M^{-1} p.

Two exact sub-flows (Leimkuhler & Reich 2004):

    kick  (B):  p <- p - t grad E(x)        (the flow of the potential part for time t)
    drift (A):  x <- x + t M^{-1} p         (the flow of the kinetic part for time t)

Leapfrog (velocity Verlet) is B(h/2) A(h) B(h/2); consecutive half kicks of L steps merge, so L steps
cost L gradients. BAOAB (underdamped Langevin) composes the same kick and drift around an
Ornstein-Uhlenbeck step on the momentum. The metric M^{-1} is a diagonal Tensor or a dense metric (see
`_kinetic`); the diagonal path is unchanged by the dense one (one type check per call, no extra tensor operation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.kernels._kinetic import Metric, velocity
from ebm_samplers.kernels.base import per_chain
from energies import energy_and_grad


def kick(momentum: Tensor, grad: Tensor, duration: Tensor) -> Tensor:
    """B: p - t grad E(x), with a per-chain duration t of shape (n,)."""
    return torch.addcmul(momentum, per_chain(duration, momentum), grad, value=-1.0)


def drift(position: Tensor, momentum: Tensor, inverse_mass: Metric, duration: Tensor) -> Tensor:
    """A: x + t M^{-1} p, with a per-chain duration t of shape (n,)."""
    if isinstance(inverse_mass, Tensor):
        return torch.addcmul(position, per_chain(duration, position) * inverse_mass, momentum)
    return torch.addcmul(position, per_chain(duration, position), velocity(momentum, inverse_mass))


def leapfrog(
    energy,
    position: Tensor,
    momentum: Tensor,
    grad: Tensor,
    inverse_mass: Metric,
    step_size: Tensor,
    n_steps: Tensor | None,
    max_steps: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run `n_steps` (n,) leapfrog steps of size `step_size` (n,) per chain; one gradient per step.

    The batch runs `max_steps` (a host integer >= every entry of `n_steps`, so no device sync is needed);
    a chain whose count is reached stops moving (it is still evaluated with the batch, but its values
    are kept). `n_steps=None`: every chain runs `max_steps` (no per-chain selection). Returns the end
    point's position, momentum, energy and gradient.

    The loop carries the momentum half a step ahead: one half kick first, then per step a drift and a
    full kick (the end of this step's B(h/2) merged with the start of the next one's), and at the end the
    surplus half kick is taken back. Two fused operations per step besides the gradient (a dense metric adds
    the product p M^{-1}).
    """
    half = per_chain(0.5 * step_size, momentum)
    full = per_chain(step_size, momentum)
    diagonal = isinstance(inverse_mass, Tensor)
    if diagonal:
        scale = full * inverse_mass  # x moves by scale * p in a drift of one step
    momentum = torch.addcmul(momentum, half, grad, value=-1.0)
    value = None
    for index in range(max_steps):  # n_steps >= 1, so every chain moves in the first step
        if diagonal:
            new_position = torch.addcmul(position, scale, momentum)
        else:
            new_position = torch.addcmul(position, full, velocity(momentum, inverse_mass))
        new_value, new_grad = energy_and_grad(energy, new_position)
        new_momentum = torch.addcmul(momentum, full, new_grad, value=-1.0)
        if n_steps is None or index == 0:
            position, momentum, value, grad = new_position, new_momentum, new_value, new_grad
            continue
        moving = per_chain(index < n_steps, position)
        position = new_position.where(moving, position)
        momentum = new_momentum.where(moving, momentum)
        grad = new_grad.where(moving, grad)
        value = new_value.where(moving.reshape(-1), value)
    return position, torch.addcmul(momentum, half, grad), value, grad
