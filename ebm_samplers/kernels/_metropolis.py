"""The Metropolis-Hastings correction shared by every adjusted kernel (MALA, HMC, random walk, ...).

Accept a proposal x' from x with probability min(1, exp(log_ratio)), where
log_ratio = -E(x') + E(x) + log q(x | x') - log q(x' | x)   (Metropolis et al. 1953; Hastings 1970).
Everything stays in log space so ratios of tiny densities neither underflow nor overflow.

A proposal whose energy is +inf or NaN, or whose gradient is not finite, has zero density (or none that can
be trusted): it is rejected and counted as a divergence, never a failure of the run (`reject_diverging`). A
proposal at energy -inf is not rejected: its ratio is +inf, so it is accepted and the new state fails, which
the run's `on_nonfinite` policy reports (an energy unbounded below is a broken model, not zero density).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.kernels.base import nonfinite, not_finite


def metropolis_accept(log_ratio: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-chain `(accepted, acceptance_probability)` for the log acceptance ratios `log_ratio` (n,).

    A NaN ratio (a proposal whose energy is NaN) is rejected; its acceptance probability is reported as 0.
    Pass the ratio through `reject_diverging` first to reject every non-finite proposal explicitly and count
    it in the `diverging` stat: a proposal with a finite energy but a NaN gradient can have a finite ratio
    (a random-walk ratio ignores the gradient), and once accepted its state would fail the run.
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


def reject_diverging(
    log_ratio: Tensor, proposal_energy: Tensor, proposal_grad: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """`(log_ratio, diverging)`: the log ratios (n,) with -inf where the proposal diverged (+inf where its
    energy is -inf, whatever its gradient, so that the policy sees it), and where it diverged.

    A proposal diverged where its energy is +inf or NaN or its gradient `proposal_grad` is not finite (energy
    -inf excepted, see the module docstring). Without `proposal_grad`, where the ratio itself is not finite:
    exact, and one check of n values instead of a pass over the gradients, for a ratio that involves the
    proposal's energy and gradient (MALA's) from a finite current state (a non-finite gradient entry makes
    the ratio -inf or NaN, never a finite number). The ratio -inf (probability 0) rejects the proposal for
    any uniform draw, in `metropolis_decision` as in the numba loops.
    """
    unbounded = proposal_energy == -torch.inf
    failed = not_finite(log_ratio) if proposal_grad is None else nonfinite(proposal_energy, proposal_grad)
    diverging = failed & ~unbounded
    return log_ratio.masked_fill(diverging, -torch.inf).masked_fill_(unbounded, torch.inf), diverging
