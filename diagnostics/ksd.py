"""Kernel Stein discrepancy (KSD) with the inverse multiquadric kernel: sample quality from the score alone.

With the score s(x) = grad log p(x) = -grad E(x) and k(x, y) = (c^2 + ||x - y||^2)^beta
(IMQ, c = 1, beta = -1/2; Gorham & Mackey 2017, who show it detects non-convergence), the Stein kernel is

    h(x, y) = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k)
            = s(x).s(y) u^b + 2b u^(b-1) (s(y) - s(x)).(x - y) - 2bd u^(b-1) - 4b(b-1) ||x - y||^2 u^(b-2),

u = c^2 + ||x - y||^2, b = beta, d = dimension. E_p h(X, Y) = 0 for independent X, Y ~ p, and
KSD^2 = E_q h(X, Y) > 0 for a sample law q != p. Estimators over n points:
V = sum_ij h_ij / n^2 (>= 0; `ksd` = sqrt(V)) and the unbiased U = sum_{i != j} h_ij / (n (n - 1)).
The n x n matrix is never stored: on the CPU a fused numba loop sums it (row blocks of `block_size`
when bootstrapping), on a GPU torch sums row blocks (memory O(block_size n), never n x n x d).

Test of H0: q = p by the wild bootstrap (Chwialkowski, Strathmann & Gretton 2016; Liu, Lee & Jordan
2016): n V against (1/n) sum_ij w_i w_j h_ij with Rademacher w. It assumes independent samples: thin
MCMC draws to roughly independent ones first, or the test rejects too often.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diagnostics._inputs import chain_draws_of
from diagnostics._stein_kernel import stein_block, stein_sum
from energies import Energy, energy_and_grad
from energies._threads import torch_threads_kept


@dataclass(frozen=True)
class KSDResult:
    """`ksd` = sqrt(V); `u_statistic` (unbiased KSD^2, may be < 0), `v_statistic`; when bootstrapped, `p_value`
    and `null_quantile`: the 95% quantile of the KSD under the bootstrap null, a reference figure (exact
    draws of the same size give a KSD below it 95% of the time)."""

    ksd: float
    u_statistic: float
    v_statistic: float
    n: int
    p_value: float | None = None
    null_quantile: float | None = None

    def __str__(self) -> str:
        p = "" if self.p_value is None else f", bootstrap p = {self.p_value:.3g}"
        if self.null_quantile is not None:
            p += f", 95% of the null below {self.null_quantile:.4g}"
        return f"KSD {self.ksd:.4g} (U {self.u_statistic:.3g}, V {self.v_statistic:.3g}, n = {self.n}{p})"


def ksd(
    samples,
    score_or_energy: Callable[[Tensor], Tensor],
    *,
    c: float = 1.0,
    beta: float = -0.5,
    n_bootstrap: int = 0,
    generator: torch.Generator | None = None,
    block_size: int = 1024,
) -> KSDResult:
    """KSD of `samples` (n, *event) (array or tensor; a Trace's chains are pooled) against a target.

    `score_or_energy` is an `energies.Energy` (its `score` is used), a score function returning
    grad log p with the shape of its input, or any energy callable returning shape (n,) (the score
    is -grad E by autograd). `n_bootstrap` > 0 adds a wild-bootstrap p-value drawn with `generator`.
    """
    if not c > 0:
        raise ValueError(f"ksd: c must be > 0; got {c}")
    if not -1.0 < beta < 0.0:
        raise ValueError(f"ksd: beta must lie in (-1, 0) for the IMQ kernel; got {beta}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ValueError(f"ksd: n_bootstrap must be an integer >= 0; got {n_bootstrap!r}")
    x = as_samples(samples, "ksd")
    score = _score(score_or_energy, x)
    x, score = x.reshape(x.shape[0], -1).double(), score.reshape(x.shape[0], -1).double()
    if not torch.isfinite(score).all():
        raise ValueError("ksd: the score is not finite at some samples; KSD needs a finite score everywhere")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"ksd: need at least 2 samples; got {n}")
    weights = None
    if n_bootstrap:
        device = x.device if generator is None else generator.device
        signs = torch.randint(0, 2, (n, n_bootstrap), generator=generator, device=device)
        weights = (2.0 * signs - 1.0).to(x)
    total, bootstrap, diagonal = _stein_sums(x, score, c, beta, block_size, weights)
    v = total / n**2
    u = (total - diagonal) / (n * (n - 1))
    p_value = null_quantile = None
    if weights is not None:
        null = bootstrap / n**2
        p_value = float((1 + (null >= v).sum()) / (1 + n_bootstrap))
        null_quantile = float(np.sqrt(max(float(torch.quantile(null.cpu(), 0.95)), 0.0)))
    return KSDResult(
        ksd=float(np.sqrt(max(v, 0.0))),
        u_statistic=float(u),
        v_statistic=float(v),
        n=n,
        p_value=p_value,
        null_quantile=null_quantile,
    )


def stein_kernel(x: Tensor, y: Tensor, score_x: Tensor, score_y: Tensor, c: float = 1.0, beta: float = -0.5) -> Tensor:
    """The IMQ Stein kernel matrix h(x_i, y_j), shape (len(x), len(y)), for (n, d) points and scores."""
    d = x.shape[1]
    sq_x, sq_y = (x * x).sum(1), (y * y).sum(1)
    squared = (sq_x[:, None] + sq_y[None, :] - 2.0 * x @ y.T).clamp_min_(0.0)
    u = squared + c * c
    k = u.rsqrt() if beta == -0.5 else torch.exp(beta * torch.log(u))
    k1 = k / u  # u^(beta - 1)
    # (s(y) - s(x)).(x - y) = s(y).x - s(y).y - s(x).x + s(x).y
    cross = x @ score_y.T - (score_y * y).sum(1)[None, :] - (score_x * x).sum(1)[:, None] + score_x @ y.T
    return (
        (score_x @ score_y.T) * k
        + 2.0 * beta * k1 * cross
        - 2.0 * beta * d * k1
        - 4.0 * beta * (beta - 1.0) * squared * (k1 / u)
    )


def _stein_sums(x, score, c, beta, block_size, weights):
    """(sum_ij h_ij, sum_i h_ii, per bootstrap column sum_ij w_i w_j h_ij); numba on the CPU, torch blocks on GPUs."""
    d = x.shape[1]
    diagonal = float(((score * score).sum(1) * c ** (2 * beta) - 2.0 * beta * d * c ** (2 * beta - 2)).sum())
    sums = _stein_sums_numba if x.device.type == "cpu" else _stein_sums_torch
    return (*sums(x, score, float(c), float(beta), block_size, weights), diagonal)


def _stein_sums_numba(x, score, c, beta, block_size, weights):
    points, scores = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(score.numpy())
    if weights is None:
        with torch_threads_kept():
            return float(stein_sum(points, scores, c, beta)), None
    block = np.empty((min(block_size, len(points)), len(points)))
    total, bootstrap = 0.0, torch.zeros(weights.shape[1], dtype=x.dtype)
    for start in range(0, len(points), block_size):
        stop = min(start + block_size, len(points))
        with torch_threads_kept():
            stein_block(points, scores, start, stop, c, beta, block)
        rows = torch.from_numpy(block[: stop - start])
        total += float(rows.sum())
        bootstrap += ((rows @ weights) * weights[start:stop]).sum(0)
    return total, bootstrap


def _stein_sums_torch(x, score, c, beta, block_size, weights):
    total = 0.0
    bootstrap = None if weights is None else torch.zeros(weights.shape[1], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], block_size):
        stop = min(start + block_size, x.shape[0])
        rows = stein_kernel(x[start:stop], x, score[start:stop], score, c, beta)
        total += float(rows.sum())
        if weights is not None:
            bootstrap += ((rows @ weights) * weights[start:stop]).sum(0)
    return total, bootstrap


def as_samples(samples, what: str) -> Tensor:
    """Samples (n, *event) as a tensor: arrays and tensors as given; a Trace's (chain, draw) pooled."""
    if hasattr(samples, "to_arviz") or hasattr(samples, "children"):  # a Trace or a DataTree: pool the chains
        draws = chain_draws_of(samples)
        samples = draws.reshape(-1, *draws.shape[2:])
    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(samples)
    if not isinstance(samples, Tensor):
        kind = type(samples).__name__
        raise TypeError(f"{what}: expected samples as an array or tensor of shape (n, *event); got {kind}")
    if samples.ndim < 2:
        scalar = (
            " (one number per sample: scalar events are not supported; give samples[:, None] and an energy of "
            "event shape (1,))"
            if samples.ndim == 1
            else ""
        )
        raise ValueError(f"{what}: expected samples of shape (n, *event); got shape {tuple(samples.shape)}{scalar}")
    if not samples.is_floating_point():
        samples = samples.double()
    if not torch.isfinite(samples).all():
        raise ValueError(f"{what}: samples contain NaN or infinite values")
    return samples.detach()


def _score(score_or_energy, x: Tensor) -> Tensor:
    event_shape = getattr(score_or_energy, "event_shape", None)
    if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"ksd: samples of shape {tuple(x.shape)} do not match the target's event shape {tuple(event_shape)}; "
            f"expected (n, {', '.join(map(str, event_shape))}) (pool chains first: pass the Trace, or "
            "draws.reshape(-1, *event_shape))"
        )
    if isinstance(score_or_energy, Energy):
        return score_or_energy.score(_in_dtype_of(score_or_energy, x))
    if not callable(score_or_energy):
        kind = type(score_or_energy).__name__
        raise TypeError(f"ksd: expected a score function, an energies.Energy or an energy callable; got {kind}")
    point = _in_dtype_of(score_or_energy, x)
    value = score_or_energy(point)
    if isinstance(value, Tensor) and value.shape == point.shape:
        return value.detach()
    if isinstance(value, Tensor) and value.shape == point.shape[:1]:
        return -energy_and_grad(score_or_energy, point)[1]
    shape = getattr(value, "shape", type(value).__name__)
    raise ValueError(
        f"ksd: the function returned shape {tuple(shape) if isinstance(shape, torch.Size) else shape} for samples "
        f"of shape {tuple(point.shape)}; expected a score (same shape as the samples) "
        f"or an energy (shape ({len(point)},))"
    )


def _in_dtype_of(function, x: Tensor) -> Tensor:
    """Cast the samples to the dtype of a module's parameters, so float32 networks accept float64 samples."""
    if isinstance(function, torch.nn.Module):
        for tensor in function.parameters():
            if tensor.is_floating_point():
                return x.to(dtype=tensor.dtype, device=tensor.device)
    return x
