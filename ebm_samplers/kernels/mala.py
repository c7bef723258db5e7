"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996).

Propose with the Langevin step, then correct with Metropolis-Hastings:

    x' = x - h grad E(x) + sqrt(2h) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)).

The proposal is asymmetric, so both q terms are needed; their difference is one inner product,
1/2 (g + g') . (x' - x - h/2 (g' - g)) (see `_langevin`). The state caches E and grad E at the current
point, so each step costs one energy+gradient evaluation (at the proposal). The optimal acceptance rate
in high dimension is 0.574 (Roberts & Rosenthal 1998).

Given a finite current state, the ratio is NaN or infinite exactly when the proposal's energy or gradient
is (or, harmlessly, when it overflows), so the ratio alone flags failed proposals: one check on (n,) values
instead of a pass over the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._langevin import langevin_log_ratio, langevin_move, langevin_noise
from ebm_samplers.kernels._metropolis import acceptance_uniform, metropolis_decision
from ebm_samplers.kernels.base import Draws, DrawThenAdvance, Info, State, check_positive, not_finite, where_state
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("mala")
@dataclass
class MALA(DrawThenAdvance):
    """Metropolis-adjusted Langevin with step size `step_size` (h)."""

    target_acceptance = 0.574
    step_size: float = 0.1

    def __post_init__(self) -> None:
        check_positive(self.step_size, "mala step_size")

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        noise = langevin_noise(state.position, generator)
        return {"noise": noise, "uniform": acceptance_uniform(state.energy, generator)}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        h = state.step_size
        position = langevin_move(state.position, state.grad, h, draws["noise"])
        value, grad = energy_and_grad(energy, position)
        proposal = State(position=position, energy=value, grad=grad, step_size=h)

        log_ratio = (state.energy - value) + langevin_log_ratio(state.position, position, state.grad, grad, h)
        accepted, probability = metropolis_decision(log_ratio, draws["uniform"])
        failed = not_finite(log_ratio)
        info = {
            "acceptance_rate": probability,
            "accepted": accepted,
            "nonfinite": failed,
            # not recorded: the new state fails only where a failed proposal was accepted (an energy of -inf),
            # and the value to name if the run stops on a non-finite one
            "_state_nonfinite": failed & accepted,
            "_proposal_energy": value,
        }
        return where_state(accepted, proposal, state), info
