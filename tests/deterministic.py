"""A deterministic kernel and energies with a known failure point, for tests of where a run stops."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels import DrawThenAdvance, State
from energies import Energy, energy_and_grad


@dataclass
class Drift(DrawThenAdvance):
    """Every chain moves by +1 per step (no draws), so failure steps are known exactly. A `DrawThenAdvance`, so
    `compile_step=True` compiles it whole and in blocks."""

    step_size: float = 1.0

    def draw(self, state, generator):
        return {}

    def advance(self, state, energy, draws):
        position = state.position + 1.0
        value, grad = energy_and_grad(energy, position)
        ones = torch.ones_like(value)
        return State(position, value, grad, state.step_size), {"acceptance_rate": ones, "accepted": ones.bool()}


def cusp_at_301(x):
    """Finite everywhere, but the gradient of sqrt|x - 301| is not finite at x = 301."""
    return (x[:, 0] - 301.0).abs().sqrt()


class CuspAt301(Energy):
    """`cusp_at_301` with its gradient written out: NaN at the cusp, where the energy is 0."""

    def forward(self, x):
        return cusp_at_301(x)

    def energy_and_grad(self, x):
        offset = x[:, 0] - 301.0
        return offset.abs().sqrt(), (offset.sign() * 0.5 / offset.abs().sqrt()).unsqueeze(-1)
