"""Unadjusted Langevin algorithm (ULA).

    x' = x - h grad E(x) + sqrt(2h) xi,   xi ~ N(0, I)

Every proposal is kept, so ULA is biased: on N(0, s^2) its stationary law is N(0, s^2 / (1 - h / (2 s^2)))
for h < 2 s^2 (Roberts & Tweedie 1996). One energy+gradient evaluation per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers.kernels._langevin import langevin_move, langevin_noise
from ebm_samplers.kernels.base import Draws, DrawThenAdvance, Info, State, check_positive
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("ula")
@dataclass
class ULA(DrawThenAdvance):
    """Unadjusted Langevin with step size `step_size` (h)."""

    step_size: float = 0.01

    def __post_init__(self) -> None:
        check_positive(self.step_size, "ula step_size")
        self._all_accepted: Info = {}

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        return {"noise": langevin_noise(state.position, generator)}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        position = langevin_move(state.position, state.grad, state.step_size, draws["noise"])
        value, grad = energy_and_grad(energy, position)
        new_state = State(position=position, energy=value, grad=grad, step_size=state.step_size)
        return new_state, self._every_proposal_kept(value)  # the run loop's check of the new state covers both

    def _every_proposal_kept(self, like: Tensor) -> Info:
        """Acceptance 1 for every chain. The same tensors every step (never modified in place), so the run
        loop's recorder sees them unchanged and does not copy them again. Inside a compiled graph they are
        made afresh: there they cost nothing, and caching them would be a side effect that recompiles the graph."""
        if torch.compiler.is_compiling():
            return {"acceptance_rate": torch.ones_like(like), "accepted": torch.ones_like(like, dtype=torch.bool)}
        rate = self._all_accepted.get("acceptance_rate")
        if rate is None or (rate.shape, rate.dtype, rate.device) != (like.shape, like.dtype, like.device):
            self._all_accepted = {
                "acceptance_rate": torch.ones_like(like),
                "accepted": torch.ones_like(like, dtype=torch.bool),
            }
        return dict(self._all_accepted)
