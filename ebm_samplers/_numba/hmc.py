"""HMC as a compiled loop over chains (numba, parallel; Duane et al. 1987, Neal 2011), as kernels/hmc.py.

Momentum p ~ N(0, M) with diagonal M (the inverse mass m = M^{-1} comes from warm-up, else 1);
L leapfrog steps of size eps on H(x, p) = E(x) + 1/2 sum_i m_i p_i^2:

    p <- p - eps/2 grad E(x);   repeat L times: x <- x + eps m p,  p <- p - eps grad E(x)  (the last one eps/2)

then accept (x', p') with probability min(1, exp(H(x, p) - H(x', p'))). L is drawn per chain and transition
uniformly from [low, high]. A transition whose energy error exceeds `divergence_threshold` (or is NaN) is
flagged as diverging and, being rejected, leaves the chain where it was. The gradient at the current point
is kept, so a transition costs exactly L `grad_fn` calls (one per leapfrog step).

Recorded as in the torch kernel: `energy` = H of the kept point, `potential_energy` = E(x), `energy_error`,
`n_leapfrog`, `diverging` (in the shared `nonfinite` output), `acceptance_rate`, `accepted`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from ebm_samplers._numba._loop import CompiledLoop
from ebm_samplers._numba._moves import (
    all_finite,
    metropolis_accept,
    store_draw,
    weighted_squared_norm,
)
from ebm_samplers._numba._random import fill_standard_normal, seeded_state, uniform

_HMC_ARGUMENTS = (
    types.float64[:, ::1],  # inverse mass, (n, d)
    types.int64,  # low
    types.int64,  # high
    types.float64,  # divergence threshold
    types.int64[:, ::1],  # n_leapfrog out
    types.float64[:, ::1],  # energy_error out
    types.float64[:, ::1],  # potential_energy out
)


def _hmc_loop(
    grad_fn,
    init,
    step_size,
    seeds,
    warmup,
    n_steps,
    thin,
    draws,
    hamiltonian_out,
    acceptance,
    accepted,
    diverging,
    failure,
    inverse_mass,
    low,
    high,
    divergence_threshold,
    leapfrog_out,
    energy_error_out,
    potential_out,
):
    n, d = init.shape
    for chain in numba.prange(n):
        rng = seeded_state(seeds[chain])
        m = inverse_mass[chain]
        momentum_scale = 1.0 / np.sqrt(m)  # p = xi / sqrt(m) ~ N(0, M), M = diag(1 / m)
        x = init[chain].copy()
        grad = np.empty(d)
        value = grad_fn(x, grad)
        proposal = np.empty(d)
        proposal_grad = np.empty(d)
        momentum = np.empty(d)
        eps = step_size[chain]
        drift = eps * m  # x <- x + eps m p
        failure[chain] = -1
        next_kept = warmup + thin - 1  # the next step whose draw is kept (no division per step)
        for step in range(warmup + n_steps):
            n_leapfrog = low + int(uniform(rng) * (high - low + 1))
            fill_standard_normal(momentum, rng)
            for i in range(d):
                momentum[i] *= momentum_scale[i]
            start_hamiltonian = value + 0.5 * weighted_squared_norm(m, momentum)
            for i in range(d):  # the first half kick and drift
                momentum[i] -= 0.5 * eps * grad[i]
                proposal[i] = x[i] + drift[i] * momentum[i]
            for leap in range(1, n_leapfrog + 1):
                proposal_value = grad_fn(proposal, proposal_grad)
                if leap < n_leapfrog:  # a full kick and the next drift in one pass over the coordinates
                    for i in range(d):
                        momentum[i] -= eps * proposal_grad[i]
                        proposal[i] += drift[i] * momentum[i]
                else:
                    for i in range(d):
                        momentum[i] -= 0.5 * eps * proposal_grad[i]
            end_hamiltonian = proposal_value + 0.5 * weighted_squared_norm(m, momentum)
            energy_error = end_hamiltonian - start_hamiltonian
            accept, probability = metropolis_accept(-energy_error, rng)
            if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                x[:] = proposal
                grad[:] = proposal_grad
                value = proposal_value
            if step == next_kept:
                index = (step - warmup) // thin
                next_kept += thin
                store_draw(draws, chain, index, x)
                hamiltonian_out[chain, index] = end_hamiltonian if accept else start_hamiltonian
                potential_out[chain, index] = value
                energy_error_out[chain, index] = energy_error
                leapfrog_out[chain, index] = n_leapfrog
                acceptance[chain, index] = probability
                accepted[chain, index] = accept
                diverging[chain, index] = not energy_error <= divergence_threshold  # NaN errors diverge too
            if accept and not all_finite(value, grad) and failure[chain] < 0:
                failure[chain] = step  # an accepted point at -inf energy: the energy is broken there


run_hmc = CompiledLoop(_hmc_loop, _HMC_ARGUMENTS)
run_hmc[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
