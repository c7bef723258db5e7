"""Multi-scale denoising score matching (Song & Ermon 2019) producing a noise-conditional energy.

Levels sigma_1 > ... > sigma_L form a geometric sequence from `sigma_max` to `sigma_min`. Each sample
gets a uniformly random level i, and with weight lambda(sigma) = sigma^2,

    loss = E_i E_x E_eps 1/2 || sigma_i grad_x E(x + sigma_i eps, sigma_i) - eps ||^2

The trained `energy` is a `NoiseConditionalEnergy`: `energy(x, sigma)`, `energy.at(sigma)`, and plain
`energy(x)` = E(x, sigma_min); the "annealed_langevin" sampler anneals through `energy.sigmas`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers._validate import check_count
from ebm_samplers.training._method import TrainingMethod, register_method
from ebm_samplers.training.dsm import denoising_loss
from energies.noise_conditional import NoiseConditionalEnergy


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> Tensor:
    """sigma_max, ..., sigma_min in geometric progression (float64, decreasing)."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n_levels, dtype=torch.float64))


@register_method("dsm_multiscale")
@dataclass
class MultiscaleDenoisingScoreMatching(TrainingMethod):
    sigma_max: float = 2.0
    sigma_min: float = 0.05
    n_levels: int = 10
    default_iterations = 3000

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        if not (0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {self.sigma_min!r}, {self.sigma_max!r}")
        check_count(self.n_levels, "dsm_multiscale n_levels", minimum=2)
        if not isinstance(energy, NoiseConditionalEnergy):
            raise TypeError(
                "method 'dsm_multiscale' trains a noise-conditional energy E(x, sigma); pass an "
                f"energies.NoiseConditionalEnergy (e.g. energies.NoiseConditionalMLP), not {type(energy).__name__}"
            )
        self._sigmas = geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels).to(data.device, data.dtype)
        energy.sigmas = self._sigmas.cpu().tolist()
        if hasattr(energy, "default_sigma"):
            energy.default_sigma = float(self.sigma_min)

    def default_energy(self, event_shape: torch.Size, generator: torch.Generator) -> nn.Module:
        from energies.neural import NoiseConditionalMLP

        if len(event_shape) != 1:
            raise ValueError(
                f"the default noise-conditional energy takes vectors (n, d); data has event shape {tuple(event_shape)}"
            )
        return NoiseConditionalMLP(event_shape[0], default_sigma=self.sigma_min, generator=generator)

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        level = torch.randint(0, self.n_levels, (batch.shape[0],), generator=generator, device=batch.device)
        sigma = self._sigmas[level]
        return denoising_loss(energy, batch, sigma, generator, sigma).mean(), {}
