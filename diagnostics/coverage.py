"""Mode coverage for mixture targets: the fraction of draws in each component against its weight.

Each draw is assigned to components by the mixture's responsibilities r_k(x) = w_k N(x; m_k, S_k) / p(x)
(`assign="responsibility"`, needs a mixture with `responsibilities(x)`, e.g. `energies.GaussianMixture`)
or to the nearest mean (`assign="nearest"`, needs only the means). The fraction f_k is the mean
assignment. Its standard error under the hypothesis f_k = w_k is sqrt(w_k (1 - w_k) / ESS_k)
(binomial; an upper bound for soft responsibilities), with ESS_k the effective sample size of the
assignment series over the split chains (ArviZ's ess(method="mean")), or the number of
draws for independent samples. A component with |f_k - w_k| > 3.29 SE is flagged (two-sided 0.001).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from diagnostics._ess import ess_of_series
from diagnostics._inputs import chain_draws_of

Z_999 = 3.2905


@dataclass
class ModeCoverage:
    """Per component: weight, fraction, se, z; `missing` / `excess` list the flagged components."""

    table: pd.DataFrame

    @property
    def missing(self) -> list[int]:
        return [int(k) for k in self.table.index[self.table["z"] < -Z_999]]

    @property
    def excess(self) -> list[int]:
        return [int(k) for k in self.table.index[self.table["z"] > Z_999]]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.excess

    def __str__(self) -> str:
        verdict = "every component holds its share of draws"
        if not self.ok:
            verdict = f"under-covered components {self.missing}, over-covered {self.excess} (|z| > {Z_999})"
        return self.table.to_string(float_format=lambda v: f"{v:.4g}") + "\n" + verdict


def mode_coverage(samples, mixture=None, *, means=None, weights=None, assign: str = "responsibility") -> ModeCoverage:
    """Fraction of draws per mixture component against the component weights.

    `samples`: a Trace or array/tensor (chain, draw, d) (ESS from the chains), or (n, d) independent
    samples. `mixture`: an object with `weights`, `means` and `responsibilities(x)` (GaussianMixture);
    or give `means` (k, d) and `weights` (k,) with `assign="nearest"`.
    """
    if assign not in ("responsibility", "nearest"):
        raise ValueError(f"mode_coverage: assign must be 'responsibility' or 'nearest'; got {assign!r}")
    if mixture is not None:
        if not (hasattr(mixture, "means") and hasattr(mixture, "weights")):
            raise TypeError(
                f"mode_coverage: the mixture must have means and weights (e.g. energies.GaussianMixture); "
                f"got {type(mixture).__name__}"
            )
        means = mixture.means if means is None else means
        weights = mixture.weights if weights is None else weights
    if means is None or weights is None:
        raise ValueError("mode_coverage: give a mixture, or both means (k, d) and weights (k,)")
    means = torch.as_tensor(means).detach().double()
    weights = torch.as_tensor(weights).detach().double()
    if means.ndim != 2 or weights.shape != means.shape[:1]:
        raise ValueError(
            f"mode_coverage: means must be (k, d) and weights (k,); got {tuple(means.shape)} and {tuple(weights.shape)}"
        )
    if assign == "responsibility" and not hasattr(mixture, "responsibilities"):
        raise ValueError("mode_coverage: assign='responsibility' needs a mixture with responsibilities(x)")

    draws = _as_chain_draws(samples)  # (chain, draw, d); independent samples are one row per "chain"
    n_chains, n_draws, d = draws.shape
    if d != means.shape[1]:
        raise ValueError(f"mode_coverage: samples have dimension {d}; the mixture has {means.shape[1]}")
    points = draws.reshape(-1, d)
    if assign == "responsibility":
        dtype = mixture.means.dtype if isinstance(mixture.means, torch.Tensor) else torch.float64
        with torch.no_grad():
            share = mixture.responsibilities(points.to(dtype)).double()
    else:
        share = torch.nn.functional.one_hot(torch.cdist(points, means).argmin(1), len(means)).double()
    share = share.reshape(n_chains, n_draws, -1).numpy()

    fraction = share.mean(axis=(0, 1))
    independent = n_draws == 1
    ess = np.array([share.size / share.shape[2] if independent else _ess(share[:, :, k]) for k in range(len(means))])
    w = weights.numpy()
    se = np.sqrt(w * (1 - w) / ess)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (fraction - w) / se, 0.0)
    table = pd.DataFrame(
        {"weight": w, "fraction": fraction, "ess": ess, "se": se, "z": z},
        index=pd.RangeIndex(len(w), name="component"),
    )
    return ModeCoverage(table)


def _as_chain_draws(samples) -> torch.Tensor:
    samples = chain_draws_of(samples)
    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(samples)
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (2, 3):
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"mode_coverage: expected samples (n, d) or (chain, draw, d); got {shape}")
    samples = samples.detach().double()
    return samples[:, None, :] if samples.ndim == 2 else samples


def _ess(series: np.ndarray) -> float:
    """ESS of the mean of one (chain, draw) series over split chains (ArviZ's ess(method='mean'))."""
    half = series.shape[1] // 2
    split = np.ascontiguousarray(np.concatenate([series[:, :half], series[:, series.shape[1] - half :]]))
    ess, _ = ess_of_series(split[None])
    return float(ess[0])
