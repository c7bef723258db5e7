"""Quality of a trained energy: exact 2-D test NLL by grid quadrature, model samples, MMD and KSD to held-out data.

Normalisation by quadrature (midpoint rule on a square grid over [low, high]^2 with `resolution`^2 cells
of area h^2):

    log Z ~ logsumexp_j(-E(c_j)) + 2 log h,     NLL = mean_i E(x_i) + log Z

exact up to the discretisation error (checked by halving h: `grid_nll(..., check=True)` reports the
difference) and the model mass outside the window (ignored: the density is taken to be the model
restricted to the window; test points outside it are an error, not silently dropped).

MMD^2 is the unbiased estimate with a Gaussian kernel whose bandwidth is the median pairwise distance of
the pooled samples (Gretton et al. 2012). (diagnostics.mmd did not exist yet when this was written; this
private version only serves training evaluation.)

Kernel Stein discrepancy (`diagnostics.ksd`, IMQ kernel) needs only the model's score -grad E, not its
normaliser, so it works in any dimension:

* `data_ksd(energy, test)`: KSD of HELD-OUT DATA under the model's score: goodness of fit of the model to
  the data (0 in expectation iff the data law is exp(-E)/Z; its wild-bootstrap p-value tests exactly that);
* `sample_ksd(energy, samples)`: KSD of MODEL SAMPLES under the same score: whether the sampler reached the
  model (small when the samples follow exp(-E)/Z, whatever the data).

A model can fit its own samples (small sample KSD) and still miss the data (large data KSD), and the other way
round. Both tests assume independent points (held-out data; one draw per independent chain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

import diagnostics
from ebm_samplers.training.datasets import TOY_BOUNDS

DEFAULT_RESOLUTION = 400


def _grid(low: float, high: float, resolution: int, like: Tensor) -> tuple[Tensor, float]:
    spacing = (high - low) / resolution
    centres = torch.linspace(low + spacing / 2, high - spacing / 2, resolution, dtype=like.dtype, device=like.device)
    xs, ys = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), spacing


@torch.no_grad()
def _energies(energy, points: Tensor, chunk: int = 65_536) -> Tensor:
    return torch.cat([energy(points[i : i + chunk]).detach() for i in range(0, points.shape[0], chunk)])


def grid_log_normaliser(
    energy,
    bounds: tuple[float, float] = TOY_BOUNDS,
    resolution: int = DEFAULT_RESOLUTION,
    *,
    like: Tensor | None = None,
) -> float:
    """log of the integral of exp(-E) over the square [low, high]^2, midpoint rule with resolution^2 cells."""
    like = torch.zeros(1) if like is None else like
    points, spacing = _grid(*bounds, resolution, like)
    values = _energies(energy, points).double()
    return float(torch.logsumexp(-values, 0)) + 2 * math.log(spacing)


@dataclass
class NLLResult:
    nll: float  # mean -log p_model(x_test), nats
    log_normaliser: float
    bounds: tuple[float, float]
    resolution: int
    discretisation_error: float | None  # |NLL(h) - NLL(h/2)|


def grid_nll(
    energy,
    test: Tensor,
    bounds: tuple[float, float] = TOY_BOUNDS,
    resolution: int = DEFAULT_RESOLUTION,
    *,
    check: bool = True,
) -> NLLResult:
    """Exact (quadrature) test negative log-likelihood of a 2-D energy, in nats."""
    if test.ndim != 2 or test.shape[1] != 2:
        raise ValueError(f"grid_nll needs 2-D points of shape (n, 2); got shape {tuple(test.shape)}")
    low, high = bounds
    outside = ((test < low) | (test >= high)).any(1)
    if bool(outside.any()):
        raise ValueError(
            f"{int(outside.sum())} test point(s) lie outside the quadrature window [{low}, {high})^2; widen bounds"
        )
    mean_energy = float(_energies(energy, test).double().mean())
    log_z = grid_log_normaliser(energy, bounds, resolution, like=test)
    error = None
    if check:
        finer = grid_log_normaliser(energy, bounds, 2 * resolution, like=test)
        error = abs(finer - log_z)
    return NLLResult(mean_energy + log_z, log_z, (low, high), resolution, error)


@torch.no_grad()
def grid_samples(
    energy,
    n: int,
    generator: torch.Generator,
    bounds: tuple[float, float] = TOY_BOUNDS,
    resolution: int = DEFAULT_RESOLUTION,
) -> Tensor:
    """n exact draws from the grid-discretised model: a cell by its mass exp(-E(c_j)), then uniform in it."""
    points, spacing = _grid(*bounds, resolution, torch.zeros(1))
    values = _energies(energy, points).double()
    weights = torch.softmax(-values, 0)
    cells = torch.multinomial(weights.float(), n, replacement=True, generator=generator)
    jitter = (torch.rand(n, 2, generator=generator) - 0.5) * spacing
    return points[cells] + jitter


def mmd(x: Tensor, y: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 between samples x (n, ...) and y (m, ...): `diagnostics.mmd`'s RBF kernel with the
    median-heuristic width (median pairwise distance of the pooled sample), as a plain number."""
    return diagnostics.mmd(x, y, bandwidth=bandwidth).mmd2


def data_ksd(energy, test: Tensor, *, n_bootstrap: int = 0, generator: torch.Generator | None = None):
    """Goodness of fit: `diagnostics.ksd` of held-out data `test` under the score -grad E of `energy`.

    Its `p_value` (with `n_bootstrap` > 0) tests H0: the data follow exp(-E)/Z; a small one says the model is wrong.
    """
    return diagnostics.ksd(test, energy, n_bootstrap=n_bootstrap, generator=generator)


def sample_ksd(energy, samples: Tensor, *, n_bootstrap: int = 0, generator: torch.Generator | None = None):
    """Sampler check: `diagnostics.ksd` of model samples (independent chains' draws) under their own model's score."""
    return diagnostics.ksd(samples, energy, n_bootstrap=n_bootstrap, generator=generator)


def ksd_summary(result: diagnostics.KSDResult, digits: int) -> dict:
    """A KSD result as the metrics files record it: the statistic rounded to `digits`, its p-value, its points."""
    return {"ksd": round(result.ksd, digits), "p_value": result.p_value, "n": result.n}
