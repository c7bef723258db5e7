"""HMC as a compiled loop over chains (numba, parallel; Duane et al. 1987, Neal 2011).

Momentum p ~ N(0, I); `n_leapfrog` leapfrog steps of size eps on H(x, p) = E(x) + ||p||^2 / 2:

    p <- p - eps/2 grad E(x);   repeat L times: x <- x + eps p, p <- p - eps grad E(x)  (the last one eps/2)

then accept (x', p') with probability min(1, exp(H(x, p) - H(x', p'))). The gradient at the current point is
kept, so a transition costs exactly `n_leapfrog` `grad_fn` calls (one per leapfrog step).
"""

from __future__ import annotations

import numba
import numpy as np

from ebm_samplers._numba._moves import LOOP_ARGUMENTS, all_finite, kept_index, metropolis_accept
from ebm_samplers._numba._random import fill_standard_normal, seeded_state


@numba.njit(numba.void(*LOOP_ARGUMENTS, numba.int64), parallel=True, cache=True)
def run_hmc(
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
    n_leapfrog,
):
    n, d = init.shape
    for chain in numba.prange(n):
        rng = seeded_state(seeds[chain])
        x = init[chain].copy()
        grad = np.empty(d)
        value = grad_fn(x, grad)
        proposal = np.empty(d)
        proposal_grad = np.empty(d)
        momentum = np.empty(d)
        eps = step_size[chain]
        failure[chain] = -1
        for step in range(warmup + n_steps):
            kinetic = fill_standard_normal(momentum, rng)
            for i in range(d):
                proposal[i] = x[i]
                proposal_grad[i] = grad[i]
            initial_hamiltonian = value + 0.5 * kinetic
            for i in range(d):
                momentum[i] -= 0.5 * eps * proposal_grad[i]
            for leap in range(n_leapfrog):
                for i in range(d):
                    proposal[i] += eps * momentum[i]
                proposal_value = grad_fn(proposal, proposal_grad)
                kick = eps if leap < n_leapfrog - 1 else 0.5 * eps
                for i in range(d):
                    momentum[i] -= kick * proposal_grad[i]
            finite = all_finite(proposal_value, proposal_grad)
            kinetic = 0.0
            for i in range(d):
                kinetic += momentum[i] * momentum[i]
            accept, probability = metropolis_accept(initial_hamiltonian - (proposal_value + 0.5 * kinetic), rng)
            if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                x[:] = proposal
                grad[:] = proposal_grad
                value = proposal_value
            index = kept_index(step, warmup, thin)
            if index >= 0:
                draws[chain, index] = x
                energy[chain, index] = value
                acceptance[chain, index] = probability
                accepted[chain, index] = accept
                nonfinite[chain, index] = not finite
            if not finite and failure[chain] < 0:
                failure[chain] = step
