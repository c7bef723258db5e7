"""Metric (inverse mass matrix) estimation during warm-up: diagonal or dense, in Stan's slow windows.

In each slow window of `schedule.slow_windows` the positions of every chain are pooled into one running
(co)variance (the chains are independent draws of the same law, so pooling multiplies the window's sample
size by the number of chains). At the end of the window the metric becomes Stan's regularised estimate

    A = n / (n + 5) S + 1e-3 * 5 / (n + 5) I,

with S the sample variance (diagonal) or covariance (dense) of the n pooled draws, and the accumulator
restarts for the next window. The shrinkage toward 1e-3 I keeps a short window from producing a tiny or
singular metric.

Dense: S is accumulated in float64 and symmetrised; A must admit a Cholesky factor in the chains' dtype.
Where it does not (fewer pooled draws than dimensions with an almost flat direction, or rounding in
float32 on a very ill-conditioned target), the estimate is not clamped or replaced: a ridge
c * (trace(A) / d) I with c = 1e-8, 1e-7, ..., 1 is added, the smallest that makes A positive definite, and
the number of such retries is reported in the trace attributes (`metric_ridge_retries`). A non-finite S
(non-finite draws) raises.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.adaptation.schedule import slow_windows
from ebm_samplers.adaptation.welford import WelfordCovariance, WelfordVariance
from ebm_samplers.kernels._kinetic import DenseMetric, Metric, check_metric

#: Stan's regularisation: weight 5 pseudo-draws of a variance 1e-3.
PRIOR_DRAWS = 5.0
PRIOR_VARIANCE = 1e-3
#: The relative ridges tried, in turn, when a dense estimate has no Cholesky factor (see the module docstring).
RIDGES = tuple(10.0**k for k in range(-8, 1))


def regularise(variance: Tensor, n: int) -> Tensor:
    """Stan's n / (n + 5) S + 1e-3 * 5 / (n + 5) I for a variance (d,) or a covariance (d, d)."""
    prior = PRIOR_VARIANCE * PRIOR_DRAWS / (n + PRIOR_DRAWS)
    shrunk = n / (n + PRIOR_DRAWS) * variance
    if variance.ndim == 2:
        return shrunk + prior * torch.eye(variance.shape[0], dtype=variance.dtype, device=variance.device)
    return shrunk + prior


def dense_metric(covariance: Tensor, n: int, like: Tensor) -> tuple[DenseMetric, int]:
    """The regularised dense metric for chains shaped like `like` and the number of ridge retries it took."""
    if not bool(torch.isfinite(covariance).all()):
        raise FloatingPointError("the warm-up draws' covariance is not finite: cannot estimate a dense metric")
    matrix = regularise(0.5 * (covariance + covariance.T), n)
    try:
        return DenseMetric.from_matrix(matrix, like), 0
    except ValueError:
        pass
    identity = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    scale = float(torch.diagonal(matrix).mean())
    for retry, ridge in enumerate(RIDGES, start=1):
        try:
            return DenseMetric.from_matrix(matrix + ridge * scale * identity, like), retry
        except ValueError:
            continue
    raise ValueError(
        "the warm-up draws' covariance stays not positive definite even with a ridge of its mean variance added; "
        "use metric='diag'"
    )


class MetricAdaptation:
    """Estimates a `kind` ("diag" or "dense") metric over a warm-up of `warmup` steps (see the module docstring)."""

    def __init__(self, kind: str, warmup: int) -> None:
        self.kind = check_metric(kind, "warm-up")
        self.windows = slow_windows(warmup)
        self.ridge_retries = 0
        self._accumulator = WelfordVariance(per_chain=False) if kind == "diag" else WelfordCovariance()

    def update(self, iteration: int, position: Tensor) -> Metric | None:
        """Feed warm-up iteration `iteration`'s positions (n, *event); at the end of a slow window return the
        new metric (diagonal (n, *event) Tensor or DenseMetric), else None."""
        window = next((w for w in self.windows if w[0] <= iteration < w[1]), None)
        if window is None:
            return None
        self._accumulator.update(position)
        if iteration + 1 < window[1]:
            return None
        n = self._accumulator.count
        if self.kind == "diag":
            metric = self._accumulator.regularised_variance(position)
        else:
            metric, retries = dense_metric(self._accumulator.covariance(), n, position)
            self.ridge_retries += retries
        self._accumulator.reset()
        return metric

    def state_dict(self) -> dict[str, object]:
        return {"accumulator": self._accumulator.state_dict(), "ridge_retries": self.ridge_retries}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self._accumulator.load_state_dict(saved["accumulator"])
        self.ridge_retries = int(saved["ridge_retries"])
