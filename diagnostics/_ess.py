"""Effective sample size of many series (Geyer's initial monotone sequence, exactly as ArviZ computes it).

For split chains x[c, t] (m chains of n draws), with autocovariances acov_c(t) (divided by n):

    W = mean_c acov_c(0) n / (n - 1),   var+ = W (n - 1) / n + var_c(mean of chain c)
    rho(t) = 1 - (W - mean_c acov_c(t)) / var+
    pairs P_j = rho(2j) + rho(2j + 1), kept while positive, then made monotone (running minimum)
    tau = -1 + 2 sum(kept rho) + rho(first even lag not kept)^+,   ESS = m n / max(tau, 1 / log10(m n))

(Vehtari et al. 2021, eqs. 10-11; Geyer 1992.) The loop below is `arviz_stats`' `_ess` with one
change that makes it fast: autocovariances are computed lag by lag, only as far as the truncation
needs. A well-mixing series truncates after a few lags, so this costs a few passes over the data
instead of an FFT; a series that needs more than `max_lag` lags falls back to the FFT for all lags.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.fft import next_fast_len

#: Lags computed directly before a series falls back to the FFT. One FFT pass over a series costs about as
#: much as 30-50 direct lags (measured), so trying more lags than this risks wasting more than an FFT.
MAX_DIRECT_LAG = 24
#: ArviZ calls a series constant when max - min is below np.finfo(float).resolution.
_RESOLUTION = 1e-15
#: Bound on the FFT buffer (complex elements) of one block of series.
_FFT_BLOCK_ELEMENTS = 4_000_000


def ess_of_series(series: np.ndarray, max_lag: int = MAX_DIRECT_LAG) -> tuple[np.ndarray, np.ndarray]:
    """ESS and lag-1 autocorrelation rho(1) of each series; `series` has shape (S, m chains, n draws)."""
    series = np.ascontiguousarray(series, dtype=np.float64)
    ess = np.empty(series.shape[0])
    rho1 = np.empty(series.shape[0])
    for row in range(series.shape[0]):
        ess[row], rho1[row] = ess_direct(series[row], max_lag)
    unresolved = np.flatnonzero(np.isinf(ess))
    if unresolved.size:
        ess[unresolved], rho1[unresolved] = ess_by_fft(series[unresolved])
    return ess, rho1


def ess_by_fft(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ESS and rho(1) of (S, m, n) series with every autocovariance from FFTs (in blocks of bounded memory)."""
    n_series, n_chains, n_draws = series.shape
    n_fft = next_fast_len(2 * n_draws)
    chain_mean = series.mean(axis=2)
    acov = np.empty((n_series, n_draws))
    block = max(1, _FFT_BLOCK_ELEMENTS // (n_chains * n_fft))
    for start in range(0, n_series, block):
        centred = series[start : start + block] - chain_mean[start : start + block, :, None]
        spectrum = np.fft.rfft(centred, n=n_fft, axis=2)
        power = (spectrum.real**2 + spectrum.imag**2).mean(axis=1)  # the inverse FFT is linear: average chains
        acov[start : start + block] = np.fft.irfft(power, n=n_fft, axis=1)[:, :n_draws] / n_draws
    ess, rho1 = np.empty(n_series), np.empty(n_series)
    _geyer_known(series, chain_mean, acov, ess, rho1)
    return ess, rho1


@numba.njit(nogil=True, cache=True)
def _geyer_known(series, chain_mean, acov, ess_out, rho1_out):
    n_series, n_chains, n_draws = series.shape
    for row in range(n_series):
        if series[row].max() - series[row].min() < _RESOLUTION:
            ess_out[row], rho1_out[row] = float(n_chains * n_draws), np.nan
        else:
            # the centred series is only read for lags not yet known; here every lag is known
            ess_out[row], rho1_out[row] = _geyer(series[row], chain_mean[row], acov[row], n_draws, n_draws)


@numba.njit(nogil=True, cache=True)
def ess_direct(series, max_lag):
    """ESS and rho(1) of one (m, n) series, computing autocovariances lag by lag up to `max_lag`;
    ESS = +inf means more lags were needed (call `ess_by_fft`)."""
    n_chains, n_draws = series.shape
    if series.max() - series.min() < _RESOLUTION:
        return float(n_chains * n_draws), np.nan
    chain_mean = np.empty(n_chains)
    centred = np.empty_like(series)
    for c in range(n_chains):
        chain_mean[c] = series[c].mean()
        centred[c] = series[c] - chain_mean[c]
    acov = np.zeros(n_draws)
    return _geyer(centred, chain_mean, acov, 0, max_lag)


@numba.njit(nogil=True, cache=True, fastmath=True)  # fastmath lets the dot product use SIMD (reassociation)
def _lag(centred, acov, known, lag, max_lag):
    """mean_c acov_c(lag), computed now unless known; NaN signals 'beyond max_lag'."""
    if lag < known:
        return acov[lag]
    if lag > max_lag:
        return np.nan
    n_chains, n_draws = centred.shape
    total = 0.0
    for c in range(n_chains):
        for i in range(n_draws - lag):
            total += centred[c, i] * centred[c, i + lag]
    acov[lag] = total / n_draws / n_chains
    return acov[lag]


@numba.njit(nogil=True, cache=True)
def _needs_many_lags(rho1, max_lag):
    if rho1 >= 1.0:
        return True
    if rho1 <= 0.0:
        return False
    return np.log(0.01) / np.log(rho1) > max_lag


@numba.njit(nogil=True, cache=True)
def _geyer(centred, chain_mean, acov, known, max_lag):
    n_chains, n_draws = centred.shape
    total = n_chains * n_draws
    computed = known
    if computed < 2:
        _lag(centred, acov, 0, 0, max_lag)
        _lag(centred, acov, 1, 1, max_lag)
        computed = 2
    mean_var = acov[0] * n_draws / (n_draws - 1.0)
    var_plus = mean_var * (n_draws - 1.0) / n_draws
    if n_chains > 1:
        var_plus += np.var(chain_mean) * n_chains / (n_chains - 1.0)

    rho = np.zeros(n_draws)
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - acov[1]) / var_plus
    rho[1] = rho_odd
    rho1 = rho_odd
    # an AR(1)-like decay rho(1)^t stays above 0.01 for log(0.01) / log(rho(1)) lags: when that exceeds
    # max_lag, going lag by lag would only waste max_lag passes before the FFT fallback
    if computed < n_draws and max_lag < n_draws and _needs_many_lags(rho_odd, max_lag):
        return np.inf, rho1

    # Geyer's initial positive sequence
    t = 1
    while t < (n_draws - 3) and (rho_even + rho_odd) > 0.0:
        for lag in (t + 1, t + 2):
            if lag >= computed:
                if np.isnan(_lag(centred, acov, computed, lag, max_lag)):
                    return np.inf, rho1
                computed = lag + 1
        rho_even = 1.0 - (mean_var - acov[t + 1]) / var_plus
        rho_odd = 1.0 - (mean_var - acov[t + 2]) / var_plus
        if (rho_even + rho_odd) >= 0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2

    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    # Geyer's initial monotone sequence
    t = 1
    while t <= max_t - 2:
        if (rho[t + 1] + rho[t + 2]) > (rho[t - 1] + rho[t]):
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2

    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1.0 / np.log10(total))
    if np.isnan(rho).any():
        return np.nan, rho1
    return total / tau, rho1
