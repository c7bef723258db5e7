"""MALA as a numba loop over chains (numba, parallel; Roberts & Tweedie 1996).

    x' = x - h m grad E(x) + sqrt(2h) sqrt(m) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)),

with a diagonal metric m per chain (ones for the identity; a dense metric runs on the torch path), where
log q(x' | x) = -||xi||^2 / 2. Same stats and trace layout as kernels/mala.py; the energy and gradient
at the current point are kept, so each step makes one `grad_fn` call (at the proposal). Chains advance in
blocks (`_blocks.py`). As in the torch kernel, a proposal whose energy is +inf or NaN or whose gradient is not
finite is rejected and flagged `diverging` (the shared flag output); only an accepted proposal at energy -inf
fails the run. As for ULA, the d normal draws (`_random.py`) cost more than a cheap
gradient at d = 100.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

from ebm_samplers._numba._blocks import block_count, block_size, kept_index, record, row, start_block
from ebm_samplers._numba._loop import NumbaLoop
from ebm_samplers._numba._moves import all_finite, langevin_log_density, langevin_proposal, metropolis_accept

_MALA_ARGUMENTS = (types.float64[:, ::1], types.float64[:, ::1])  # inverse mass m, its square root, (n, d)


def _mala_loop(
    grad_fn,
    init,
    step_size,
    seeds,
    warmup,
    n_steps,
    thin,
    draws,
    energy,
    acceptance,
    accepted,
    nonfinite,
    failure,
    inverse_mass,
    noise_scale,
):
    n, d = init.shape
    size = block_size(n)
    for block in numba.prange(block_count(n, size)):
        first, count, rng, x, grad, value = start_block(grad_fn, init, seeds, failure, block, size)
        proposal = np.empty((count, d))
        proposal_grad = np.empty((count, d))
        proposal_value = np.empty(count)
        forward_squared = np.empty(count)
        for step in range(warmup + n_steps):
            for c in range(count):  # each phase in turn for every chain of the block
                chain = first + c
                forward_squared[c] = langevin_proposal(
                    row(x, c), row(grad, c), step_size[chain], row(inverse_mass, chain), row(noise_scale, chain),
                    row(proposal, c), row(rng, c),
                )  # fmt: skip
            for c in range(count):
                proposal_value[c] = grad_fn(row(proposal, c), row(proposal_grad, c))
            index = kept_index(step, warmup, thin)
            for c in range(count):
                chain = first + c
                h = step_size[chain]
                x_c, grad_c, proposal_c, gradient_c = row(x, c), row(grad, c), row(proposal, c), row(proposal_grad, c)
                finite = all_finite(proposal_value[c], gradient_c)
                backward = langevin_log_density(
                    x_c, proposal_c, gradient_c, h, row(inverse_mass, chain), row(noise_scale, chain)
                )
                diverging = not finite and proposal_value[c] != -math.inf
                if finite:
                    log_ratio = value[c] - proposal_value[c] + backward + 0.5 * forward_squared[c]
                else:  # explicitly: -inf rejects whatever u is, +inf (energy -inf) accepts
                    log_ratio = -math.inf if diverging else math.inf
                accept, probability = metropolis_accept(log_ratio, row(rng, c))
                if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                    x_c[:] = proposal_c
                    grad_c[:] = gradient_c
                    value[c] = proposal_value[c]
                if index >= 0:
                    record(draws, energy, acceptance, accepted, nonfinite, chain, index, x_c, value[c], probability,
                           accept, diverging)  # fmt: skip
                if accept and not finite and failure[chain] < 0:
                    failure[chain] = step


run_mala = NumbaLoop(_mala_loop, _MALA_ARGUMENTS)
run_mala[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
