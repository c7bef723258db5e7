"""Training Langevin ("SGLD" as IGEBM and JEM run it; Du & Mordatch 2019, Grathwohl et al. 2019).

    g  = clip(grad E(x), -gradient_clip, gradient_clip)          elementwise; no clipping when None
    x' = clamp(x - h g + sigma xi, low, high),   xi ~ N(0, I)    no clamping when `clamp` is None

with step size h = `step_size` and noise scale sigma = `noise_scale` chosen separately. With sigma^2 = 2h and
neither clipping nor clamping this is ULA (`noise_scale=None` means exactly that). The recipes of those papers
instead take a large step (h = 1 to 10 for images in [-1, 1]) with a small noise (sigma = 0.005 to 0.01): that is
Langevin dynamics at temperature sigma^2 / (2h), far below 1, i.e. a noisy descent on E.

NOT a sampler of exp(-E) unless noise_scale^2 = 2 step_size (and even then, like ULA, biased by the step):
its samples follow, roughly, exp(-E / T) with T = sigma^2 / (2h), and clipping and clamping change that law
again. In contrastive training that is the point: the energy learns to place its modes where these chains
end, and the EBM's samples are defined by this procedure (short-run or persistent), not by exp(-E). Use
`ula` or `mala` when the samples must follow exp(-E).

Every move is kept (acceptance 1). One energy+gradient evaluation per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ebm_samplers.kernels._langevin import langevin_noise
from ebm_samplers.kernels.base import Draws, DrawThenAdvance, Info, State, check_positive, per_chain
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


@register_sampler("sgld")
@dataclass
class SGLD(DrawThenAdvance):
    """Training Langevin: step `step_size` (h), noise `noise_scale` (sigma; None: sqrt(2h), i.e. ULA), elementwise
    gradient clipping at `gradient_clip` (None: none) and clamping to the box `clamp = (low, high)` (None: none)."""

    step_size: float = 0.01
    noise_scale: float | None = None
    gradient_clip: float | None = None
    clamp: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "sgld step_size")
        if self.noise_scale is not None and (
            isinstance(self.noise_scale, bool)
            or not isinstance(self.noise_scale, (int, float))
            or not math.isfinite(self.noise_scale)
            or self.noise_scale < 0
        ):
            raise ValueError(
                f"sgld noise_scale must be None (sqrt(2 step_size)) or a number >= 0; got {self.noise_scale!r}"
            )
        if self.gradient_clip is not None:
            check_positive(self.gradient_clip, "sgld gradient_clip")
        if self.clamp is not None:
            if not isinstance(self.clamp, (tuple, list)) or len(self.clamp) != 2:
                raise ValueError(f"sgld clamp must be None or a pair (low, high); got {self.clamp!r}")
            low, high = self.clamp
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            if not numbers or not (math.isfinite(low) and math.isfinite(high)) or not low < high:
                raise ValueError(f"sgld clamp must be a pair of finite numbers low < high; got {self.clamp!r}")
            self.clamp = (float(low), float(high))

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        return {"noise": langevin_noise(state.position, generator)}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        h = per_chain(state.step_size, state.position)
        grad = state.grad if self.gradient_clip is None else state.grad.clamp(-self.gradient_clip, self.gradient_clip)
        # sigma follows a warm-up-adapted h only when it is ULA's sqrt(2h); a given sigma is the user's choice
        sigma = torch.sqrt(2.0 * h) if self.noise_scale is None else self.noise_scale
        position = torch.addcmul(state.position, h, grad, value=-1.0) + sigma * draws["noise"]
        if self.clamp is not None:
            position = position.clamp(*self.clamp)
        value, grad = energy_and_grad(energy, position)
        new_state = State(position=position, energy=value, grad=grad, step_size=state.step_size)
        ones = torch.ones_like(value)
        return new_state, {"acceptance_rate": ones, "accepted": ones.bool()}
