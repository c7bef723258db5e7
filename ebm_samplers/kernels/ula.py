"""Unadjusted Langevin algorithm (ULA), preconditioned by a metric A = M^{-1} (the identity by default).

    x' = x - h A grad E(x) + sqrt(2h) A^{1/2} xi,   xi ~ N(0, I)

Every proposal is kept, so ULA is biased: on N(0, s^2) its stationary law is N(0, s^2 / (1 - h / (2 s^2)))
for h < 2 s^2 (Roberts & Tweedie 1996); with a diagonal A, coordinate i runs at the step h a_i, so its
stationary variance is s_i^2 / (1 - h a_i / (2 s_i^2)). One energy+gradient evaluation per step. Warm-up
estimates A (diagonal or dense, `metric`) unless `sample(..., adapt_mass_matrix=False)`; as ULA has no
acceptance to aim at, its step size is not adapted, so h must suit the whitened target. For the same reason
`sample(..., warmup=None)` runs no warm-up for ULA: its bias is set by the h you give, and a metric adapted
behind your back would change it. Pass `warmup > 0` to adapt A.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers.kernels._kinetic import KineticState, check_metric, initial_inverse_mass, resolve_metric
from ebm_samplers.kernels._langevin import langevin_move, langevin_noise
from ebm_samplers.kernels.base import Draws, DrawThenAdvance, Info, State, check_positive
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("ula")
@dataclass
class ULA(DrawThenAdvance):
    """Unadjusted Langevin with step size `step_size` (h).

    `metric` ("diag" or "dense"; None, the default, chooses as for `mala`) is the form of the preconditioner A
    that warm-up estimates; `inverse_mass` is
    the starting A as for `mala` (None: the identity, held as None in the state until warm-up sets it).
    """

    warmup_by_default = False

    step_size: float = 0.01
    inverse_mass: float | list | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "ula step_size")
        check_metric(self.metric, "ula", default_allowed=True)
        self._all_accepted: Info = {}

    def init(self, x, energy) -> KineticState:
        state = super().init(x, energy)
        # the form warm-up estimates (see `_kinetic.metric_in_use`: the identity state does not say)
        self._metric_in_use = resolve_metric(self.metric, state.position, energy)
        inverse_mass = None  # the identity, with no operation at all
        if self.inverse_mass is not None:
            inverse_mass = initial_inverse_mass(self.inverse_mass, state.position, "ula", self._metric_in_use)
        return KineticState(**vars(state), inverse_mass=inverse_mass)

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        return {"noise": langevin_noise(state.position, generator, getattr(state, "inverse_mass", None))}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        inverse_mass = getattr(state, "inverse_mass", None)  # a plain State (a user's) is the identity
        position = langevin_move(state.position, state.grad, state.step_size, draws["noise"], inverse_mass)
        value, grad = energy_and_grad(energy, position)
        new_state = KineticState(
            position=position, energy=value, grad=grad, step_size=state.step_size, inverse_mass=inverse_mass
        )
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
