"""ULA as a numba loop over chains (numba, parallel): x' = x - h m grad E(x) + sqrt(2h) sqrt(m) xi.

m is a diagonal metric per chain (ones for the identity; a dense metric runs on the torch path).

Same update, stats and trace layout as kernels/ula.py; every proposal is kept, one `grad_fn` call per step.
Chains advance in blocks (`_blocks.py`). Its cost at d = 100 is mostly the d normal draws (`_random.py`), then
the gradient (`benchmarks/numba_profile.py`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from ebm_samplers._numba._blocks import block_count, block_size, kept_index, record, row, start_block
from ebm_samplers._numba._loop import NumbaLoop
from ebm_samplers._numba._moves import all_finite, langevin_proposal

_ULA_ARGUMENTS = (types.float64[:, ::1], types.float64[:, ::1])  # inverse mass m, its square root, (n, d)


def _ula_loop(
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
        for step in range(warmup + n_steps):
            for c in range(count):  # each phase in turn for every chain of the block
                chain = first + c
                langevin_proposal(row(x, c), row(grad, c), step_size[chain], row(inverse_mass, chain),
                                  row(noise_scale, chain), row(proposal, c), row(rng, c))  # fmt: skip
            x[:] = proposal  # copy rather than swap the buffers: swapping array references costs refcounting
            for c in range(count):
                if failure[first + c] < 0:  # a NaN chain has nothing left to say (the run will raise)
                    value[c] = grad_fn(row(x, c), row(grad, c))
            index = kept_index(step, warmup, thin)
            for c in range(count):
                chain = first + c
                if failure[chain] >= 0:
                    continue
                finite = all_finite(value[c], row(grad, c))
                if index >= 0:
                    record(draws, energy, acceptance, accepted, nonfinite, chain, index, row(x, c), value[c], 1.0, True,
                           not finite)  # fmt: skip
                if not finite:
                    failure[chain] = step


run_ula = NumbaLoop(_ula_loop, _ULA_ARGUMENTS)
run_ula[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
