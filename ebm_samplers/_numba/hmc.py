"""HMC as a numba loop over chains (numba, parallel; Duane et al. 1987, Neal 2011), as kernels/hmc.py.

Momentum p ~ N(0, M) with diagonal M (the inverse mass m = M^{-1} comes from warm-up, else 1);
L leapfrog steps of size eps on H(x, p) = E(x) + 1/2 sum_i m_i p_i^2:

    p <- p - eps/2 grad E(x);   repeat L times: x <- x + eps m p,  p <- p - eps grad E(x)  (the last one eps/2)

then accept (x', p') with probability min(1, exp(H(x, p) - H(x', p'))). L is drawn per chain and transition
uniformly from [low, high]. A transition whose energy error exceeds `divergence_threshold` (or is NaN) is
flagged as diverging and, being rejected, leaves the chain where it was. The gradient at the current point
is kept, so a transition costs exactly L `grad_fn` calls (one per leapfrog step). Chains advance in blocks
(`_blocks.py`), a block's chains one leapfrog step each in turn, so the CPU overlaps their gradients.

Recorded as in the torch kernel: `hamiltonian` = H of the kept point, `potential_energy` = E(x), `energy_error`,
`n_leapfrog`, `diverging` (in the shared `nonfinite` output), `acceptance_rate`, `accepted`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from ebm_samplers._numba._blocks import block_count, block_size, kept_index, record, row, start_block
from ebm_samplers._numba._loop import NumbaLoop
from ebm_samplers._numba._moves import all_finite, metropolis_accept, weighted_squared_norm
from ebm_samplers._numba._random import fill_standard_normal, uniform

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
    diverging_out,
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
    size = block_size(n)
    for block in numba.prange(block_count(n, size)):
        first, count, rng, x, grad, value = start_block(grad_fn, init, seeds, failure, block, size)
        proposal = np.empty((count, d))
        proposal_grad = np.empty((count, d))
        proposal_value = np.empty(count)
        momentum = np.empty((count, d))
        momentum_scale = np.empty((count, d))
        drift = np.empty((count, d))
        start_hamiltonian = np.empty(count)
        n_leapfrog = np.empty(count, dtype=np.int64)
        for c in range(count):
            m, eps = row(inverse_mass, first + c), step_size[first + c]
            for i in range(d):
                momentum_scale[c, i] = 1.0 / np.sqrt(m[i])  # p = xi / sqrt(m) ~ N(0, M), M = diag(1 / m)
                drift[c, i] = eps * m[i]  # x <- x + eps m p
        for step in range(warmup + n_steps):
            longest = 0
            for c in range(count):  # draw the momentum, then the first half kick and drift
                chain, eps = first + c, step_size[first + c]
                rng_c, momentum_c, proposal_c = row(rng, c), row(momentum, c), row(proposal, c)
                x_c, grad_c, scale_c, drift_c = row(x, c), row(grad, c), row(momentum_scale, c), row(drift, c)
                n_leapfrog[c] = low + int(uniform(rng_c) * (high - low + 1))
                longest = max(longest, n_leapfrog[c])
                fill_standard_normal(momentum_c, rng_c)
                for i in range(d):
                    momentum_c[i] *= scale_c[i]
                start_hamiltonian[c] = value[c] + 0.5 * weighted_squared_norm(row(inverse_mass, chain), momentum_c)
                for i in range(d):
                    momentum_c[i] -= 0.5 * eps * grad_c[i]
                    proposal_c[i] = x_c[i] + drift_c[i] * momentum_c[i]
            for leap in range(1, longest + 1):  # leapfrog step by leapfrog step, each chain of the block in turn
                for c in range(count):
                    if leap > n_leapfrog[c]:
                        continue
                    eps, proposal_c, gradient_c = step_size[first + c], row(proposal, c), row(proposal_grad, c)
                    momentum_c, drift_c = row(momentum, c), row(drift, c)
                    proposal_value[c] = grad_fn(proposal_c, gradient_c)
                    if leap < n_leapfrog[c]:  # a full kick and the next drift in one pass over the coordinates
                        for i in range(d):
                            momentum_c[i] -= eps * gradient_c[i]
                            proposal_c[i] += drift_c[i] * momentum_c[i]
                    else:
                        for i in range(d):
                            momentum_c[i] -= 0.5 * eps * gradient_c[i]
            index = kept_index(step, warmup, thin)
            for c in range(count):
                chain, x_c, grad_c, momentum_c = first + c, row(x, c), row(grad, c), row(momentum, c)
                end_hamiltonian = proposal_value[c] + 0.5 * weighted_squared_norm(row(inverse_mass, chain), momentum_c)
                energy_error = end_hamiltonian - start_hamiltonian[c]
                accept, probability = metropolis_accept(-energy_error, row(rng, c))
                if accept:  # copy rather than swap the buffers: swapping array references costs refcounting
                    x_c[:] = row(proposal, c)
                    grad_c[:] = row(proposal_grad, c)
                    value[c] = proposal_value[c]
                if index >= 0:
                    kept_hamiltonian = end_hamiltonian if accept else start_hamiltonian[c]
                    diverging = not energy_error <= divergence_threshold  # NaN errors diverge too
                    record(draws, hamiltonian_out, acceptance, accepted, diverging_out, chain, index, x_c,
                           kept_hamiltonian, probability, accept, diverging)  # fmt: skip
                    potential_out[chain, index] = value[c]
                    energy_error_out[chain, index] = energy_error
                    leapfrog_out[chain, index] = n_leapfrog[c]
                if accept and not all_finite(value[c], grad_c) and failure[chain] < 0:
                    failure[chain] = step  # an accepted point at -inf energy: the energy is broken there


run_hmc = NumbaLoop(_hmc_loop, _HMC_ARGUMENTS)
run_hmc[np.float32]  # the default dtype's version is compiled (or loaded from the cache) on import
