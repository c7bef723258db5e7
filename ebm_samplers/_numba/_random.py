"""A per-chain random stream for the compiled loops: xoshiro256** (Blackman & Vigna 2021) seeded by splitmix64.

numba's own `np.random` keeps one state per thread and draws a normal in ~90 ns; here each chain owns four
uint64 words (so its draws depend only on its seed, whichever thread runs it) and normals come in pairs from
Marsaglia's polar method, ~25 ns each.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_MASK_53 = 2.0**-53


@numba.njit(inline="always", cache=True)
def _rotate_left(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(cache=True)
def seeded_state(seed):
    """Four xoshiro words from one integer seed, expanded by splitmix64 (never all zero)."""
    state = np.empty(4, dtype=np.uint64)
    z = np.uint64(seed)
    for i in range(4):
        z += np.uint64(0x9E3779B97F4A7C15)
        mixed = z
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state[i] = mixed ^ (mixed >> np.uint64(31))
    return state


@numba.njit(inline="always", cache=True)
def next_word(state):
    """The next uint64 of xoshiro256**; advances `state` in place."""
    result = _rotate_left(state[1] * np.uint64(5), 7) * np.uint64(9)
    shifted = state[1] << np.uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= shifted
    state[3] = _rotate_left(state[3], 45)
    return result


@numba.njit(inline="always", cache=True)
def uniform(state):
    """U(0, 1) with 53 random bits, never exactly 0 (so log(u) is finite)."""
    return (float(next_word(state) >> np.uint64(11)) + 0.5) * _MASK_53


@numba.njit(inline="always", cache=True)
def standard_normal_pair(state):
    """Two independent N(0, 1) by Marsaglia's polar method (no trigonometry; accepts pi/4 of the pairs)."""
    while True:
        u = 2.0 * uniform(state) - 1.0
        v = 2.0 * uniform(state) - 1.0
        s = u * u + v * v
        if 0.0 < s < 1.0:
            factor = math.sqrt(-2.0 * math.log(s) / s)
            return u * factor, v * factor


@numba.njit(inline="always", cache=True)
def fill_standard_normal(out, state):
    """Fill `out` with independent N(0, 1) draws; return their squared norm."""
    d = out.shape[0]
    squared = 0.0
    for i in range(0, d, 2):
        first, second = standard_normal_pair(state)
        out[i] = first
        squared += first * first
        if i + 1 < d:
            out[i + 1] = second
            squared += second * second
    return squared
