"""Metric (inverse mass matrix) estimation during warm-up: diagonal or dense, in Stan's slow windows.

In each slow window of `schedule.slow_windows` the positions of the chains are pooled into one (co)variance (the
chains are independent draws of the same law, so pooling multiplies the window's sample size by the number of
chains). At the end of the window the metric becomes Stan's regularised estimate

    A = n / (n + 5) S + 1e-3 * 5 / (n + 5) P,

with S the sample variance (diagonal) or covariance (dense) of the n pooled draws and P the metric the window's
draws were made under, and the accumulator restarts for the next window. The shrinkage keeps a short window
from producing a tiny or singular metric. Stan shrinks toward 1e-3 I, its starting metric; here P is the
identity only in the first window (Stan's rule there) and then the metric warm-up has found, so the estimate
does not depend on the parameters' units (nor, for a dense metric, on their rotation) once the first window has
passed. A fixed ridge instead sets the metric's narrow directions wherever the posterior's variances there are
far below 1e-3 * 5 / (n + 5) (small scales, or strongly correlated coordinates), and the step size then has to
fit the ridge, not the target (measured in docs/adaptation.md, `benchmarks/metric_shrinkage.py`).

Chains that disagree are left out of the pool (`agreeing_chains`). Pooling makes every chain's metric, and with
it the shared step size and trajectory length of ChEES-HMC, only as good as the worst chain's window: one chain
that an early trajectory threw far out, or that sits in a secondary mode, adds its distance from the others to
the variance (posteriordb's earnings regression: log sigma's variance 5.5 against 4e-4, the step 7e-5, and `hmc`
failed). Stan estimates each chain's metric from that chain alone, which excludes such offsets but is noisy and,
for a chain that moves slowly along a ridge, too narrow. Here a chain is left out of a window when its window
mean lies more than `OUTLIER_SDS` = 10 robust sds from the chains' median in some coordinate (robust sd: 1.4826 x
the median absolute deviation of the chains' means plus the median within-chain sd); it then moves under the
others' metric and comes back. Chains of one law rarely differ by 10 such sds, so on a well-mixed warm-up
nothing changes; when fewer than half the chains would remain there is no majority to trust and all are pooled.
The chains left out of each window are reported in the trace attributes (`metric_chains_left_out`).

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

from ebm_samplers.adaptation.schedule import slow_windows, window_at
from ebm_samplers.adaptation.welford import WelfordChains
from ebm_samplers.kernels._kinetic import DenseMetric, Metric, check_metric

#: Stan's regularisation: 5 pseudo-draws of 1e-3 times the metric in use (Stan's: of 1e-3 I).
PRIOR_DRAWS = 5.0
PRIOR_SCALE = 1e-3
#: The relative ridges tried, in turn, when a dense estimate has no Cholesky factor (see the module docstring).
RIDGES = tuple(10.0**k for k in range(-8, 1))
#: A chain whose window mean lies further than this many robust sds from the chains' median is left out.
OUTLIER_SDS = 10.0
#: 1 / Phi^-1(3/4): the median absolute deviation times this estimates a normal sd.
MAD_TO_SD = 1.4826


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


def median(values: Tensor) -> Tensor:
    """The median over dim 0, the mean of the two middle values for an even count (torch's is the lower one)."""
    ordered = values.sort(0).values
    return 0.5 * (ordered[(values.shape[0] - 1) // 2] + ordered[values.shape[0] // 2])


def robust_spread(means: Tensor, variances: Tensor) -> Tensor:
    """The chains' robust sd over dim 0: 1.4826 x the median absolute deviation of their window `means` plus the
    median of their own sds (`variances` are each chain's), so chains that agree, or all sit still, have a spread
    that a far chain exceeds many times over."""
    return MAD_TO_SD * median((means - median(means)).abs()) + median(variances.sqrt())


def agreeing_chains(means: Tensor, variances: Tensor) -> Tensor:
    """Which chains (n,) to pool: those whose window mean lies within `OUTLIER_SDS` robust sds (`robust_spread`)
    of the chains' median in every coordinate."""
    return ~((means - median(means)).abs() > OUTLIER_SDS * robust_spread(means, variances)).any(1)


class MetricAdaptation:
    """Estimates a `kind` ("diag" or "dense") metric over a warm-up of `warmup` steps (see the module docstring)."""

    def __init__(self, kind: str, warmup: int) -> None:
        self.kind = check_metric(kind, "warm-up")
        self.windows = slow_windows(warmup)
        self.ridge_retries = 0
        #: per slow window, the chains left out of its estimate (`agreeing_chains`)
        self.chains_left_out: list[list[int]] = []
        self._accumulator = WelfordChains(dense=kind == "dense")

    def update(self, iteration: int, position: Tensor, in_use: Metric | None = None) -> Metric | None:
        """Feed warm-up iteration `iteration`'s positions (n, *event), made under the metric `in_use` (the state's
        `inverse_mass`: None for the identity); at the end of a slow window return the new metric (diagonal
        (n, *event) Tensor or DenseMetric), else None."""
        window = window_at(self.windows, iteration)
        if window is None:
            return None
        self._accumulator.update(position)
        if iteration + 1 < window[1]:
            return None
        accumulator = self._accumulator
        keep = accumulator.block_mask(agreeing_chains(accumulator.means(), accumulator.variances()))
        if 2 * int(keep.sum()) < keep.shape[0]:
            keep = torch.ones_like(keep)  # no majority to trust
        self.chains_left_out.append((~keep).nonzero().flatten().tolist())
        n = accumulator.count * int(keep.sum())
        if self.kind == "diag":
            variance = accumulator.pooled(keep).reshape(position.shape[1:])
            metric = regularise(variance, n, _diagonal(in_use, position))
            metric = metric.to(position).expand_as(position).clone()
        else:
            metric, retries = dense_metric(accumulator.pooled(keep), n, position, _matrix(in_use, position))
            self.ridge_retries += retries
        self._accumulator.reset()
        return metric

    def state_dict(self) -> dict[str, object]:
        return {
            "accumulator": self._accumulator.state_dict(),
            "ridge_retries": self.ridge_retries,
            "chains_left_out": self.chains_left_out,
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        if "chains_left_out" not in saved:
            raise ValueError(
                "checkpoint was written before the warm-up metric left out disagreeing chains; delete it to start "
                "afresh"
            )
        self._accumulator.load_state_dict(saved["accumulator"])
        self.ridge_retries = int(saved["ridge_retries"])
        self.chains_left_out = [list(chains) for chains in saved["chains_left_out"]]
