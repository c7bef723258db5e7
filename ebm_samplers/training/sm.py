"""Hyvärinen score matching (Hyvärinen 2005) with the exact trace of the Hessian.

With the model score s = -grad E, the Fisher divergence to the data equals, up to a constant,

    J = E_data[ 1/2 ||grad E(x)||^2 - tr(Hess E(x)) ]

The trace costs one extra backward pass per dimension, so this is for low dimension; use "ssm" beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.training._method import TrainingMethod, input_gradient, register_method

_MAX_DIM = 64


@register_method("sm")
@dataclass
class ScoreMatching(TrainingMethod):
    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        dim = data[0].numel()
        if dim > _MAX_DIM:
            raise ValueError(
                f"method 'sm' takes one backward pass per dimension; data has {dim} > {_MAX_DIM} dimensions: "
                "use method='ssm' (sliced score matching)"
            )

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        x, _, grad = input_gradient(energy, batch)
        flat = grad.reshape(grad.shape[0], -1)
        trace = torch.zeros_like(flat[:, 0])
        for i in range(flat.shape[1]):
            (second,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
            trace = trace + second.reshape(second.shape[0], -1)[:, i]
        loss = (0.5 * flat.square().sum(1) - trace).mean()
        return loss, {}
