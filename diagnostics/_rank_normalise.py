"""Rank normalisation for split R-hat and bulk ESS, with one sort per coordinate (Vehtari et al. 2021).

Rank-normalised values are z = Phi^{-1}((r - 3/8) / (N + 1/4)) with r the pooled average rank (ties
share the mean of their ranks; Blom 1958). R-hat needs them twice: for the draws (bulk) and for the
folded draws |x - median(x)| (tails). Sorting dominates the cost, so each coordinate is sorted once:
the folded values are |s_i - median| over the sorted draws s, which form two runs that are already
sorted (below the median, read downwards; above it, read upwards), so their order comes from an O(N)
merge instead of a second sort. The kernel returns what the callers need and nothing more: z laid out
as split chains (for bulk ESS) and per-split-chain sums of z and z^2 for bulk and folded R-hat.

Split chains: chain c of D (even) draws gives split chain c (draws [0, D/2)) and split chain C + c
(draws [D/2, D)), the order ArviZ uses. Ranks do not depend on that order, so the draws are sorted in
their original (chain, draw) layout.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.special import ndtri


def normal_scores_table(n_total: int) -> np.ndarray:
    """Phi^{-1}((r - 3/8) / (N + 1/4)) for the average ranks r = 1, 1.5, ..., N (entry q is r = q / 2 + 1)."""
    ranks = np.arange(2 * n_total - 1) / 2.0 + 1.0
    return ndtri((ranks - 0.375) / (n_total + 0.25))


@numba.njit(nogil=True, cache=True)
def rank_normalise_rows(draws, order, table, z_out, bulk_sums, fold_sums, sorted_out):
    """For each coordinate of `draws` (rows x C chains x D draws, D even) with `order` = argsort of the
    row's C D values: z into `z_out` (rows x 2C x D/2), per-split-chain (sum z, sum z^2) of the bulk and
    folded z into `bulk_sums` / `fold_sums` (rows x 2C x 2), and the sorted values into `sorted_out`."""
    n_rows, n_chains, n_draws = draws.shape
    half = n_draws // 2
    n_total = n_chains * n_draws
    fold_values = np.empty(n_total)
    fold_owner = np.empty(n_total, dtype=np.int64)
    for row in range(n_rows):
        values = draws[row].ravel()
        index = order[row]
        ordered = sorted_out[row]
        for i in range(n_total):
            ordered[i] = values[index[i]]
        # bulk: walk groups of tied values; each group gets the mean of its ranks
        start = 0
        while start < n_total:
            stop = start
            while stop + 1 < n_total and ordered[stop + 1] == ordered[start]:
                stop += 1
            score = table[start + stop]
            for i in range(start, stop + 1):
                chain, draw = divmod(index[i], n_draws)
                if draw >= half:
                    chain += n_chains
                    draw -= half
                z_out[row, chain, draw] = score
                bulk_sums[row, chain, 0] += score
                bulk_sums[row, chain, 1] += score * score
            start = stop + 1
        # folded: merge the two sorted runs outwards from the median
        middle = n_total // 2
        median = ordered[middle] if n_total % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
        above = 0
        while above < n_total and ordered[above] < median:
            above += 1
        below = above - 1
        for k in range(n_total):
            if below >= 0 and (above >= n_total or median - ordered[below] <= ordered[above] - median):
                fold_values[k] = median - ordered[below]
                fold_owner[k] = index[below]
                below -= 1
            else:
                fold_values[k] = ordered[above] - median
                fold_owner[k] = index[above]
                above += 1
        start = 0
        while start < n_total:
            stop = start
            while stop + 1 < n_total and fold_values[stop + 1] == fold_values[start]:
                stop += 1
            score = table[start + stop]
            for i in range(start, stop + 1):
                chain, draw = divmod(fold_owner[i], n_draws)
                if draw >= half:
                    chain += n_chains
                fold_sums[row, chain, 0] += score
                fold_sums[row, chain, 1] += score * score
            start = stop + 1
