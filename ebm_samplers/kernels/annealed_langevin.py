"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

A geometric ladder of noise levels sigma_1 = sigma_max > ... > sigma_L = sigma_min (L = n_levels),
and at level i, `steps_per_level` Langevin steps on the level's energy E_i with

    alpha_i = step_scale * sigma_i^2 / sigma_min^2
    x <- x + (alpha_i / 2) score_i(x) + sqrt(alpha_i) z,    score_i = -grad E_i,  z ~ N(0, I).

Factor-2 convention: this is the paper's update, i.e. the shared Langevin proposal
x - h grad E + sqrt(2h) z with h = alpha_i / 2. (The authors' reference code uses
x + alpha_i score + sqrt(2 alpha_i) z, which is the same move with twice the step: step_scale here
equals twice the code's.) The paper's defaults step_scale = 2e-5, sigma 1 -> 0.01, L = 10, 100 steps per
level are ours.

What E_i is depends on the energy (`annealing="auto"` picks the first that applies):
  "noise"        a `NoiseConditionalEnergy`: E_i(x) = E(x, sigma_i);
  "perturbed"    an `Energy` with `perturbed(sigma)`: E_i = energy of p * N(0, sigma_i^2 I) (exact for
                 Gaussian and GaussianMixture);
  "temperature"  any other energy: E_i = E / T_i with T_i = sigma_i^2 / sigma_min^2, so T falls
                 geometrically from (sigma_max / sigma_min)^2 to 1. Tempering a Gaussian by T scales its
                 covariance by T, so alpha_i / T_i stays constant, like alpha_i / sigma_i^2 for the noise
                 ladder. For a plain energy, sigma_max / sigma_min is therefore the square root of the
                 largest temperature. Tempering does not preserve the weights of separated modes (it
                 flattens them), while noise perturbation does; prefer the first two when they apply.
With `denoise=True` a final Tweedie step x <- x + sigma_min^2 score_L(x) removes the last level's noise
(Song & Ermon 2020; "noise" and "perturbed" only: for a plain energy there is no noise to remove).

Through `sample()`, one kernel step is one full pass through the schedule, starting where the previous
pass ended (the first from `init`). So `n_steps=1` gives one annealed sample per chain, and warm-up
passes are passes whose results are discarded; since every pass starts by diffusing at sigma_max, they
rarely help (use warmup=0). Cost per pass: n_levels * steps_per_level + 1 energy+gradient evaluations
(+1 with denoise). Unadjusted: the result approximates p_{sigma_min} (or p for temperature annealing) up
to the Langevin discretisation bias of the last level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers._validate import check_count, check_flag
from ebm_samplers.kernels._langevin import langevin_proposal
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, nonfinite
from ebm_samplers.registry import register_sampler
from energies import Energy, NoiseConditionalEnergy, energy_and_grad

_ANNEALING = ("auto", "noise", "perturbed", "temperature")


@register_sampler("annealed_langevin")
@dataclass
class AnnealedLangevin(Kernel):
    """Langevin through the noise levels sigma_max -> sigma_min; one kernel step = one full pass."""

    sigma_max: float = 1.0
    sigma_min: float = 0.01
    n_levels: int = 10
    steps_per_level: int = 100
    step_scale: float = 2e-5
    denoise: bool = False
    annealing: str = "auto"

    def __post_init__(self) -> None:
        check_positive(self.sigma_max, "annealed_langevin sigma_max")
        check_positive(self.sigma_min, "annealed_langevin sigma_min")
        check_positive(self.step_scale, "annealed_langevin step_scale")
        for name in ("n_levels", "steps_per_level"):
            check_count(getattr(self, name), f"annealed_langevin {name}", minimum=1)
        if self.sigma_max < self.sigma_min:
            raise ValueError(
                f"annealed_langevin anneals downwards: sigma_max ({self.sigma_max}) must be >= sigma_min "
                f"({self.sigma_min})"
            )
        if self.n_levels == 1 and self.sigma_max != self.sigma_min:
            raise ValueError("annealed_langevin with n_levels=1 has a single level: set sigma_max == sigma_min")
        check_flag(self.denoise, "annealed_langevin denoise")
        if self.annealing not in _ANNEALING:
            raise ValueError(
                f"annealed_langevin annealing must be one of {', '.join(_ANNEALING)}; got {self.annealing!r}"
            )

    @property
    def step_size(self) -> float:  # alpha at sigma_min, recorded as the chains' step size
        return self.step_scale

    def noise_levels(self) -> list[float]:
        """sigma_1 = sigma_max > ... > sigma_L = sigma_min, geometrically spaced."""
        if self.n_levels == 1:
            return [self.sigma_min]
        ratio = math.log(self.sigma_min / self.sigma_max) / (self.n_levels - 1)
        return [self.sigma_max * math.exp(ratio * i) for i in range(self.n_levels - 1)] + [self.sigma_min]

    def annealing_for(self, energy) -> str:
        """The annealing this energy gets: "noise", "perturbed" or "temperature"."""
        has_perturbed = isinstance(energy, Energy) and type(energy).perturbed is not Energy.perturbed
        if self.annealing == "auto":
            if isinstance(energy, NoiseConditionalEnergy):
                return "noise"
            return "perturbed" if has_perturbed else "temperature"
        if self.annealing == "noise" and not isinstance(energy, NoiseConditionalEnergy):
            raise TypeError(f"annealing='noise' needs an energies.NoiseConditionalEnergy; got {_name(energy)}")
        if self.annealing == "perturbed" and not has_perturbed:
            raise TypeError(
                f"annealing='perturbed' needs an Energy that implements perturbed(sigma); got {_name(energy)}"
            )
        return self.annealing

    def _levels(self, energy) -> list[tuple[float, object, float]]:
        """Per level: (alpha_i, E_i without temperature, 1 / T_i)."""
        annealing = self.annealing_for(energy)
        if annealing == "temperature" and self.denoise:
            raise ValueError(
                "denoise=True needs a noise-perturbed energy (a NoiseConditionalEnergy or an Energy with "
                f"perturbed(sigma)); {_name(energy)} is annealed by temperature, which adds no noise to remove"
            )
        levels = []
        for sigma in self.noise_levels():
            alpha = self.step_scale * sigma**2 / self.sigma_min**2
            if annealing == "noise":
                levels.append((alpha, energy.at(sigma), 1.0))
            elif annealing == "perturbed":
                levels.append((alpha, energy.perturbed(sigma), 1.0))
            else:
                levels.append((alpha, energy, self.sigma_min**2 / sigma**2))
        return levels

    def init(self, x: Tensor, energy) -> State:
        _, last, _ = self._levels(energy)[-1]
        value, grad = energy_and_grad(last, x)
        step_size = torch.full((x.shape[0],), self.step_scale, dtype=x.dtype, device=x.device)
        return State(position=x.detach(), energy=value, grad=grad, step_size=step_size)

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        levels = self._levels(energy)  # rebuilt per pass: the energy may have changed (training)
        x = state.position
        failed = torch.zeros_like(state.energy, dtype=torch.bool)
        for alpha, level_energy, inverse_temperature in levels:
            h = torch.full_like(state.energy, alpha / 2.0)  # the paper's alpha/2 drift, sqrt(alpha) noise
            for _ in range(self.steps_per_level):
                value, grad = energy_and_grad(level_energy, x)
                failed = failed | nonfinite(value, grad)
                x = langevin_proposal(x, inverse_temperature * grad, h, generator)

        _, last, _ = levels[-1]
        value, grad = energy_and_grad(last, x)
        if self.denoise:  # Tweedie: E[x_0 | x_sigma] = x + sigma^2 grad log p_sigma(x)
            failed = failed | nonfinite(value, grad)
            x = x - self.sigma_min**2 * grad
            value, grad = energy_and_grad(last, x)
        failed = failed | nonfinite(value, grad)
        ones = torch.ones_like(value)
        new_state = State(position=x.detach(), energy=value, grad=grad, step_size=state.step_size)
        return new_state, {"acceptance_rate": ones, "accepted": ones.bool(), "nonfinite": failed}


def _name(energy) -> str:
    return energy.name if isinstance(energy, Energy) else getattr(energy, "__name__", type(energy).__name__)
