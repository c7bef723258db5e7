"""Convergence figures per coordinate, every figure computed once, for all coordinates at once.

For draws (chain, draw, K) this gives, per coordinate: mean, sd, rank-normalised split R-hat (the
larger of bulk and folded; Vehtari et al. 2021), bulk ESS, tail ESS (the smaller ESS of the indicators
x <= q_0.05 and x <= q_0.95), MCSE of the mean and of the sd, and the lag-1 autocorrelation. The values
equal ArviZ 1.x's `rhat`, `ess(method="bulk")`, `ess(method="tail", prob=(0.05, 0.95))`, `mcse` and
`mcse(method="sd")` to rounding error (a test checks it), but faster (`benchmarks/diagnostics_speed.py`): each
coordinate is sorted once (see `_rank_normalise`), all ESS series of a block share one vectorised FFT pass (see
`_ess`), and blocks of coordinates run on all cores (numpy's sort and FFT and the numba kernel release
the GIL).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from diagnostics._ess import MAX_DIRECT_LAG, ess_by_fft, ess_direct
from diagnostics._rank_normalise import normal_scores_table, rank_normalise_rows

TAIL_QUANTILES = (0.05, 0.95)
FIGURES = ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat", "acf1")
MIN_DRAWS = 4
#: The series whose ESS each coordinate needs, in the order `_fill_series` builds them.
_SERIES = ("bulk", "below_low_quantile", "below_high_quantile", "draws", "squared_deviation")


def convergence_figures(draws: np.ndarray) -> dict[str, np.ndarray]:
    """A dict of (K,) arrays named by `FIGURES` for float64 draws of shape (chain, draw, K).

    `acf1` is the lag-1 autocorrelation of the split chains (Vehtari et al.'s combined estimate).
    R-hat is NaN for a single chain, as in ArviZ.
    """
    n_chains, n_draws, n_coordinates = draws.shape
    if n_draws < MIN_DRAWS:
        raise ValueError(f"{n_draws} draws per chain; split R-hat and ESS need at least {MIN_DRAWS}")
    by_coordinate = np.ascontiguousarray(np.moveaxis(draws, 2, 0))  # (K, chain, draw)
    workers = min(_cores(), n_coordinates)
    bounds = np.linspace(0, n_coordinates, min(n_coordinates, 4 * workers) + 1).astype(int)
    blocks = [by_coordinate[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    table = normal_scores_table(2 * n_chains * (n_draws // 2))
    if workers == 1:
        parts = [_block_figures(block, table) for block in blocks]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_block_figures, blocks, [table] * len(blocks)))
    return {name: np.concatenate([part[name] for part in parts]) for name in FIGURES}


def _block_figures(draws: np.ndarray, table: np.ndarray) -> dict[str, np.ndarray]:
    n_rows, n_chains, n_draws = draws.shape
    mean, sd, second, fourth = _moments(draws)
    # the tail quantiles are those of all draws (before the middle draw of an odd count is dropped)
    low, high = np.quantile(draws.reshape(n_rows, -1), TAIL_QUANTILES, axis=1) if n_draws % 2 else (None, None)
    if n_draws % 2:  # split chains drop the middle draw
        half = n_draws // 2
        draws = np.concatenate([draws[:, :, :half], draws[:, :, n_draws - half :]], axis=2)
        n_draws -= 1
    half = n_draws // 2

    order = np.argsort(draws.reshape(n_rows, -1), axis=1)
    z = np.empty((n_rows, 2 * n_chains, half))
    bulk_sums = np.zeros((n_rows, 2 * n_chains, 2))
    fold_sums = np.zeros((n_rows, 2 * n_chains, 2))
    ordered = np.empty((n_rows, n_chains * n_draws))
    rank_normalise_rows(draws, order, table, z, bulk_sums, fold_sums, ordered)
    if n_chains > 1:
        r_hat = np.maximum(_rhat_from_sums(bulk_sums, half), _rhat_from_sums(fold_sums, half))
    else:
        r_hat = np.full(n_rows, np.nan)
    if low is None:
        low, high = np.quantile(ordered, TAIL_QUANTILES, axis=1)

    ess = np.empty((len(_SERIES), n_rows))
    rho1 = np.empty((len(_SERIES), n_rows))
    _series_ess(draws, z, low, high, mean, MAX_DIRECT_LAG, ess, rho1)
    kinds, rows = np.nonzero(np.isinf(ess))
    if len(rows):  # long autocorrelations: all lags by one batched FFT
        series = np.empty((len(rows), *z.shape[1:]))
        for index, (kind, row) in enumerate(zip(kinds, rows, strict=True)):
            _fill_series(kind, draws[row], z[row], low[row], high[row], mean[row], series[index])
        ess[kinds, rows], rho1[kinds, rows] = ess_by_fft(series)
    ess_bulk, ess_low, ess_high, ess_mean, ess_squared = ess

    with np.errstate(invalid="ignore", divide="ignore"):
        mcse_sd = np.sqrt((fourth - second**2) / ess_squared / second / 4.0)
        mcse_mean = sd / np.sqrt(ess_mean)
    return {
        "mean": mean,
        "sd": sd,
        "mcse_mean": mcse_mean,
        "mcse_sd": mcse_sd,
        "ess_bulk": ess_bulk,
        "ess_tail": np.minimum(ess_low, ess_high),
        "r_hat": r_hat,
        "acf1": rho1[_SERIES.index("draws")],
    }


def _rhat_from_sums(sums: np.ndarray, n: int) -> np.ndarray:
    """Split R-hat from per-chain (sum, sum of squares) of rank-normalised draws: sqrt(((n-1)/n W + B/n) / W)."""
    chain_mean = sums[:, :, 0] / n
    chain_var = (sums[:, :, 1] - n * chain_mean**2) / (n - 1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@numba.njit(nogil=True, cache=True)
def _moments(draws):
    """Per coordinate of (rows, C, D): mean, sd (ddof 1), and the 2nd and 4th central moments (ddof 0)."""
    n_rows = draws.shape[0]
    mean, sd, second, fourth = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    for row in range(n_rows):
        values = draws[row].ravel()
        mean[row] = values.mean()
        s2 = 0.0
        s4 = 0.0
        for value in values:
            squared = (value - mean[row]) ** 2
            s2 += squared
            s4 += squared * squared
        second[row] = s2 / values.size
        fourth[row] = s4 / values.size
        sd[row] = np.sqrt(s2 / (values.size - 1))
    return mean, sd, second, fourth


@numba.njit(nogil=True, cache=True)
def _fill_series(kind, draws, z, low, high, mean, out):
    """Series `_SERIES[kind]` of one coordinate as split chains: draws (C, D even) -> out (2C, D/2)."""
    n_chains, n_draws = draws.shape
    half = n_draws // 2
    if kind == 0:
        out[:] = z
        return
    for chain in range(2 * n_chains):
        source = draws[chain % n_chains, (chain // n_chains) * half : (chain // n_chains + 1) * half]
        if kind == 1:
            out[chain] = source <= low
        elif kind == 2:
            out[chain] = source <= high
        elif kind == 3:
            out[chain] = source
        else:
            out[chain] = (source - mean) ** 2


@numba.njit(nogil=True, cache=True)
def _series_ess(draws, z, low, high, mean, max_lag, ess_out, rho1_out):
    """Direct-lag ESS of every series of every coordinate (+inf where the FFT is needed). When the bulk
    series (kind 0) needs the FFT, the coordinate's other series almost always do too: skip the attempt."""
    scratch = np.empty(z.shape[1:])
    for row in range(draws.shape[0]):
        for kind in range(ess_out.shape[0]):
            if kind > 0 and np.isinf(ess_out[0, row]):
                ess_out[kind, row], rho1_out[kind, row] = np.inf, np.nan
                continue
            _fill_series(kind, draws[row], z[row], low[row], high[row], mean[row], scratch)
            ess_out[kind, row], rho1_out[kind, row] = ess_direct(scratch, max_lag)
