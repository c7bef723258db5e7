"""The Metropolis-Hastings correction shared by every adjusted kernel (MALA, HMC, random walk, ...).

Accept a proposal x' from x with probability min(1, exp(log_ratio)), where
log_ratio = -E(x') + E(x) + log q(x | x') - log q(x' | x)   (Metropolis et al. 1953; Hastings 1970).
Everything stays in log space so ratios of tiny densities neither underflow nor overflow.
"""

from __future__ import annotations

import torch
from torch import Tensor


def metropolis_accept(log_ratio: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-chain `(accepted, acceptance_probability)` for the log acceptance ratios `log_ratio` (n,).

    A NaN ratio (a proposal whose energy is NaN) compares False and so is rejected; its acceptance
    probability is reported as 0. Kernels flag such proposals in `Info["nonfinite"]` so the run loop
    can apply the user's policy instead of hiding them.
    """
    return metropolis_decision(log_ratio, acceptance_uniform(log_ratio, generator))


def acceptance_uniform(like: Tensor, generator: torch.Generator) -> Tensor:
    """The uniform draw u ~ U[0, 1) per chain that decides acceptance, for per-chain values `like` (n,)."""
    return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def metropolis_decision(log_ratio: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor]:
    """`metropolis_accept` given its uniform draw: accept where u < min(1, exp(log_ratio)).

    The same event as log u < log_ratio, with the one exponential that the reported probability needs anyway
    instead of a logarithm more; a NaN ratio has probability 0, and u < 0 never holds.
    """
    probability = log_ratio.clamp(max=0.0).exp_().nan_to_num_(nan=0.0)
    return uniform < probability, probability
