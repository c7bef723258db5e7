"""Building blocks (numba functions) shared by the numba loops: one chain, one point at a time, float64.

They mirror the torch kernels' shared parts (kernels/_langevin.py, kernels/_metropolis.py) and are inlined
into each kernel's loop. Randomness comes from each chain's own stream (`_random.py`), passed in as `rng`.

Sums over coordinates (squared norms) are compiled with fastmath's `reassoc` flag alone, so LLVM may reorder
and vectorise them: their last bits depend on the order, nothing else does (no `nnan`/`ninf`, so NaN and inf
propagate as usual). numba's `inline="always"` would compile them with the caller's flags instead, so they are
separate functions, which keep their own flags (as fast as giving the whole loop `reassoc`). Everything
else is plain IEEE arithmetic.
"""

from __future__ import annotations

import math

import numba

from ebm_samplers._numba._random import fill_standard_normal, uniform

_SUMS = dict(fastmath={"reassoc"}, cache=True)


@numba.njit(**_SUMS)
def squared_norm(v):
    """sum_i v_i^2."""
    total = 0.0
    for i in range(v.shape[0]):
        total += v[i] * v[i]
    return total


@numba.njit(**_SUMS)
def weighted_squared_norm(weights, v):
    """sum_i w_i v_i^2."""
    total = 0.0
    for i in range(v.shape[0]):
        total += weights[i] * v[i] * v[i]
    return total


@numba.njit(inline="always", cache=True)
def langevin_proposal(x, grad, h, out, rng):
    """out = x - h grad E(x) + sqrt(2h) xi; returns ||xi||^2, so log q(out | x) = -||xi||^2 / 2 + const."""
    fill_standard_normal(out, rng)
    squared = squared_norm(out)
    scale = math.sqrt(2.0 * h)
    for i in range(x.shape[0]):
        out[i] = x[i] - h * grad[i] + scale * out[i]
    return squared


@numba.njit(**_SUMS)
def langevin_log_density(to, start, grad_at_start, h):
    """log q(to | start) = -||to - start + h grad E(start)||^2 / (4h), up to the constant that cancels."""
    squared = 0.0
    for i in range(to.shape[0]):
        squared += (to[i] - start[i] + h * grad_at_start[i]) ** 2
    return -squared / (4.0 * h)


@numba.njit(inline="always", cache=True)
def metropolis_accept(log_ratio, rng):
    """(accepted, probability) for one proposal, accepted where u < min(1, exp(log_ratio)) (the event log u <
    log_ratio, with the probability's exponential instead of a logarithm more); a NaN ratio is rejected with
    probability 0."""
    u = uniform(rng)  # one uniform per step, NaN or not
    if math.isnan(log_ratio):
        return False, 0.0
    probability = math.exp(min(log_ratio, 0.0))
    return u < probability, probability


@numba.njit(inline="always", cache=True)
def all_finite(energy, grad):
    finite = abs(energy) < math.inf  # False for NaN too
    for i in range(grad.shape[0]):  # no early exit: a branch-free loop vectorises, and failures are rare
        finite &= abs(grad[i]) < math.inf
    return finite
