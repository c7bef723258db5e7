"""Short-run MCMC training (Nijkamp et al. 2019): every iteration starts fresh chains from noise.

    x-_0 ~ N(mean(data), diag var(data)),  x-_K = K steps of the sampler on the current E,
    loss = mean E(data) - mean E(x-_K) + alpha (E(data)^2 + E(x-_K)^2)

No chain survives an iteration, so the learned E is the one whose K-step sampler matches the data,
not necessarily exp(-E) itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.kernels import Kernel
from ebm_samplers.training._chains import check_chain_steps, make_kernel, run_chains
from ebm_samplers.training._contrastive import contrastive_loss
from ebm_samplers.training._method import TrainingMethod, register_method


@register_method("short_run")
@dataclass
class ShortRun(TrainingMethod):
    sampler: str | Kernel = "ula"
    n_steps: int = 40
    step_size: float = 0.02
    alpha: float = 0.01
    uses_sampler = True
    default_iterations = 1000

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        check_chain_steps(self.n_steps, "short_run")
        self._kernel = make_kernel(self.sampler, self.step_size)
        flat = data.reshape(data.shape[0], -1)
        self._mean = flat.mean(0).reshape(data.shape[1:])
        self._std = flat.std(0).reshape(data.shape[1:])
        self._samples = None

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        noise = torch.randn(batch.shape, generator=generator, dtype=batch.dtype, device=batch.device)
        self._samples = run_chains(self._kernel, energy, self._mean + self._std * noise, self.n_steps, generator)
        return contrastive_loss(energy, batch, self._samples, self.alpha)

    def samples(self) -> Tensor | None:
        return self._samples
