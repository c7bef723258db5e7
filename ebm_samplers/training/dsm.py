"""Denoising score matching (Vincent 2011) at one noise level sigma.

    x~ = x + sigma eps,  eps ~ N(0, I),  target score -(x~ - x) / sigma^2 = -eps / sigma
    loss = sigma^2/2 E || -grad E(x~) + eps / sigma ||^2 = 1/2 E || sigma grad E(x~) - eps ||^2

(the sigma^2 weight makes the loss O(1) whatever sigma). The minimiser is the score of the data
smoothed by N(0, sigma^2 I), so exp(-E) approximates that smoothed density.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.training._method import TrainingMethod, register_method


def denoising_loss(energy, batch: Tensor, sigma: Tensor, generator: torch.Generator, *extra) -> Tensor:
    """Per-sample 1/2 || sigma grad E(x + sigma eps) - eps ||^2 with `sigma` of shape (n,) (extra args go to E)."""
    noise = torch.randn(batch.shape, generator=generator, dtype=batch.dtype, device=batch.device)
    scale = sigma.reshape(-1, *([1] * (batch.ndim - 1)))
    noisy = (batch + scale * noise).detach().requires_grad_(True)
    value = energy(noisy, *extra)
    (grad,) = torch.autograd.grad(value.sum(), noisy, create_graph=True)
    return 0.5 * (scale * grad - noise).reshape(batch.shape[0], -1).square().sum(1)


@register_method("dsm")
@dataclass
class DenoisingScoreMatching(TrainingMethod):
    sigma: float = 0.1

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        if not self.sigma > 0:
            raise ValueError(f"dsm sigma must be > 0; got {self.sigma!r}")

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        sigma = torch.full((batch.shape[0],), float(self.sigma), dtype=batch.dtype, device=batch.device)
        return denoising_loss(energy, batch, sigma, generator).mean(), {}
