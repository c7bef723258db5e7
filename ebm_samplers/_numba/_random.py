"""A per-chain random stream for the compiled loops: xoshiro256** (Blackman & Vigna 2021) seeded by splitmix64.

numba's own `np.random` keeps one state per thread and draws a normal in ~90 ns; here each chain owns four
uint64 words (so its draws depend only on its seed, whichever thread runs it) and normals come from the
ziggurat method (Marsaglia & Tsang 2000, 256 layers): one 64-bit word per draw in ~99% of cases (8 bits pick
the layer, 1 the sign, 53 the abscissa), with the exact tail and wedge tests for the rest.
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


def _ziggurat_tables(layers: int = 256, r: float = 3.6541528853610088, area: float = 4.92867323399e-3):
    """Layer edges x[0..layers] (x[0] = area / f(r) is the base strip's virtual width, x[1] = r, x[layers] = 0)
    and f(x) = exp(-x^2 / 2) at them: every layer, and the base strip with the tail, has the same area."""
    x = np.zeros(layers + 1)
    x[0], x[1] = area / math.exp(-0.5 * r * r), r
    for i in range(1, layers - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(area / x[i] + math.exp(-0.5 * x[i] * x[i])))
    return x, np.exp(-0.5 * x * x)


_EDGES, _HEIGHTS = _ziggurat_tables()
_TAIL = _EDGES[1]


@numba.njit(inline="always", cache=True)
def standard_normal(state):
    """N(0, 1) by the ziggurat method."""
    while True:
        word = next_word(state)
        layer = int(word & np.uint64(255))
        sign = -1.0 if word & np.uint64(256) else 1.0
        z = float(word >> np.uint64(11)) * _MASK_53 * _EDGES[layer]
        if z < _EDGES[layer + 1]:  # inside the part of the layer that lies wholly under the density
            return sign * z
        if layer == 0:  # the tail beyond r, by Marsaglia's exponential rejection
            while True:
                a = -math.log(uniform(state)) / _TAIL
                b = -math.log(uniform(state))
                if 2.0 * b > a * a:
                    return sign * (_TAIL + a)
        height = _HEIGHTS[layer] + uniform(state) * (_HEIGHTS[layer + 1] - _HEIGHTS[layer])
        if height < math.exp(-0.5 * z * z):  # the wedge: accept below the density
            return sign * z


@numba.njit(inline="always", cache=True)
def fill_standard_normal(out, state):
    """Fill `out` with independent N(0, 1) draws; return their squared norm."""
    squared = 0.0
    for i in range(out.shape[0]):
        out[i] = standard_normal(state)
        squared += out[i] * out[i]
    return squared
