"""Unadjusted Langevin algorithm (ULA).

    x' = x - h grad E(x) + sqrt(2h) xi,   xi ~ N(0, I)

Every proposal is kept, so ULA is biased: on N(0, s^2) its stationary law is N(0, s^2 / (1 - h / (2 s^2)))
for h < 2 s^2 (Roberts & Tweedie 1996). One energy+gradient evaluation per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._langevin import langevin_proposal
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("ula")
@dataclass
class ULA(Kernel):
    """Unadjusted Langevin with step size `step_size` (h)."""

    step_size: float = 0.01

    def __post_init__(self) -> None:
        check_positive(self.step_size, "ula step_size")

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        position = langevin_proposal(state.position, state.grad, state.step_size, generator)
        value, grad = energy_and_grad(energy, position)
        new_state = State(position=position, energy=value, grad=grad, step_size=state.step_size)
        info = {"acceptance_rate": torch.ones_like(value), "accepted": torch.ones_like(value, dtype=torch.bool)}
        return new_state, info  # the new state is the proposal: the run loop's check of it covers both
