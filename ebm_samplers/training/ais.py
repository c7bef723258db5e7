"""log Z of exp(-E) by annealed importance sampling (AIS; Neal 2001), and the test NLL it gives, in any dimension.

Path (geometric in densities) from a base q0 = N(mean, diag(scale^2)) to the model, for 0 = b_0 < ... < b_K = 1:

    f_b(x) = (1 - b) E0(x) + b E(x),      E0(x) = sum_j (x_j - mean_j)^2 / (2 scale_j^2),
    Z0 = prod_j scale_j sqrt(2 pi)

With `bounds` = (low, high) the model is exp(-E) restricted to the box [low, high]^d (as `grid_nll` restricts
a 2-D model to its window: a neural energy need not be integrable over all of R^d) and the base is the Gaussian
truncated to the box: Z0 = prod_j scale_j sqrt(2 pi) (Phi(beta_j) - Phi(alpha_j)), alpha_j, beta_j the box's
standardised edges; every f_b is +inf outside, so Metropolis-adjusted kernels reject moves that leave it.

Each of n chains (all at once): x_0 ~ q0, log w = 0, and for k = 1..K

    log w += f_{b_{k-1}}(x_{k-1}) - f_{b_k}(x_{k-1}) = (b_k - b_{k-1}) (E0(x_{k-1}) - E(x_{k-1}))
    x_k    = `n_steps` transitions of a registered kernel (default MALA) on f_{b_k}, which leave exp(-f_{b_k})
             invariant

so that E[w] = Z / Z0 (Neal 2001). Reported, with w_i = exp(log w_i):

    log Z ~ log Z0 + log mean_i w_i            (log-mean-exp, computed stably)
    SE    ~ sd(w) / (sqrt(n) mean(w))          (delta method: the relative standard error of mean(w))
    ESS   = (sum w)^2 / sum w^2                (Kish's effective number of weights)

log-mean-exp is biased low by about SE^2 / 2 (Jensen). When the ESS is a small fraction of n the weights are
heavy-tailed and the SE itself is unreliable (it tends to be too small): add temperatures or transitions.

Schedule: the sigmoidal one of Grosse, Maddison & Salakhutdinov (2013), b_t = (s(d (2t/K - 1)) - s(-d)) /
(s(d) - s(-d)) with the logistic s and d = 4, which takes small steps at both ends.

Step size (MALA/HMC): one step size for all chains, adapted between transitions by
log h += 0.5 (mean acceptance - target): the kernel applied at temperature k depends on the acceptances at
earlier temperatures of all n chains, hence on any one chain only through a 1/n share, a bias far below the
Monte Carlo error at the chain counts used here (n >= 100). `adapt_step_size=False` keeps `step_size` fixed.

Transitions use only the samplers' public API: a registered name or a Kernel object (`resolve_kernel`),
`kernel.init`, `kernel.step`; between temperatures the cached energy and gradient of the `State` are replaced
by those of the next f_b.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers._validate import check_count
from ebm_samplers.kernels import Kernel
from ebm_samplers.kernels._resolve import resolve_kernel
from energies import energy_and_grad

#: Below this fraction of the chains, the weights' ESS makes `ais_log_normaliser` warn that its estimate is unreliable.
UNRELIABLE_ESS_FRACTION = 0.1
#: Floor on the fitted base scale, as a fraction of the mean per-dimension sd (constant pixels get a proper base).
SCALE_FLOOR = 0.1


@dataclass(frozen=True)
class AISResult:
    """log Z of exp(-E) by AIS with its delta-method `standard_error` and the weights' `effective_sample_size`."""

    log_normaliser: float
    standard_error: float
    effective_sample_size: float
    n_chains: int
    n_temperatures: int
    acceptance_rate: float  # mean over chains, temperatures and transitions
    log_weights: Tensor  # (n_chains,) float64, log w_i (without log Z0)
    log_base_normaliser: float

    def __str__(self) -> str:
        return (
            f"AIS log Z {self.log_normaliser:.4f} +- {self.standard_error:.4f} (ESS {self.effective_sample_size:.0f} "
            f"of {self.n_chains}, {self.n_temperatures} temperatures, acceptance {self.acceptance_rate:.2f})"
        )


@dataclass(frozen=True)
class AISNLLResult:
    """Test NLL = mean E(test) + log Z in nats (per sample), with the AIS standard error of log Z."""

    nll: float
    standard_error: float
    mean_energy: float
    ais: AISResult


def sigmoid_schedule(n_temperatures: int, sharpness: float = 4.0) -> Tensor:
    """b_0 = 0 < ... < b_K = 1 (K = n_temperatures), the sigmoidal schedule of Grosse et al. (2013), float64."""
    t = torch.linspace(-sharpness, sharpness, n_temperatures + 1, dtype=torch.float64)
    s = torch.sigmoid(t)
    return (s - s[0]) / (s[-1] - s[0])


class _TruncatedGaussianBase:
    """N(mean, diag(scale^2)), truncated to [low, high]^d when bounds are given: energy, log Z0, exact draws."""

    def __init__(self, mean: Tensor, scale: Tensor, bounds: tuple[float, float] | None):
        self.mean, self.scale, self.bounds = mean, scale, bounds
        mean64, scale64 = mean.double(), scale.double()
        log_z = (torch.log(scale64) + 0.5 * math.log(2 * math.pi)).sum()
        if bounds is not None:
            alpha, beta = (bounds[0] - mean64) / scale64, (bounds[1] - mean64) / scale64
            self._cdf_low, self._cdf_high = torch.special.ndtr(alpha), torch.special.ndtr(beta)
            log_z = log_z + torch.log(self._cdf_high - self._cdf_low).sum()
        self.log_normaliser = float(log_z)

    def energy(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / self.scale).square().reshape(x.shape[0], -1).sum(1) / 2

    def grad(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.scale.square()

    def inside(self, x: Tensor) -> Tensor:
        if self.bounds is None:
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        flat = x.reshape(x.shape[0], -1)
        return ((flat >= self.bounds[0]) & (flat <= self.bounds[1])).all(1)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        shape = (n, *self.mean.shape)
        if self.bounds is None:
            noise = torch.randn(shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
            return self.mean + self.scale * noise
        # inverse CDF: u uniform on (Phi(alpha), Phi(beta)); the result is clipped back onto the box only to undo
        # the last-bit rounding of ndtri at an edge (those draws are on the edge up to 1 ulp)
        uniform = torch.rand(shape, generator=generator, dtype=torch.float64, device=self.mean.device)
        u = self._cdf_low + uniform * (self._cdf_high - self._cdf_low)
        x = self.mean.double() + self.scale.double() * torch.special.ndtri(u)
        return x.clamp(self.bounds[0], self.bounds[1]).to(self.mean.dtype)


class _Tempered:
    """x -> f_b(x) = (1 - b) E0(x) + b E(x), +inf outside the box: the energy a kernel sees at temperature b."""

    def __init__(self, energy, base: _TruncatedGaussianBase, beta: float):
        self.energy, self.base, self.beta = energy, base, beta

    def __call__(self, x: Tensor) -> Tensor:
        value = (1 - self.beta) * self.base.energy(x) + self.beta * self.energy(x)
        return torch.where(self.base.inside(x), value, torch.full_like(value, math.inf))


def fitted_base(data: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, scale) of the default base: the data's per-dimension mean and sd, the sd floored at `SCALE_FLOOR`
    times its average over dimensions (so a constant dimension, e.g. an always-black pixel, gets a proper base)."""
    mean, scale = data.mean(0), data.std(0)
    return mean, scale.clamp_min(SCALE_FLOOR * float(scale.mean()))


def ais_log_normaliser(
    energy,
    data: Tensor | None = None,
    *,
    mean: Tensor | float | None = None,
    scale: Tensor | float | None = None,
    bounds: tuple[float, float] | None = None,
    n_chains: int = 1000,
    n_temperatures: int = 1000,
    n_steps: int = 1,
    sampler: str | Kernel = "mala",
    step_size: float = 0.1,
    adapt_step_size: bool = True,
    target_acceptance: float | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """log of the integral of exp(-E) (over R^d, or over the box `bounds`) by AIS from a Gaussian base.

    Args:
        energy: callable (n, *event) -> (n,), e.g. a trained `fit(...).energy`.
        data: samples (n, *event) that fix the event shape, dtype and device and, by default, the base
            (`fitted_base`: per-dimension mean and sd); not needed when `mean` and `scale` are given.
        mean, scale: the base N(mean, diag(scale^2)): tensors of the event shape or numbers (then `data`
            must be given for the shape).
        bounds: (low, high): restrict the model and the base to [low, high]^d.
        n_chains: parallel AIS runs (importance weights).
        n_temperatures: K, the number of intermediate distributions (sigmoidal schedule).
        n_steps: transitions of the kernel per temperature.
        sampler: a registered sampler name (built with `step_size`) or a Kernel object; MALA by default.
        step_size, adapt_step_size, target_acceptance: the kernel's starting step and its population-level
            adaptation towards `target_acceptance` (default: the kernel's own target, e.g. 0.574 for MALA).
        generator: the only source of randomness (default: a CPU generator seeded 0).
    """
    for value, what, low in ((n_chains, "n_chains", 2), (n_temperatures, "n_temperatures", 1), (n_steps, "n_steps", 1)):
        check_count(value, f"ais: {what}", minimum=low)
    base = _TruncatedGaussianBase(*_base_parameters(data, mean, scale), _check_bounds(bounds))
    if data is not None and bounds is not None and not bool(base.inside(data).all()):
        raise ValueError(f"ais: some data lie outside bounds {bounds}; widen the box or drop bounds")
    if generator is None:
        generator = torch.Generator(device=base.mean.device).manual_seed(0)
    # `step_size` builds a named sampler; a kernel object brings its own
    kernel = resolve_kernel(sampler, {"step_size": step_size} if isinstance(sampler, str) else {})
    target = kernel.target_acceptance if target_acceptance is None else target_acceptance
    adapt = adapt_step_size and target is not None
    log_step = math.log(float(kernel.step_size))

    betas = sigmoid_schedule(n_temperatures).tolist()
    x = base.sample(n_chains, generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=x.device)
    state = None
    acceptance_total, transitions = 0.0, 0
    for k in range(1, n_temperatures + 1):
        beta, previous = betas[k], betas[k - 1]
        value, grad = energy_and_grad(energy, x)
        base_value = base.energy(x)
        log_w += (beta - previous) * (base_value - value).double()
        tempered = _Tempered(energy, base, beta)
        if state is None:
            state = kernel.init(x, tempered)
        else:  # the same points, now cached under f_{b_k} (the kernel's energy and gradient of this temperature)
            state = dataclasses.replace(
                state, energy=(1 - beta) * base_value + beta * value, grad=(1 - beta) * base.grad(x) + beta * grad
            )
        for _ in range(n_steps):
            if adapt:
                state = dataclasses.replace(state, step_size=torch.full_like(state.step_size, math.exp(log_step)))
            state, info = kernel.step(state, tempered, generator)
            acceptance = float(info["acceptance_rate"].mean())
            acceptance_total, transitions = acceptance_total + acceptance, transitions + 1
            if adapt:
                log_step += 0.5 * (acceptance - target)
        x = state.position.detach()
    if not bool(torch.isfinite(log_w).all()):
        raise FloatingPointError("ais: some importance weights are not finite (the energy overflowed on a chain)")
    return _summarise(log_w, base.log_normaliser, n_temperatures, acceptance_total / max(transitions, 1))


def ais_nll(energy, test: Tensor, **options) -> AISNLLResult:
    """Test NLL = mean E(test) + log Z (nats per sample), log Z by `ais_log_normaliser(energy, test, **options)`
    unless `data=` (e.g. the training set, for the base) is given in `options`. With `bounds`, test points
    outside the box are an error."""
    if not isinstance(test, Tensor) or test.ndim < 2 or test.shape[0] < 1:
        raise ValueError(f"ais_nll: test must be a tensor of shape (n, *event); got {getattr(test, 'shape', test)!r}")
    bounds = options.get("bounds")
    if bounds is not None:
        flat = test.reshape(test.shape[0], -1)
        outside = ~((flat >= bounds[0]) & (flat <= bounds[1])).all(1)
        if bool(outside.any()):
            raise ValueError(f"ais_nll: {int(outside.sum())} test point(s) lie outside bounds {tuple(bounds)}")
    data = options.pop("data", test)
    result = ais_log_normaliser(energy, data, **options)
    with torch.no_grad():
        mean_energy = float(torch.cat([energy(test[i : i + 4096]) for i in range(0, len(test), 4096)]).double().mean())
    return AISNLLResult(mean_energy + result.log_normaliser, result.standard_error, mean_energy, result)


def _summarise(log_w: Tensor, log_base: float, n_temperatures: int, acceptance: float) -> AISResult:
    n = log_w.shape[0]
    shift = float(log_w.max())
    w = torch.exp(log_w - shift)  # the largest weight is 1: no overflow, relative values exact
    mean_w = float(w.mean())
    log_z = log_base + shift + math.log(mean_w)
    standard_error = float(w.std(unbiased=True)) / (math.sqrt(n) * mean_w)
    ess = float(w.sum()) ** 2 / float(w.square().sum())
    if ess < UNRELIABLE_ESS_FRACTION * n:
        warnings.warn(
            f"AIS: the importance weights' effective sample size is {ess:.1f} of {n} chains, so log Z "
            f"({log_z:.4g}) and its standard error are unreliable (typically too low); add temperatures or "
            "transitions per temperature",
            RuntimeWarning,
            stacklevel=2,
        )
    return AISResult(log_z, standard_error, ess, n, n_temperatures, acceptance, log_w, log_base)


def _base_parameters(data, mean, scale) -> tuple[Tensor, Tensor]:
    if data is not None:
        if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] < 2 or not data.is_floating_point():
            raise ValueError(
                f"ais: data must be a floating tensor of shape (n >= 2, *event); got {getattr(data, 'shape', data)!r}"
            )
        if not bool(torch.isfinite(data).all()):
            raise ValueError("ais: data contain NaN or infinite values")
        fitted_mean, fitted_scale = fitted_base(data.detach())
        like = fitted_mean
    elif isinstance(mean, Tensor):
        like = mean
    elif isinstance(scale, Tensor):
        like = scale
    else:
        raise ValueError("ais: give data (n, *event), or mean and scale as tensors of the event shape")
    mean = fitted_mean if mean is None and data is not None else mean
    scale = fitted_scale if scale is None and data is not None else scale
    if mean is None or scale is None:
        raise ValueError("ais: without data, give both mean and scale of the base Gaussian")
    mean = torch.as_tensor(mean, dtype=like.dtype, device=like.device).expand(like.shape).clone()
    scale = torch.as_tensor(scale, dtype=like.dtype, device=like.device).expand(like.shape).clone()
    if not bool(torch.isfinite(mean).all()) or not bool((scale > 0).all() and torch.isfinite(scale).all()):
        raise ValueError("ais: the base mean must be finite and its scale finite and > 0")
    return mean, scale


def _check_bounds(bounds) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if len(bounds) != 2 or not float(bounds[0]) < float(bounds[1]):
        raise ValueError(f"ais: bounds must be (low, high) with low < high; got {bounds!r}")
    return float(bounds[0]), float(bounds[1])
