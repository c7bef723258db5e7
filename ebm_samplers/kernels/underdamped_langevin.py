"""Underdamped (kinetic) Langevin dynamics with the BAOAB splitting (Leimkuhler & Matthews 2013).

The diffusion dx = M^{-1} p dt,  dp = -grad E(x) dt - gamma p dt + sqrt(2 gamma) M^{1/2} dW has
exp(-E(x) - 1/2 p^T M^{-1} p) as its invariant law. One step of size h composes exact sub-flows:

    B: p <- p - h/2 grad E(x)
    A: x <- x + h/2 M^{-1} p
    O: p <- c p + sqrt(1 - c^2) M^{1/2} xi,   c = exp(-gamma h),  xi ~ N(0, I)
    A: x <- x + h/2 M^{-1} p
    B: p <- p - h/2 grad E(x)

No Metropolis correction, so the chain is biased in h, but BAOAB's configurational bias is small:
O(h^2) in general, and on a Gaussian target the position marginal is exact for any stable h (only the
momentum is biased). The state caches grad E and the momentum, so a step costs one gradient. The
momentum starts at zero (init has no generator); the first O steps thermalise it. `friction` is gamma:
small values give long ballistic moves, large values approach overdamped (ULA-like) diffusion.
Note the time scale: h here is dynamics time, whereas ULA's step h is the overdamped time step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._integrators import drift, kick
from ebm_samplers.kernels._kinetic import MomentumState, check_metric, initial_inverse_mass, sample_momentum
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, per_chain
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("underdamped_langevin")
@dataclass
class UnderdampedLangevin(Kernel):
    """BAOAB with step size `step_size` (h) and friction `friction` (gamma).

    `metric` is "diag" or "dense" (one matrix over the flattened event, shared by every chain);
    `inverse_mass` is the starting metric (a number or a list of event shape; with "dense" also a (d, d)
    matrix; None: identity); warm-up re-estimates it unless `sample(..., adapt_mass_matrix=False)`. As the
    step size does not adapt here (there is no acceptance to aim at), h must be stable for the starting metric
    too.
    """

    step_size: float = 0.1
    friction: float = 1.0
    inverse_mass: float | list | None = None
    metric: str = "diag"

    def __post_init__(self) -> None:
        check_positive(self.step_size, "underdamped_langevin step_size")
        check_metric(self.metric, "underdamped_langevin")
        check_positive(self.friction, "underdamped_langevin friction")

    def init(self, x, energy) -> MomentumState:
        state = super().init(x, energy)
        inverse_mass = initial_inverse_mass(self.inverse_mass, state.position, "underdamped_langevin", self.metric)
        return MomentumState(**vars(state), inverse_mass=inverse_mass, momentum=torch.zeros_like(state.position))

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        if not isinstance(state, MomentumState):
            raise TypeError(
                f"underdamped_langevin needs the state from its init (a MomentumState); got {type(state).__name__}"
            )
        h, inverse_mass = state.step_size, state.inverse_mass
        half = 0.5 * h
        momentum = kick(state.momentum, state.grad, half)
        position = drift(state.position, momentum, inverse_mass, half)
        damping = per_chain(torch.exp(-self.friction * h), momentum)
        momentum = damping * momentum + torch.sqrt(1.0 - damping.square()) * sample_momentum(inverse_mass, generator)
        position = drift(position, momentum, inverse_mass, half)
        value, grad = energy_and_grad(energy, position)
        momentum = kick(momentum, grad, half)

        new_state = MomentumState(
            position=position, energy=value, grad=grad, step_size=h, inverse_mass=inverse_mass, momentum=momentum
        )
        ones = torch.ones_like(value)
        return new_state, {"acceptance_rate": ones, "accepted": ones.bool()}
