"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996), preconditioned by a metric.

Propose with the Langevin step under the preconditioner A = M^{-1} (Roberts & Stramer 2002), then correct with
Metropolis-Hastings:

    x' = x - h A grad E(x) + sqrt(2h) A^{1/2} xi,   xi ~ N(0, I)
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)).

The proposal is asymmetric, so both q terms are needed; their difference is one inner product,
1/2 (g + g') . (x' - x - h/2 A (g' - g)) (see `_langevin`). A starts as the identity (no extra operation);
warm-up estimates it from the chains' draws, diagonal or dense (`metric`), as for HMC, unless
`sample(..., adapt_mass_matrix=False)`: this is what makes MALA usable on badly scaled targets. The state
caches E and grad E at the current point, so each step costs one energy+gradient evaluation (at the
proposal). The optimal acceptance rate in high dimension is 0.574 (Roberts & Rosenthal 1998).

A proposal whose energy is +inf or NaN or whose gradient is not finite is rejected and counted in
`diverging` (zero density is a legitimate value: Stan and BlackJAX do the same). Given a finite current
state, the ratio is NaN or infinite exactly when the proposal's energy or gradient is (or, harmlessly, when it
overflows), so the ratio alone flags such proposals: one check on (n,) values instead of a pass over the
gradient. Only a proposal at energy -inf is accepted into a failing state, for the run's `on_nonfinite`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._kinetic import KineticState, check_metric, initial_inverse_mass, resolve_metric
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
    """Metropolis-adjusted Langevin with step size `step_size` (h).

    `metric` is the form of the preconditioner A that warm-up estimates: "diag" or "dense" (one matrix over the
    flattened event, shared by every chain); None, the default, is dense up to `_kinetic.DENSE_MAX_DIM`
    coordinates, diag above (and diag on a `NumbaEnergy`, whose numba loop takes a diagonal).
    `inverse_mass` is the starting A (a number or a list of event shape; with "dense" also a (d, d) matrix);
    None, the default, is the identity, held as None in the state (no extra operation) until warm-up sets it,
    unless `sample(..., adapt_mass_matrix=False)`.
    """

    target_acceptance = 0.574
    step_size: float = 0.1
    inverse_mass: float | list | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "mala step_size")
        check_metric(self.metric, "mala", default_allowed=True)

    def init(self, x, energy) -> KineticState:
        state = super().init(x, energy)
        # the form warm-up estimates (see `_kinetic.metric_in_use`: the identity state does not say)
        self._metric_in_use = resolve_metric(self.metric, state.position, energy)
        inverse_mass = None  # the identity, with no operation at all
        if self.inverse_mass is not None:
            inverse_mass = initial_inverse_mass(self.inverse_mass, state.position, "mala", self._metric_in_use)
        return KineticState(**vars(state), inverse_mass=inverse_mass)

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        noise = langevin_noise(state.position, generator, getattr(state, "inverse_mass", None))
        return {"noise": noise, "uniform": acceptance_uniform(state.energy, generator)}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        h = state.step_size
        inverse_mass = getattr(state, "inverse_mass", None)  # a plain State (a user's) is the identity
        position = langevin_move(state.position, state.grad, h, draws["noise"], inverse_mass)
        value, grad = energy_and_grad(energy, position)
        proposal = KineticState(position=position, energy=value, grad=grad, step_size=h, inverse_mass=inverse_mass)

        log_ratio = (state.energy - value) + langevin_log_ratio(
            state.position, position, state.grad, grad, h, inverse_mass
        )
        log_ratio, diverging = reject_diverging(log_ratio, value)
        accepted, probability = metropolis_decision(log_ratio, draws["uniform"])
        info = {"acceptance_rate": probability, "accepted": accepted, "diverging": diverging}
        # the new state fails only where a proposal at energy -inf was accepted (its ratio is +inf)
        failure = StepFailure(failed=accepted & (value == -torch.inf))
        return where_state(accepted, proposal, state), with_failure(info, failure)
