"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996).

Propose with the Langevin step, then correct with Metropolis-Hastings:

    x' = x - h grad E(x) + sqrt(2h) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)).

The proposal is asymmetric, so both q terms are needed; the forward one is -||xi||^2 / 2 (x' - x + h grad E(x)
= sqrt(2h) xi), read off the drawn noise. The state caches E and grad E at the current
point, so each step costs one energy+gradient evaluation (at the proposal). The optimal acceptance rate
in high dimension is 0.574 (Roberts & Rosenthal 1998).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._langevin import (
    langevin_log_density,
    langevin_move,
    langevin_noise,
    langevin_noise_log_density,
)
from ebm_samplers.kernels._metropolis import metropolis_accept
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, nonfinite, where_state
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("mala")
@dataclass
class MALA(Kernel):
    """Metropolis-adjusted Langevin with step size `step_size` (h)."""

    target_acceptance = 0.574
    step_size: float = 0.1

    def __post_init__(self) -> None:
        check_positive(self.step_size, "mala step_size")

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        h = state.step_size
        noise = langevin_noise(state.position, generator)
        position = langevin_move(state.position, state.grad, h, noise)
        value, grad = energy_and_grad(energy, position)
        proposal = State(position=position, energy=value, grad=grad, step_size=h)

        log_ratio = (
            state.energy
            - value
            + langevin_log_density(state.position, position, grad, h)
            - langevin_noise_log_density(noise)
        )
        accepted, probability = metropolis_accept(log_ratio, generator)
        info = {
            "acceptance_rate": probability,
            "accepted": accepted,
            "nonfinite": nonfinite(value, grad),
            "_proposal_energy": value,  # not recorded; names the value if the run stops on a non-finite one
        }
        return where_state(accepted, proposal, state), info
