"""Initial step-size search before dual averaging (Hoffman & Gelman 2014, Algorithm 4; Stan's init_stepsize).

From the initial state, measure the acceptance probability of one step at step size h (MALA: one proposal; HMC:
one leapfrog step with a fresh momentum; `Kernel.probe_acceptance`). If it is above the target, keep doubling h
until it falls below; otherwise keep halving until it rises above. The step at which it crossed is returned, and
dual averaging then starts from mu = log(10 h). A start off by orders of magnitude (a target of scale 1e-3 or
1e3 with the default h) thus costs a few probes instead of a warm-up spent rejecting everything or crawling.

Pooled over chains: the statistic is the mean acceptance over chains, the quantity the shared dual averaging then
drives to the target, so the search and the recursion aim at the same thing (a median would follow the typical
chain, but the run is tuned on the mean). One probe costs one step of every chain. Acceptance probabilities of
non-finite proposals are 0 (`reject_diverging`), so a step size that lands outside a support is halved.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ebm_samplers.kernels.base import Kernel, State

#: Doublings or halvings at most: 2^60 ~ 1e18 either way from the start covers any scale a float can hold.
MAX_PROBES = 60


def search_step_size(
    kernel: Kernel, state: State, energy, generator: torch.Generator, target: float, max_probes: int = MAX_PROBES
) -> Tensor:
    """The shared step size (n,) where the mean one-step acceptance over chains crosses `target`, from the state's."""
    step = state.step_size.mean()

    def acceptance(h: Tensor) -> float:
        probe = dataclasses.replace(state, step_size=h.expand_as(state.step_size).clone())
        return float(kernel.probe_acceptance(probe, energy, generator).nan_to_num(nan=0.0).mean())

    rate = acceptance(step)
    direction = 1 if rate > target else -1
    for _ in range(max_probes):
        step = step * 2.0**direction
        if not bool(torch.isfinite(step) & (step > 0)):
            break
        rate = acceptance(step)
        if (rate <= target) if direction == 1 else (rate >= target):
            return step.expand_as(state.step_size).clone()
    name = kernel.name or type(kernel).__name__
    if direction == 1:
        raise ValueError(
            f"{name} step-size search: one step is accepted with probability {rate:.3g} > {target} even at step size "
            f"{float(step):.3g}; the energy looks flat or improper (no finite scale). Check the energy, or pass "
            "adapt_step_size=False with a step_size"
        )
    raise ValueError(
        f"{name} step-size search: no step size down to {float(step):.3g} has one-step acceptance above {target} "
        f"(last: {rate:.3g}); the energy or its gradient is probably NaN or infinite around the initial points. "
        "Check the energy there, or start the chains elsewhere (init=...)"
    )
