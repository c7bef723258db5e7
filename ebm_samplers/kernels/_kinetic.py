"""Momentum, mass matrix and kinetic energy shared by HMC, NUTS, underdamped Langevin and preconditioned Langevin.

With a mass matrix M, stored as its inverse A = M^{-1} (the metric):

    p ~ N(0, M),   K(p) = 1/2 p^T A p,   dx/dt = A p (the velocity, NUTS's p-sharp).

Warm-up sets A to an estimate of the target's covariance, which makes every direction move on the same scale
(the step size then only has to suit the whitened problem). Two representations, which every function here
accepts alike:

- diagonal: a Tensor (n, *event) of the diagonal of A, per chain and coordinate (warm-up pools it, so its rows
  agree); the cheap default path, one elementwise multiply wherever A appears.
- dense: a `DenseMetric`, one (d, d) matrix A on the flattened event (d = its number of entries), shared by
  every chain, with the lower Cholesky factor L of A = L L^T. Then p = z L^{-1} (rows; z ~ N(0, I)) has
  covariance L^{-T} L^{-1} = A^{-1} = M, and a Langevin noise sqrt(2h) z L^T has covariance 2h A.

The Langevin kernels (ULA, MALA) also accept None: the identity, at no cost at all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers.kernels.base import State

METRICS = ("diag", "dense")
#: With `metric=None` (the default of hmc, mala and ula), events of at most this many entries get a dense metric,
#: larger ones a diagonal one (the measurements behind it: docs/adaptation.md).
DENSE_MAX_DIM = 100


def check_metric(metric, what: str, *, default_allowed: bool = False) -> str | None:
    """`metric` if it is "diag" or "dense" (or None where `default_allowed`), else a one-line ValueError."""
    if (metric is None and default_allowed) or (isinstance(metric, str) and metric in METRICS):
        return metric
    default = " (or None: dense up to {DENSE_MAX_DIM} coordinates, diag above)" if default_allowed else ""
    raise ValueError(f"{what} metric must be 'diag' or 'dense'{default.format(DENSE_MAX_DIM=DENSE_MAX_DIM)}; "
                     f"got {metric!r}")  # fmt: skip


def resolve_metric(metric: str | None, like: Tensor, energy=None) -> str:
    """The metric a kernel uses: `metric` itself, or for None "dense" when the event has at most `DENSE_MAX_DIM`
    entries and "diag" otherwise. A `NumbaEnergy` gets "diag" (the numba loops take a diagonal metric only)."""
    if metric is not None:
        return metric
    numba_energy = sys.modules.get("energies.numba_energy")  # never imported here: only a loaded module's type
    if numba_energy is not None and isinstance(energy, numba_energy.NumbaEnergy):
        return "diag"
    return "dense" if like[0].numel() <= DENSE_MAX_DIM else "diag"


def metric_in_use(kernel, state) -> str:
    """The form ("diag" or "dense") in which warm-up estimates `kernel`'s metric: what its `init` resolved (kept
    as `kernel._metric_in_use`, since a state at the identity does not say), else its `metric`, else the form of
    the state's metric, else the rule by dimension."""
    resolved = getattr(kernel, "_metric_in_use", None)
    if resolved is not None:
        return resolved
    metric = getattr(kernel, "metric", None)
    if metric in METRICS:
        return metric
    if isinstance(getattr(state, "inverse_mass", None), DenseMetric):
        return "dense"
    return resolve_metric(None, state.position)


@dataclass(frozen=True, eq=False)
class DenseMetric:
    """A dense inverse mass A = M^{-1} (d, d) on the flattened event, shared by every chain of a batch.

    `cholesky` is the lower factor L with A = L L^T and `inverse_cholesky` is L^{-1}; `shape` is the batch
    shape (n, *event) of the chains it serves, so that momenta can be drawn from the metric alone. Build it
    with `DenseMetric.from_matrix`, which checks symmetry and positive definiteness.
    """

    inverse_mass: Tensor  # (d, d), symmetric positive definite
    cholesky: Tensor  # (d, d), lower triangular, A = L L^T
    inverse_cholesky: Tensor  # (d, d), L^{-1}
    shape: tuple[int, ...]  # (n, *event)

    @classmethod
    def from_matrix(cls, matrix: Tensor, like: Tensor) -> DenseMetric:
        """The metric with inverse mass `matrix` (d, d) for chains shaped like `like` (n, *event).

        The matrix is symmetrised ((A + A^T) / 2, which only removes rounding asymmetry); a matrix that is not
        positive definite raises ValueError (the estimator in `adaptation.metric` regularises before this).
        """
        d = like[0].numel()
        if matrix.shape != (d, d):
            raise ValueError(f"a dense metric for events of {d} entries must be ({d}, {d}); got {tuple(matrix.shape)}")
        matrix = matrix.to(like)
        matrix = 0.5 * (matrix + matrix.T)
        cholesky, status = torch.linalg.cholesky_ex(matrix)
        if int(status) != 0 or not bool(torch.isfinite(cholesky).all()):
            raise ValueError("a dense metric must be a finite symmetric positive definite matrix")
        identity = torch.eye(d, dtype=matrix.dtype, device=matrix.device)
        inverse_cholesky = torch.linalg.solve_triangular(cholesky, identity, upper=False)
        return cls(matrix, cholesky, inverse_cholesky, tuple(like.shape))

    @classmethod
    def identity(cls, like: Tensor) -> DenseMetric:
        d = like[0].numel()
        return cls.from_matrix(torch.eye(d, dtype=like.dtype, device=like.device), like)

    def diagonal(self) -> Tensor:
        """The diagonal of A, shape (d,)."""
        return torch.diagonal(self.inverse_mass)

    def tensors(self) -> dict[str, Tensor]:
        """The tensors that define it (for checkpoints); `from_tensors` rebuilds it exactly."""
        return {"inverse_mass": self.inverse_mass, "cholesky": self.cholesky, "inverse_cholesky": self.inverse_cholesky}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], shape) -> DenseMetric:
        return cls(tensors["inverse_mass"], tensors["cholesky"], tensors["inverse_cholesky"], tuple(shape))


#: A metric as kernels hold it: the diagonal (n, *event) or one dense matrix shared by the batch.
Metric = Tensor | DenseMetric


@dataclass
class KineticState(State):
    """A state with a metric: a diagonal inverse mass (n, *event) Tensor or a `DenseMetric` (HMC, NUTS);
    the Langevin kernels also allow None (the identity)."""

    inverse_mass: Tensor | DenseMetric | None


@dataclass
class MomentumState(KineticState):
    """A state that also carries its momentum between steps (underdamped Langevin), shape (n, *event)."""

    momentum: Tensor


def initial_inverse_mass(value, like: Tensor, what: str, metric: str = "diag") -> Metric:
    """The starting metric from a kernel's `inverse_mass` parameter.

    None gives the identity, as a diagonal of ones whatever `metric` says (the same matrix, at the diagonal's
    cost; warm-up then estimates the metric in the kernel's form). A number or a nested list of event shape
    gives the same diagonal to every chain. Entries must be finite and > 0. With `metric="dense"` the result is
    a `DenseMetric` with that diagonal (or, for a (d, d) matrix given as `value`, that matrix).
    """
    if value is None:
        return torch.ones_like(like)
    given = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    event_shape = like.shape[1:]
    d = like[0].numel()
    if metric == "dense" and given.shape == (d, d) and given.shape != event_shape:
        try:
            return DenseMetric.from_matrix(given, like)
        except ValueError as error:
            raise ValueError(f"{what} inverse_mass: {error}") from None
    if given.ndim != 0 and given.shape != event_shape:
        dense = f" or, with metric='dense', ({d}, {d})" if metric == "dense" else ""
        raise ValueError(
            f"{what} inverse_mass has shape {tuple(given.shape)}; expected a number or the event shape "
            f"{tuple(event_shape)}{dense}"
        )
    if not bool(torch.isfinite(given).all()) or bool((given <= 0).any()):
        raise ValueError(f"{what} inverse_mass entries must be finite and > 0")
    diagonal = given.expand_as(like).clone()
    if metric == "dense":
        return DenseMetric.from_matrix(torch.diag(diagonal[0].reshape(-1)), like)
    return diagonal


def _rows(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def sample_momentum(inverse_mass: Metric, generator: torch.Generator) -> Tensor:
    """p ~ N(0, M), shape (n, *event): z / sqrt(A) for a diagonal A, z L^{-1} (rows) for a dense one."""
    if isinstance(inverse_mass, Tensor):
        noise = torch.randn(
            inverse_mass.shape, generator=generator, dtype=inverse_mass.dtype, device=inverse_mass.device
        )
        return noise / torch.sqrt(inverse_mass)
    factor = inverse_mass.inverse_cholesky
    noise = torch.randn(inverse_mass.shape, generator=generator, dtype=factor.dtype, device=factor.device)
    return (_rows(noise) @ factor).reshape(noise.shape)


def velocity(momentum: Tensor, inverse_mass: Metric) -> Tensor:
    """dx/dt = M^{-1} p per chain, shape (n, *event) (NUTS's p-sharp in the no-U-turn criterion)."""
    if isinstance(inverse_mass, Tensor):
        return momentum * inverse_mass
    return (_rows(momentum) @ inverse_mass.inverse_mass).reshape(momentum.shape)  # A is symmetric: p A = (A p)^T


def kinetic_energy(momentum: Tensor, inverse_mass: Metric) -> Tensor:
    """K(p) = 1/2 p^T M^{-1} p per chain, shape (n,)."""
    if isinstance(inverse_mass, Tensor):
        return 0.5 * (momentum.square() * inverse_mass).reshape(momentum.shape[0], -1).sum(-1)
    # ||L^T p||^2 = p^T A p, a sum of squares: never negative, whatever the rounding
    return 0.5 * (_rows(momentum) @ inverse_mass.cholesky).square().sum(-1)


def precondition(values: Tensor, inverse_mass: Metric | None) -> Tensor:
    """A v per chain for v of shape (n, *event) (the identity for None): the preconditioned gradient."""
    if inverse_mass is None:
        return values
    return velocity(values, inverse_mass)


def colour_noise(noise: Tensor, inverse_mass: Metric | None) -> Tensor:
    """A^{1/2} z per chain (covariance A) for z ~ N(0, I) of shape (n, *event): z sqrt(A) diagonal, z L^T dense."""
    if inverse_mass is None:
        return noise
    if isinstance(inverse_mass, Tensor):
        return noise * torch.sqrt(inverse_mass)
    return (_rows(noise) @ inverse_mass.cholesky.T).reshape(noise.shape)


def whiten_momentum(momentum: Tensor, inverse_mass: Metric) -> Tensor:
    """z with p = M^{1/2} z, i.e. the inverse of `sample_momentum`'s map: p sqrt(A) diagonal, p L dense."""
    if isinstance(inverse_mass, Tensor):
        return momentum * torch.sqrt(inverse_mass)
    return (_rows(momentum) @ inverse_mass.cholesky).reshape(momentum.shape)


def momentum_from_whitened(whitened: Tensor, inverse_mass: Metric) -> Tensor:
    """p = M^{1/2} z: z / sqrt(A) diagonal, z L^{-1} dense (what `sample_momentum` does to its noise)."""
    if isinstance(inverse_mass, Tensor):
        return whitened / torch.sqrt(inverse_mass)
    return (_rows(whitened) @ inverse_mass.inverse_cholesky).reshape(whitened.shape)


def metric_diagonal(inverse_mass: Metric, like: Tensor) -> Tensor:
    """The diagonal of A as a Tensor shaped like `like` (n, *event), whatever the representation."""
    if isinstance(inverse_mass, Tensor):
        return inverse_mass
    return inverse_mass.diagonal().reshape(like.shape[1:]).expand_as(like)
