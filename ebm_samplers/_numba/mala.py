"""MALA as a numba loop over chains (numba, parallel; Roberts & Tweedie 1996).

    x' = x - h grad E(x) + sqrt(2h) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)),

where log q(x' | x) = -||xi||^2 / 2. Same stats and trace layout as kernels/mala.py; the energy and gradient
at the current point are kept, so each step makes one `grad_fn` call (at the proposal). Chains advance in
blocks (`_blocks.py`). As for ULA, the d normal draws (`_random.py`, about 2 ns each) cost more than a cheap
gradient at d = 100.
"""

from __future__ import annotations

import numba
import numpy as np

from ebm_samplers._numba._blocks import block_count, block_size, kept_index, record, row, start_block
from ebm_samplers._numba._loop import NumbaLoop
from ebm_samplers._numba._moves import all_finite, langevin_log_density, langevin_proposal, metropolis_accept


def _mala_loop(
    grad_fn, init, step_size, seeds, warmup, n_steps, thin, draws, energy, acceptance, accepted, nonfinite, failure
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
                forward_squared[c] = langevin_proposal(
                    row(x, c), row(grad, c), step_size[first + c], row(proposal, c), row(rng, c)
                )
            for c in range(count):
                proposal_value[c] = grad_fn(row(proposal, c), row(proposal_grad, c))
            index = kept_index(step, warmup, thin)
            for c in range(count):
                chain = first + c
                h = step_size[chain]
                x_c, grad_c, proposal_c, gradient_c = row(x, c), row(grad, c), row(proposal, c), row(proposal_grad, c)
                finite = all_finite(proposal_value[c], gradient_c)
                log_ratio = (
                    value[c]
                    - proposal_value[c]
                    + langevin_log_density(x_c, proposal_c, gradient_c, h)
                    + 0.5 * forward_squared[c]
                )
                accept, probability = metropolis_accept(log_ratio, row(rng, c))
                if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                    x_c[:] = proposal_c
                    grad_c[:] = gradient_c
                    value[c] = proposal_value[c]
                if index >= 0:
                    record(draws, energy, acceptance, accepted, nonfinite, chain, index, x_c, value[c], probability,
                           accept, not finite)  # fmt: skip
                if not finite and failure[chain] < 0:
                    failure[chain] = step


run_mala = NumbaLoop(_mala_loop)
run_mala[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
