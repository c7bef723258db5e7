"""Exact score matching: fit E to a known target by the Fisher divergence (distillation).

    loss = 1/2 E_data || grad E(x) - grad E_target(x) ||^2

`target` is any energy (E_target = -log p + const; the constant does not matter). Needs a smooth
target: piecewise-constant densities (checkerboard) have zero score almost everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.training._method import TrainingMethod, input_gradient, register_method
from energies import energy_and_grad


@register_method("exact_sm")
@dataclass
class ExactScoreMatching(TrainingMethod):
    target: Callable[[Tensor], Tensor] | None = None

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        if self.target is None or not callable(self.target):
            raise ValueError(
                "method 'exact_sm' needs target=<energy of the known density, a callable (n, *event) -> (n,)>; "
                f"got {self.target!r}"
            )

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        _, target_grad = energy_and_grad(self.target, batch)
        _, _, grad = input_gradient(energy, batch)
        loss = 0.5 * (grad - target_grad).reshape(batch.shape[0], -1).square().sum(1).mean()
        return loss, {}
