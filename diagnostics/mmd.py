"""Two-sample discrepancies: maximum mean discrepancy (MMD) with an RBF kernel, and the energy distance.

Convention (stated because the literature varies):

* kernel k(x, y) = exp(-||x - y||^2 / (2 h^2));
* bandwidth h by the median heuristic: the median Euclidean distance over distinct pairs of the
  pooled sample a + b (over an evenly spaced subset of 1,000 pooled points when there are more,
  so that the heuristic costs O(1) and needs no random numbers), unless `bandwidth` is given;
* MMD^2 is the unbiased U-statistic (Gretton et al. 2012, eq. 3):
  sum_{i != j} k(a_i, a_j) / (m (m - 1)) + sum_{i != j} k(b_i, b_j) / (n (n - 1)) - 2 sum_ij k(a_i, b_j) / (m n);
  it can be slightly negative when the laws agree;
* energy distance (Szekely & Rizzo 2013): 2 E||A - B|| - E||A - A'|| - E||B - B'|| with the same
  U-statistic means (0 iff the laws agree);
* p-value: permutation test of MMD^2 (labels of the pooled sample reshuffled with `generator`),
  (1 + #{permuted >= observed}) / (1 + n_permutations). Assumes independent draws within each sample.
* `bandwidth="multi"` (or a sequence of bandwidths): an aggregated test over several kernels, by default
  the median heuristic times `MULTI_SCALES` = (1/8, 1/4, 1/2, 1, 2). The statistic is the largest
  standardised MMD^2 over the bandwidths, max_h MMD^2_h / sd_h, where sd_h is the sd of MMD^2_h over the
  permutations; the same maximum over each permutation gives its null distribution, so the p-value stays
  a valid permutation p-value (one test, no multiple-testing correction needed). In the spirit of MMDAgg
  (Schrab et al. 2023), which aggregates over bandwidths with corrected levels instead.

When the median heuristic is weak: it picks a bandwidth of the order of the overall spread of the data.
Differences at a much smaller scale (where the modes of a multimodal law sit, their number or widths,
a ring against a mixture on the ring) barely change MMD^2 at that bandwidth, so the single-kernel test
can miss a wrong mode structure that is obvious by eye; use `bandwidth="multi"` for multimodal targets.

Kernel and distance matrices are never stored whole: a fused numba pass on the CPU, row blocks of
`block_size` on GPUs and for the permutations (memory O(block_size (m + n))).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from diagnostics.ksd import as_samples
from energies._threads import torch_threads_kept

#: Pooled points used by the median heuristic.
MEDIAN_HEURISTIC_POINTS = 1000
#: Multiples of the median heuristic used by `bandwidth="multi"`.
MULTI_SCALES = (0.125, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class TwoSampleResult:
    """`mmd2` (unbiased MMD^2), its `bandwidth`, `energy_distance`, and `p_value` when permuted.

    With several bandwidths, `mmd2_per_bandwidth` holds MMD^2 at each of `bandwidths`; `mmd2` and
    `bandwidth` are those of the largest standardised statistic (with permutations; else the median's)."""

    mmd2: float
    bandwidth: float
    energy_distance: float
    p_value: float | None = None
    bandwidths: tuple[float, ...] = ()
    mmd2_per_bandwidth: tuple[float, ...] = ()

    def __str__(self) -> str:
        p = "" if self.p_value is None else f", permutation p = {self.p_value:.3g}"
        kernel = f"RBF, h = {self.bandwidth:.3g}"
        if len(self.bandwidths) > 1:
            kernel += f"; the largest standardised of {len(self.bandwidths)} bandwidths"
            p = p.replace("permutation p", "aggregated permutation p")
        return f"MMD^2 {self.mmd2:.4g} ({kernel}), energy distance {self.energy_distance:.4g}{p}"


def mmd(
    a,
    b,
    *,
    bandwidth: float | str | Sequence[float] | None = None,
    n_permutations: int = 0,
    generator: torch.Generator | None = None,
    block_size: int = 2048,
) -> TwoSampleResult:
    """MMD^2, energy distance and an optional permutation p-value for samples `a` (m, *event), `b` (n, *event).

    `bandwidth`: None (median heuristic), a number, "multi" (the median heuristic times `MULTI_SCALES`) or a
    sequence of numbers: several bandwidths make one aggregated test (see the module docstring)."""
    x, y = as_samples(a, "mmd"), as_samples(b, "mmd")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"mmd: samples have different event shapes {tuple(x.shape[1:])} and {tuple(y.shape[1:])}")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"mmd: each sample needs at least 2 points; got {m} and {n}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 0:
        raise ValueError(f"mmd: n_permutations must be an integer >= 0; got {n_permutations!r}")
    pooled = torch.cat([x.reshape(m, -1), y.reshape(n, -1)]).double()
    bandwidths = _bandwidths(bandwidth, pooled)

    labels = torch.zeros(m + n, 1 + n_permutations, dtype=pooled.dtype, device=pooled.device)
    labels[:m, 0] = 1.0
    if n_permutations:
        device = pooled.device if generator is None else generator.device
        shuffled = torch.rand(n_permutations, m + n, generator=generator, device=device).argsort(dim=1)[:, :m]
        labels[:, 1:].T.scatter_(1, shuffled.to(pooled.device), 1.0)
    statistics = []
    for h in bandwidths:
        kernel_times_labels, kernel_rows, distance_times_a, distance_rows = _block_products(
            pooled, labels, labels[:, 0], h, block_size
        )
        statistics.append(_mmd2(labels, kernel_times_labels, kernel_rows, m, n))
    in_a = labels[:, 0]
    cross = float((in_a * (distance_rows - distance_times_a)).sum())  # sum_{i in a, j in b} ||a_i - b_j||
    within_a = float((in_a * distance_times_a).sum())
    within_b = float(((1 - in_a) * (distance_rows - distance_times_a)).sum())
    energy = 2.0 * cross / (m * n) - within_a / (m * (m - 1)) - within_b / (n * (n - 1))
    mmd2 = torch.stack(statistics)  # (bandwidth, labelling)
    chosen = MULTI_SCALES.index(1.0) if isinstance(bandwidth, str) else 0  # without permutations: the median's
    p_value = None
    if n_permutations:
        if len(bandwidths) == 1:
            observed, permuted = mmd2[0, 0], mmd2[0, 1:]
        else:  # one test: the largest standardised statistic, observed and under each permutation
            scale = mmd2[:, 1:].std(dim=1, keepdim=True).clamp_min(torch.finfo(mmd2.dtype).tiny)
            standardised = mmd2 / scale
            chosen = int(standardised[:, 0].argmax())
            observed, permuted = standardised[:, 0].max(), standardised[:, 1:].max(dim=0).values
        p_value = float((1 + (permuted >= observed).sum()) / (1 + n_permutations))
    return TwoSampleResult(
        mmd2=float(mmd2[chosen, 0]),
        bandwidth=bandwidths[chosen],
        energy_distance=energy,
        p_value=p_value,
        bandwidths=tuple(bandwidths) if len(bandwidths) > 1 else (),
        mmd2_per_bandwidth=tuple(float(v) for v in mmd2[:, 0]) if len(bandwidths) > 1 else (),
    )


def _bandwidths(bandwidth, pooled: Tensor) -> list[float]:
    """The kernel bandwidths `mmd` uses (see its `bandwidth`)."""
    if bandwidth is None:
        values = [median_heuristic(pooled)]
    elif isinstance(bandwidth, str):
        if bandwidth != "multi":
            raise ValueError(f"mmd: bandwidth must be None, a number, 'multi' or a list of numbers; got {bandwidth!r}")
        median = median_heuristic(pooled)
        values = [scale * median for scale in MULTI_SCALES]
    elif isinstance(bandwidth, Sequence):
        if len(bandwidth) == 0:
            raise ValueError("mmd: bandwidth is an empty list; give at least one number")
        values = [float(h) for h in bandwidth]
    else:
        values = [float(bandwidth)]
    for h in values:
        if not h > 0:
            raise ValueError(f"mmd: the bandwidth must be > 0; got {h} (are all points identical?)")
    return values


def median_heuristic(pooled: Tensor) -> float:
    """Median distance over distinct pairs of (an evenly spaced subset of) the pooled points."""
    if pooled.shape[0] > MEDIAN_HEURISTIC_POINTS:
        index = torch.linspace(0, pooled.shape[0] - 1, MEDIAN_HEURISTIC_POINTS).round().long()
        pooled = pooled[index.to(pooled.device)]
    distances = torch.cdist(pooled, pooled)
    upper = torch.triu_indices(len(pooled), len(pooled), offset=1, device=pooled.device)
    return float(distances[upper[0], upper[1]].median())


def _block_products(pooled, labels, in_a, h, block_size):
    """K L, K 1, D a, D 1 for the RBF kernel matrix K and the distance matrix D, never stored whole.

    On the CPU a fused numba pass gives the observed labelling's sums (torch would move several
    temporary blocks through memory: ~4x slower); the permuted labellings need K times a matrix,
    which torch blocks do with BLAS."""
    if pooled.device.type == "cpu":
        with torch_threads_kept():
            sums = _rbf_row_sums(np.ascontiguousarray(pooled.numpy()), np.ascontiguousarray(in_a.numpy()), float(h))
        kernel_a, kernel_rows, distance_times_a, distance_rows = (torch.from_numpy(v) for v in sums)
        kernel_times_labels = torch.empty_like(labels)
        kernel_times_labels[:, 0] = kernel_a
        if labels.shape[1] > 1:
            kernel_times_labels[:, 1:] = _kernel_times(pooled, labels[:, 1:], h, block_size)
        return kernel_times_labels, kernel_rows, distance_times_a, distance_rows
    return _block_products_torch(pooled, labels, in_a, h, block_size)


def _block_products_torch(pooled, labels, in_a, h, block_size):
    kernel_times_labels = torch.empty_like(labels)
    kernel_rows = torch.empty(len(pooled), dtype=pooled.dtype, device=pooled.device)
    distance_times_a = torch.empty_like(kernel_rows)
    distance_rows = torch.empty_like(kernel_rows)
    for start in range(0, len(pooled), block_size):
        stop = min(start + block_size, len(pooled))
        # exact differences: the matrix-product shortcut leaves ~1e-8 on the zero diagonal
        distance = torch.cdist(pooled[start:stop], pooled, compute_mode="donot_use_mm_for_euclid_dist")
        kernel = torch.exp(-(distance**2) / (2.0 * h * h))
        kernel_times_labels[start:stop] = kernel @ labels
        kernel_rows[start:stop] = kernel.sum(1)
        distance_times_a[start:stop] = distance @ in_a
        distance_rows[start:stop] = distance.sum(1)
    return kernel_times_labels, kernel_rows, distance_times_a, distance_rows


def _kernel_times(pooled, matrix, h, block_size):
    out = torch.empty_like(matrix)
    for start in range(0, len(pooled), block_size):
        stop = min(start + block_size, len(pooled))
        out[start:stop] = torch.exp(-(torch.cdist(pooled[start:stop], pooled) ** 2) / (2.0 * h * h)) @ matrix
    return out


@numba.njit(parallel=True, nogil=True, cache=True)
def _rbf_row_sums(points, in_a, h):
    """Per row i: sum_j k_ij a_j, sum_j k_ij, sum_j d_ij a_j, sum_j d_ij (k RBF, d Euclidean distance)."""
    n, d = points.shape
    kernel_a, kernel_all = np.empty(n), np.empty(n)
    distance_a, distance_all = np.empty(n), np.empty(n)
    scale = -0.5 / (h * h)
    for i in numba.prange(n):
        ka, kall, da, dall = 0.0, 0.0, 0.0, 0.0
        for j in range(n):
            squared = 0.0
            for k in range(d):
                diff = points[i, k] - points[j, k]
                squared += diff * diff
            kernel = np.exp(scale * squared)
            distance = np.sqrt(squared)
            ka += kernel * in_a[j]
            kall += kernel
            da += distance * in_a[j]
            dall += distance
        kernel_a[i], kernel_all[i], distance_a[i], distance_all[i] = ka, kall, da, dall
    return kernel_a, kernel_all, distance_a, distance_all


def _mmd2(labels: Tensor, kernel_times_labels: Tensor, kernel_rows: Tensor, m: int, n: int) -> Tensor:
    """Unbiased MMD^2 for every labelling column (1 = sample a); k(x, x) = 1 on the diagonal."""
    aka = (labels * kernel_times_labels).sum(0)
    akb = (labels * kernel_rows[:, None]).sum(0) - aka
    bkb = kernel_rows.sum() - 2.0 * akb - aka
    return (aka - m) / (m * (m - 1)) + (bkb - n) / (n * (n - 1)) - 2.0 * akb / (m * n)
