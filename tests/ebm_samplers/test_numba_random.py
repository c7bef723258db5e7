"""The compiled loops' normal generator (ziggurat on xoshiro256**) against the exact N(0, 1) law."""

import math

import numba
import numpy as np
from scipy import stats

from ebm_samplers._numba._random import _TAIL, fill_standard_normal, seeded_state
from tests.helpers import Z_999


@numba.njit
def _draws(seed, n):
    out = np.empty(n)
    fill_standard_normal(out, seeded_state(seed))
    return out


def _z(count: float, expected: float, variance: float) -> float:
    return abs(count - expected) / math.sqrt(variance)


def test_ziggurat_normals_have_the_normal_law_in_the_bulk_and_the_tail():
    n = 2_000_000
    z = _draws(12345, n)
    assert _z(z.sum(), 0.0, n) < Z_999  # mean 0, variance 1
    assert _z((z * z).sum(), n, 2 * n) < Z_999  # E z^2 = 1, Var z^2 = 2
    assert _z((z**4).sum(), 3 * n, 96 * n) < Z_999  # E z^4 = 3, Var z^4 = 105 - 9
    # the three code paths: rectangles, wedges (|z| just below an edge) and the tail beyond r
    for threshold in (0.5, 2.0, _TAIL, 4.0):
        p = 2 * stats.norm.sf(threshold)
        assert _z(float((np.abs(z) > threshold).sum()), n * p, n * p * (1 - p)) < Z_999, threshold
    assert stats.kstest(z[:200_000], "norm").pvalue > 0.001
    assert not np.array_equal(_draws(1, 10), _draws(2, 10))
    assert np.array_equal(_draws(1, 10), _draws(1, 10))
