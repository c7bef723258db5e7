"""The numba loops' random streams (ziggurat normals and uniforms on xoshiro256**) against their exact laws.

Tolerances are exact standard errors: a count or sum of n independent draws has a known variance, so each
check is |observed - expected| / sd < Z_999.
"""

import math

import numba
import numpy as np
from scipy import stats

from ebm_samplers._numba._random import _EDGES, _TAIL, fill_standard_normal, seeded_state, uniform
from tests.helpers import Z_999


@numba.njit
def _normals(seed, n, block):
    """n normals from one stream, filled `block` at a time as the kernels fill a chain's vector each step."""
    out = np.empty(n)
    state = seeded_state(seed)
    for start in range(0, n, block):
        fill_standard_normal(out[start : start + block], state)
    return out


@numba.njit
def _uniforms(seed, n):
    out = np.empty(n)
    state = seeded_state(seed)
    for i in range(n):
        out[i] = uniform(state)
    return out


def _z(total: float, expected: float, variance: float) -> float:
    return abs(total - expected) / math.sqrt(variance)


def test_ziggurat_normals_have_the_normal_law_in_the_bulk_and_the_tail():
    n = 2_000_000
    z = _normals(12345, n, 100)
    assert _z(z.sum(), 0.0, n) < Z_999  # mean 0, variance 1
    assert _z((z * z).sum(), n, 2 * n) < Z_999  # E z^2 = 1, Var z^2 = 2
    assert _z((z**4).sum(), 3 * n, 96 * n) < Z_999  # E z^4 = 3 (kurtosis), Var z^4 = 105 - 9
    # the three code paths: rectangles, wedges (|z| just below an edge) and the tail beyond r
    for threshold in (0.5, 2.0, _TAIL, 4.0):
        p = 2 * stats.norm.sf(threshold)
        assert _z(float((np.abs(z) > threshold).sum()), n * p, n * p * (1 - p)) < Z_999, threshold
    assert _z(float((z < 0).sum()), n / 2, n / 4) < Z_999  # the sign bit
    assert stats.kstest(z[:200_000], "norm").pvalue > 0.001


def test_every_ziggurat_layer_and_sign_gets_its_exact_probability():
    # 512 bins with the layer edges as boundaries, on both sides of 0: a wrong table entry, wedge test or sign
    # would move mass between neighbouring bins. Chi-square with 511 degrees of freedom.
    n = 2_000_000
    z = _normals(777, n, 2)  # the 2-D targets' fill size: each fill starts from the stored state
    positive = np.sort(_EDGES[1:])  # 0 = x[256] < x[255] < ... < x[1] = r
    edges = np.concatenate([[-np.inf], -positive[::-1], positive[1:], [np.inf]])
    counts = np.histogram(z, bins=edges)[0]
    expected = n * np.diff(stats.norm.cdf(edges))
    assert counts.shape == (512,) and expected.min() > 100
    assert stats.chisquare(counts, expected).pvalue > 0.001


def test_streams_depend_on_the_seed_only():
    assert not np.array_equal(_normals(1, 10, 10), _normals(2, 10, 10))
    assert np.array_equal(_normals(1, 10, 10), _normals(1, 10, 10))
    assert np.array_equal(_normals(1, 10, 10), _normals(1, 10, 2))  # the same stream however it is split


def test_uniforms_are_uniform_on_the_open_unit_interval():
    n = 1_000_000
    u = _uniforms(99, n)
    assert 0.0 < u.min() and u.max() < 1.0
    assert _z(u.sum(), n / 2, n / 12) < Z_999
    assert _z((u < 0.01).sum(), 0.01 * n, 0.01 * 0.99 * n) < Z_999
    assert stats.kstest(u[:200_000], "uniform").pvalue > 0.001
