"""The maximum-likelihood gradient shared by short-run, CD and PCD training.

For p_theta = exp(-E_theta) / Z, grad_theta of -log-likelihood is E_data[grad E] - E_model[grad E]
(Hinton 2002), estimated with model samples x-:

    loss = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)

The L2 term (Du & Mordatch 2019) keeps energies near zero, which stops their scale drifting; the
samples are detached, so the gradient does not flow through the sampler.
"""

from __future__ import annotations

from torch import Tensor, nn


def contrastive_loss(energy: nn.Module, data: Tensor, samples: Tensor, alpha: float) -> tuple[Tensor, dict[str, float]]:
    positive = energy(data)
    negative = energy(samples.detach())
    gap = positive.mean() - negative.mean()
    loss = gap + alpha * (positive.square().mean() + negative.square().mean())
    figures = {"energy_data": positive.mean().item(), "energy_samples": negative.mean().item(), "gap": gap.item()}
    return loss, figures
