"""Sliced score matching (Song et al. 2019): random projections replace the Hessian trace.

With projections v (E[v v^T] = I), s = -grad E and Hessian H = Hess E,

    J = E_data E_v[ -v^T H v + 1/2 (v^T grad E)^2 ]          (projection="gaussian" or "rademacher")
    J_vr = E_data E_v[ -v^T H v ] + 1/2 ||grad E||^2          (variance_reduction=True, exact second term)

v^T H v is one Hessian-vector product: grad_x (v . grad E) . v.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebm_samplers.training._method import TrainingMethod, input_gradient, register_method


@register_method("ssm")
@dataclass
class SlicedScoreMatching(TrainingMethod):
    n_projections: int = 1
    projection: str = "rademacher"
    variance_reduction: bool = True

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        if self.projection not in ("rademacher", "gaussian"):
            raise ValueError(f"ssm projection must be 'rademacher' or 'gaussian'; got {self.projection!r}")
        if isinstance(self.n_projections, bool) or not isinstance(self.n_projections, int) or self.n_projections < 1:
            raise ValueError(f"ssm n_projections must be a positive integer; got {self.n_projections!r}")

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        m = self.n_projections
        repeated = batch.repeat_interleave(m, dim=0)
        x, _, grad = input_gradient(energy, repeated)
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if self.projection == "rademacher":
            v = torch.sign(v)
        (hvp,) = torch.autograd.grad((grad * v).sum(), x, create_graph=True)
        curvature = (hvp * v).reshape(x.shape[0], -1).sum(1)
        if self.variance_reduction:
            gradient_term = 0.5 * grad.reshape(x.shape[0], -1).square().sum(1)
        else:
            gradient_term = 0.5 * (grad * v).reshape(x.shape[0], -1).sum(1).square()
        loss = (gradient_term - curvature).mean()
        return loss, {}
