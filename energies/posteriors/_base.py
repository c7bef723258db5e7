"""What every panel posterior shares: parameter names, ground truth, its data as arrays, a fixed initial point.

A `Posterior` is an `Energy` over the unconstrained parameters u (scales enter as their logarithm, other
constrained parameters through a named bijection), with E(u) = -log p(data, x(u)) - log |dx/du| + const, so
exp(-E) is the posterior density of u. Its ground truth (`truth()`) is the mean and sd of every coordinate of u,
on that same scale, with the standard error of the reference mean (0 when the truth is analytic) and a sentence
saying where it comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from energies.base import Energy

DATA = Path(__file__).resolve().parent / "data"
#: Reference moments of the targets without analytic truth, written by `benchmarks/posteriors_reference.py`.
REFERENCE_FILE = DATA / "reference_truth.json"


@dataclass(frozen=True)
class Truth:
    """Ground-truth `mean` and `sd` per coordinate (numpy float64, shape (d,)), `mean_se` the standard error of
    the reference mean (zeros when analytic), and `source`, how it was obtained."""

    mean: np.ndarray
    sd: np.ndarray
    mean_se: np.ndarray
    source: str


class Posterior(Energy):
    """Base of the panel targets: a flat event `(dim,)`, `param_names`, `truth()`, `arrays()` and `initial_point`.

    Subclasses set `dim`, `param_names` and implement `forward`; `arrays()` returns the data a re-implementation
    of the same log density (the BlackJAX comparison) needs, as numpy arrays; `truth()` is analytic or read from
    the reference file.
    """

    dim: int
    param_names: tuple[str, ...]

    def _setup(self, param_names) -> None:
        self.param_names = tuple(param_names)
        self.dim = len(self.param_names)
        self.event_shape = torch.Size([self.dim])

    def truth(self) -> Truth:
        entry = _reference().get(self.name)
        if entry is None:
            raise NotImplementedError(
                f"{self.name} has no analytic truth and no entry in {REFERENCE_FILE.name}; "
                "run benchmarks/posteriors_reference.py to make one"
            )
        return Truth(
            np.asarray(entry["mean"], dtype=np.float64),
            np.asarray(entry["sd"], dtype=np.float64),
            np.asarray(entry["mean_se"], dtype=np.float64),
            entry["source"],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def initial_point(self, n_chains: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
        """`n_chains` fixed N(0, I) draws on the unconstrained scale (the panel's initial points)."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n_chains, self.dim, generator=generator, dtype=dtype)

    @property
    def name(self) -> str:
        return getattr(self, "panel_name", type(self).__name__)


@cache
def _reference() -> dict:
    if not REFERENCE_FILE.exists():
        return {}
    return json.loads(REFERENCE_FILE.read_text())["targets"]


@cache
def load_data(name: str) -> dict:
    """A bundled data file of `energies/posteriors/data/` (JSON)."""
    return json.loads((DATA / f"{name}.json").read_text())


def analytic(mean, covariance, source: str) -> Truth:
    mean = np.asarray(mean, dtype=np.float64)
    sd = np.sqrt(np.diag(np.asarray(covariance, dtype=np.float64)))
    return Truth(mean, sd, np.zeros_like(mean), source)


def log_half_cauchy_of_log(log_scale: Tensor, width: float) -> Tensor:
    """log p(s) + log s for s = exp(log_scale) ~ HalfCauchy(0, width), up to a constant (Jacobian of s = e^u)."""
    return -torch.log1p((torch.exp(log_scale) / width).square()) + log_scale


def normal_log_density(x: Tensor, loc, scale) -> Tensor:
    """log N(x; loc, scale^2) without the constant -log sqrt(2 pi) (elementwise)."""
    return -0.5 * ((x - loc) / scale).square() - torch.log(torch.as_tensor(scale, dtype=x.dtype))
