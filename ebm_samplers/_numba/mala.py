"""MALA as a compiled loop over chains (numba, parallel; Roberts & Tweedie 1996).

    x' = x - h grad E(x) + sqrt(2h) xi
    log a = E(x) - E(x') + log q(x | x') - log q(x' | x),   accept with probability min(1, exp(log a)),

where log q(x' | x) = -||xi||^2 / 2. Same stats and trace layout as kernels/mala.py; the energy and gradient
at the current point are kept, so each step makes one `grad_fn` call (at the proposal). As for ULA, the d normal
draws (`_random.py`, about 2 ns each) cost more than a cheap gradient at d = 100.
"""

from __future__ import annotations

import numba
import numpy as np

from ebm_samplers._numba._loop import CompiledLoop
from ebm_samplers._numba._moves import (
    all_finite,
    langevin_log_density,
    langevin_proposal,
    metropolis_accept,
    store_draw,
)
from ebm_samplers._numba._random import seeded_state


def _mala_loop(
    grad_fn, init, step_size, seeds, warmup, n_steps, thin, draws, energy, acceptance, accepted, nonfinite, failure
):
    n, d = init.shape
    for chain in numba.prange(n):
        rng = seeded_state(seeds[chain])
        x = init[chain].copy()
        grad = np.empty(d)
        value = grad_fn(x, grad)
        proposal = np.empty(d)
        proposal_grad = np.empty(d)
        h = step_size[chain]
        failure[chain] = -1
        next_kept = warmup + thin - 1  # the next step whose draw is kept (no division per step)
        for step in range(warmup + n_steps):
            forward_squared = langevin_proposal(x, grad, h, proposal, rng)
            proposal_value = grad_fn(proposal, proposal_grad)
            finite = all_finite(proposal_value, proposal_grad)
            log_ratio = (
                value - proposal_value + langevin_log_density(x, proposal, proposal_grad, h) + 0.5 * forward_squared
            )
            accept, probability = metropolis_accept(log_ratio, rng)
            if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                x[:] = proposal
                grad[:] = proposal_grad
                value = proposal_value
            if step == next_kept:
                index = (step - warmup) // thin
                next_kept += thin
                store_draw(draws, chain, index, x)
                energy[chain, index] = value
                acceptance[chain, index] = probability
                accepted[chain, index] = accept
                nonfinite[chain, index] = not finite
            if not finite and failure[chain] < 0:
                failure[chain] = step


run_mala = CompiledLoop(_mala_loop)
run_mala[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
