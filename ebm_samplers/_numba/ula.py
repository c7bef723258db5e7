"""ULA as a compiled loop over chains (numba, parallel): x' = x - h grad E(x) + sqrt(2h) xi.

Same update, stats and trace layout as kernels/ula.py; every proposal is kept, one `grad_fn` call per step.
Its cost at d = 100 is mostly the d normal draws (`_random.py`, about 2 ns each), then the gradient.
"""

from __future__ import annotations

import numba
import numpy as np

from ebm_samplers._numba._loop import CompiledLoop
from ebm_samplers._numba._moves import all_finite, langevin_proposal, store_draw
from ebm_samplers._numba._random import seeded_state


def _ula_loop(
    grad_fn, init, step_size, seeds, warmup, n_steps, thin, draws, energy, acceptance, accepted, nonfinite, failure
):
    n, d = init.shape
    for chain in numba.prange(n):
        rng = seeded_state(seeds[chain])
        x = init[chain].copy()
        grad = np.empty(d)
        value = grad_fn(x, grad)
        proposal = np.empty(d)
        h = step_size[chain]
        failure[chain] = -1
        next_kept = warmup + thin - 1  # the next step whose draw is kept (no division per step)
        for step in range(warmup + n_steps):
            langevin_proposal(x, grad, h, proposal, rng)
            x[:] = proposal  # copy rather than swap the buffers: swapping array references costs refcounting
            value = grad_fn(x, grad)
            finite = all_finite(value, grad)
            if step == next_kept:
                index = (step - warmup) // thin
                next_kept += thin
                store_draw(draws, chain, index, x)
                energy[chain, index] = value
                acceptance[chain, index] = 1.0
                accepted[chain, index] = True
                nonfinite[chain, index] = not finite
            if not finite:
                failure[chain] = step
                break  # the run will raise; a NaN chain has nothing left to say


run_ula = CompiledLoop(_ula_loop)
run_ula[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
