"""Model samples for the contrastive methods, drawn through the samplers' public API only."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ebm_samplers._validate import check_count
from ebm_samplers.kernels import Kernel
from ebm_samplers.registry import get_sampler


def make_kernel(sampler: str | Kernel, step_size: float, **params) -> Kernel:
    """A registered sampler by name (with `step_size` and `params`), or the user's kernel object as is."""
    if isinstance(sampler, Kernel):
        return sampler
    if not isinstance(sampler, str):
        raise TypeError(f"sampler must be a registered sampler name or a Kernel; got {type(sampler).__name__}")
    return get_sampler(sampler, step_size=step_size, **params)


def check_chain_steps(n_steps, method: str) -> None:
    """A method's sampler transitions per update must be a whole number >= 1 (0 would contrast the data with
    itself, a loss of zero, rather than with model samples)."""
    check_count(n_steps, f"{method} n_steps (sampler transitions per update)", minimum=1)


def run_chains(kernel: Kernel, energy: nn.Module, start: Tensor, n_steps: int, generator: torch.Generator) -> Tensor:
    """Run `n_steps` transitions of `kernel` on `energy` from `start`; the final positions, detached."""
    state = kernel.init(start.detach(), energy)
    for _ in range(n_steps):
        state, _ = kernel.step(state, energy, generator)
    return state.position.detach()
