"""Compiled building blocks shared by the numba kernels: one chain, one point at a time, float64.

They mirror the torch kernels' shared parts (kernels/_langevin.py, kernels/_metropolis.py) and are inlined
into each kernel's loop. Randomness comes from each chain's own stream (`_random.py`), passed in as `rng`.
"""

from __future__ import annotations

import math

import numba
from numba import types

from ebm_samplers._numba._random import fill_standard_normal, uniform
from energies.numba_energy import function_types

#: The signature shared by every compiled loop, before the kernel's own parameters:
#: (grad_fn, init (n, d), step_size (n,), seeds (n,) of the chains' random streams, warmup, n_steps, thin,
#:  draws (n, keep, d), energy, acceptance_rate (n, keep), accepted, nonfinite (n, keep), first_failure (n,))
LOOP_ARGUMENTS = (
    function_types()[1],
    types.float64[:, ::1],
    types.float64[::1],
    types.int64[::1],
    types.int64,
    types.int64,
    types.int64,
    types.float64[:, :, ::1],
    types.float64[:, ::1],
    types.float64[:, ::1],
    types.boolean[:, ::1],
    types.boolean[:, ::1],
    types.int64[::1],
)


@numba.njit(inline="always", cache=True)
def langevin_proposal(x, grad, h, out, rng):
    """out = x - h grad E(x) + sqrt(2h) xi; returns ||xi||^2, so log q(out | x) = -||xi||^2 / 2 + const."""
    squared = fill_standard_normal(out, rng)
    scale = math.sqrt(2.0 * h)
    for i in range(x.shape[0]):
        out[i] = x[i] - h * grad[i] + scale * out[i]
    return squared


@numba.njit(inline="always", cache=True)
def langevin_log_density(to, start, grad_at_start, h):
    """log q(to | start) = -||to - start + h grad E(start)||^2 / (4h), up to the constant that cancels."""
    squared = 0.0
    for i in range(to.shape[0]):
        squared += (to[i] - start[i] + h * grad_at_start[i]) ** 2
    return -squared / (4.0 * h)


@numba.njit(inline="always", cache=True)
def metropolis_accept(log_ratio, rng):
    """(accepted, probability) for one proposal; a NaN ratio is rejected with probability 0."""
    accepted = math.log(uniform(rng)) < log_ratio  # one uniform per step, NaN or not; NaN compares False
    if math.isnan(log_ratio):
        return False, 0.0
    return accepted, math.exp(min(log_ratio, 0.0))


@numba.njit(inline="always", cache=True)
def all_finite(energy, grad):
    if not math.isfinite(energy):
        return False
    for i in range(grad.shape[0]):
        if not math.isfinite(grad[i]):
            return False
    return True


@numba.njit(inline="always", cache=True)
def kept_index(step, warmup, thin):
    """Index of the kept draw that `step` (counting warm-up) produces, or -1 when it is not kept."""
    after = step - warmup + 1
    if after <= 0 or after % thin:
        return -1
    return after // thin - 1
