"""Contrastive divergence CD-k (Hinton 2002): chains start at the data batch and run k sampler steps.

    x-_0 = x+,  x-_k = k steps of the sampler on the current E,
    loss = mean E(x+) - mean E(x-_k) + alpha (E(x+)^2 + E(x-_k)^2)

With small k the samples stay near the data, so CD learns the local shape of p well but mode weights
and low-density regions poorly (it is not maximum likelihood).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.kernels import Kernel
from ebm_samplers.training._chains import check_chain_steps, make_kernel, run_chains
from ebm_samplers.training._contrastive import contrastive_loss
from ebm_samplers.training._method import TrainingMethod, register_method


@register_method("cd")
@dataclass
class ContrastiveDivergence(TrainingMethod):
    sampler: str | Kernel = "ula"
    n_steps: int = 10
    step_size: float = 0.01
    alpha: float = 0.01
    uses_sampler = True

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        check_chain_steps(self.n_steps, "cd")
        self._kernel = make_kernel(self.sampler, self.step_size)
        self._samples = None

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        self._samples = run_chains(self._kernel, energy, batch, self.n_steps, generator)
        return contrastive_loss(energy, batch, self._samples, self.alpha)

    def samples(self) -> Tensor | None:
        return self._samples
