"""A per-chain random stream for the numba loops: xoshiro256** (Blackman & Vigna 2021) seeded by splitmix64.

numba's own `np.random` keeps one state per thread and draws a normal in ~90 ns; here each chain owns four
uint64 words (so its draws depend only on its seed, whichever thread runs it) and normals come from the
ziggurat method (Marsaglia & Tsang 2000, 256 layers). One 64-bit word makes one draw in ~99% of cases: its low
8 bits pick the layer and its top 53 bits, read as a signed integer, give the abscissa with its sign; the exact
tail and wedge tests handle the rest.

Speed (about 2 ns per normal instead of 3.5): a fill keeps the four xoshiro words in local variables (registers)
for the whole vector and writes them back once; words become floats through int64 (uint64 -> float64 has no
single x86 instruction); the sign is the integer's sign, not a branch; the rare tail, wedge and retry path is
one out-of-line function, so the common path stays a short loop. No fastmath anywhere here: the tail and wedge
tests must be exact.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_UNIT = 2.0**-53  # one step of a 53-bit uniform


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
def _next(s0, s1, s2, s3):
    """(next uint64 of xoshiro256**, advanced words): the state travels in locals, not memory."""
    result = _rotate_left(s1 * np.uint64(5), 7) * np.uint64(9)
    shifted = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= shifted
    s3 = _rotate_left(s3, 45)
    return result, s0, s1, s2, s3


@numba.njit(inline="always", cache=True)
def _open_unit(word):
    """U(0, 1) from the top 53 bits of `word`, never exactly 0 (so log(u) is finite)."""
    return (float(np.int64(word >> np.uint64(11))) + 0.5) * _UNIT


@numba.njit(inline="always", cache=True)
def uniform(state):
    """U(0, 1) with 53 random bits, never exactly 0; advances `state` (a chain's four words) in place."""
    word, state[0], state[1], state[2], state[3] = _next(state[0], state[1], state[2], state[3])
    return _open_unit(word)


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
#: layer width per unit of the signed 53-bit abscissa integer, which lies in [-2^52, 2^52)
_WIDTHS = _EDGES[:-1] * 2.0**-52


@numba.njit(inline="always", cache=True)
def _candidate(word):
    """(layer, z) of one ziggurat draw: z uniform on (-x[layer], x[layer]), its sign from the word's top bit."""
    layer = word & np.uint64(255)
    return layer, float(np.int64(word) >> np.int64(11)) * _WIDTHS[layer]


@numba.njit(cache=True)
def _rare_draw(layer, z, s0, s1, s2, s3):
    """Finish a draw whose candidate `z` fell outside its layer's inner rectangle (about 1% of draws).

    Layer 0: the tail beyond r by Marsaglia's exponential rejection. Other layers: the wedge test (accept z if a
    uniform height in the layer lies below the density), else a fresh candidate, as often as it takes.
    Returns (z, advanced words).
    """
    while True:
        if layer == 0:
            while True:
                word, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
                a = -math.log(_open_unit(word)) / _TAIL
                word, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
                if -2.0 * math.log(_open_unit(word)) > a * a:
                    return (-(_TAIL + a) if z < 0.0 else _TAIL + a), s0, s1, s2, s3
        word, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
        height = _HEIGHTS[layer] + _open_unit(word) * (_HEIGHTS[layer + 1] - _HEIGHTS[layer])
        if height < math.exp(-0.5 * z * z):
            return z, s0, s1, s2, s3
        word, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
        layer, z = _candidate(word)
        if abs(z) < _EDGES[layer + 1]:
            return z, s0, s1, s2, s3


@numba.njit(inline="always", cache=True)
def fill_standard_normal(out, state):
    """Fill `out` with independent N(0, 1) draws (ziggurat). Advances `state`."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.shape[0]):
        word, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
        layer, z = _candidate(word)
        if not abs(z) < _EDGES[layer + 1]:  # outside the part of the layer that lies wholly under the density
            z, s0, s1, s2, s3 = _rare_draw(layer, z, s0, s1, s2, s3)
        out[i] = z
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
