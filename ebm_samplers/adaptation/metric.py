"""Metric (inverse mass matrix) estimation during warm-up: diagonal or dense, in Stan's slow windows.

In each slow window of `schedule.slow_windows` the positions of every chain are pooled into one running
(co)variance (the chains are independent draws of the same law, so pooling multiplies the window's sample
size by the number of chains). At the end of the window the metric becomes Stan's regularised estimate

    A = n / (n + 5) S + 1e-3 * 5 / (n + 5) P,

with S the sample variance (diagonal) or covariance (dense) of the n pooled draws and P the metric the window's
draws were made under, and the accumulator restarts for the next window. The shrinkage keeps a short window
from producing a tiny or singular metric. Stan shrinks toward 1e-3 I, its starting metric; here P is the
identity only in the first window (Stan's rule there) and then the metric warm-up has found, so the estimate
does not depend on the parameters' units (nor, for a dense metric, on their rotation) once the first window has
passed. A fixed ridge instead sets the metric's narrow directions wherever the posterior's variances there are
far below 1e-3 * 5 / (n + 5) (small scales, or strongly correlated coordinates), and the step size then has to
fit the ridge, not the target (measured in docs/adaptation.md, `benchmarks/metric_shrinkage.py`).

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

#: Stan's regularisation: 5 pseudo-draws of 1e-3 times the metric in use (Stan's: of 1e-3 I).
PRIOR_DRAWS = 5.0
PRIOR_SCALE = 1e-3
#: The relative ridges tried, in turn, when a dense estimate has no Cholesky factor (see the module docstring).
RIDGES = tuple(10.0**k for k in range(-8, 1))


def regularise(variance: Tensor, n: int, in_use: Tensor | float = 1.0) -> Tensor:
    """n / (n + 5) S + 1e-3 * 5 / (n + 5) P for a variance or covariance S of n draws, where P is `in_use`, the
    metric the draws were made under (broadcastable to S; 1.0 for the identity of a diagonal metric)."""
    return n / (n + PRIOR_DRAWS) * variance + PRIOR_SCALE * PRIOR_DRAWS / (n + PRIOR_DRAWS) * in_use


def dense_metric(covariance: Tensor, n: int, like: Tensor, in_use: Tensor | None = None) -> tuple[DenseMetric, int]:
    """The regularised dense metric for chains shaped like `like` (shrunk toward `in_use`, the (d, d) matrix
    the draws were made under, the identity when None) and the number of ridge retries it took."""
    if not bool(torch.isfinite(covariance).all()):
        raise FloatingPointError("the warm-up draws' covariance is not finite: cannot estimate a dense metric")
    if in_use is None:
        in_use = torch.eye(covariance.shape[0], dtype=covariance.dtype, device=covariance.device)
    matrix = regularise(0.5 * (covariance + covariance.T), n, in_use)
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


def _diagonal(in_use: Metric | None, like: Tensor) -> Tensor | float:
    """The metric in use as a diagonal broadcastable to `like` (n, *event); 1.0 for the identity."""
    if in_use is None:
        return 1.0
    if isinstance(in_use, DenseMetric):
        return in_use.diagonal().reshape(like.shape[1:])
    return in_use


def _matrix(in_use: Metric | None, like: Tensor) -> Tensor | None:
    """The metric in use as a float64 (d, d) matrix (None for the identity); a diagonal one of the first chain
    (warm-up's diagonal metrics are pooled, the same for every chain)."""
    if in_use is None:
        return None
    if isinstance(in_use, DenseMetric):
        return in_use.inverse_mass.to(torch.float64)
    return torch.diag(torch.as_tensor(in_use, dtype=torch.float64).expand_as(like)[0].reshape(-1))


class MetricAdaptation:
    """Estimates a `kind` ("diag" or "dense") metric over a warm-up of `warmup` steps (see the module docstring)."""

    def __init__(self, kind: str, warmup: int) -> None:
        self.kind = check_metric(kind, "warm-up")
        self.windows = slow_windows(warmup)
        self.ridge_retries = 0
        self._accumulator = WelfordVariance(per_chain=False) if kind == "diag" else WelfordCovariance()

    def update(self, iteration: int, position: Tensor, in_use: Metric | None = None) -> Metric | None:
        """Feed warm-up iteration `iteration`'s positions (n, *event), made under the metric `in_use` (the state's
        `inverse_mass`: None for the identity); at the end of a slow window return the new metric (diagonal
        (n, *event) Tensor or DenseMetric), else None."""
        window = next((w for w in self.windows if w[0] <= iteration < w[1]), None)
        if window is None:
            return None
        self._accumulator.update(position)
        if iteration + 1 < window[1]:
            return None
        n = self._accumulator.count
        if self.kind == "diag":
            metric = regularise(self._accumulator.variance(), n, _diagonal(in_use, position))
            metric = metric.to(position).expand_as(position).clone()
        else:
            metric, retries = dense_metric(self._accumulator.covariance(), n, position, _matrix(in_use, position))
            self.ridge_retries += retries
        self._accumulator.reset()
        return metric

    def state_dict(self) -> dict[str, object]:
        return {"accumulator": self._accumulator.state_dict(), "ridge_retries": self.ridge_retries}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self._accumulator.load_state_dict(saved["accumulator"])
        self.ridge_retries = int(saved["ridge_retries"])
