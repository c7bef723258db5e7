"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996).

Propose with the Langevin step, then correct with Metropolis-Hastings:

    x' = x - h grad E(x) + sqrt(2h) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)).

The proposal is asymmetric, so both q terms are needed; their difference is one inner product,
1/2 (g + g') . (x' - x - h/2 (g' - g)) (see `_langevin`). The state caches E and grad E at the current
point, so each step costs one energy+gradient evaluation (at the proposal). The optimal acceptance rate
in high dimension is 0.574 (Roberts & Rosenthal 1998).

A proposal whose energy is +inf or NaN or whose gradient is not finite is rejected and counted in
`diverging` (zero density is a legitimate value: Stan and BlackJAX do the same). Given a finite current
state, the ratio is NaN or infinite exactly when the proposal's energy or gradient is (or, harmlessly, when it
overflows), so the ratio alone flags such proposals: one check on (n,) values instead of a pass over the
gradient. Only a proposal at energy -inf is accepted into a failing state, for the run's `on_nonfinite`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._langevin import langevin_log_ratio, langevin_move, langevin_noise
from ebm_samplers.kernels._metropolis import acceptance_uniform, metropolis_decision, reject_diverging
from ebm_samplers.kernels.base import (
    Draws,
    DrawThenAdvance,
    Info,
    State,
    StepFailure,
    check_positive,
    where_state,
    with_failure,
)
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
        log_ratio, diverging = reject_diverging(log_ratio, value)
        accepted, probability = metropolis_decision(log_ratio, draws["uniform"])
        info = {"acceptance_rate": probability, "accepted": accepted, "diverging": diverging}
        # the new state fails only where a proposal at energy -inf was accepted (its ratio is +inf)
        failure = StepFailure(failed=accepted & (value == -torch.inf))
        return where_state(accepted, proposal, state), with_failure(info, failure)
