"""Mode jumps for persistent chains: a kernel's transition followed by an independence Metropolis-Hastings move
whose proposal is a Gaussian kernel density estimate of reference points (e.g. the training data).

    x_1 = K(x)                                             any registered kernel (e.g. MALA)
    x'  = r_j + b xi,   j ~ Uniform{1..N}, xi ~ N(0, I)    so x' ~ q(x') = 1/N sum_j N(x'; r_j, b^2 I)
    accept x' with probability min(1, exp(E(x_1) - E(x')) q(x_1) / q(x'))

The jump is exact Metropolis-Hastings for exp(-E) (an independence sampler; Tierney 1994), so the composition
keeps exp(-E) invariant whenever K does. What it adds in training: chains that a local kernel cannot move
between well-separated modes (the rings of the toy sets) reach each mode in proportion to the model's weight
there relative to q's, so persistent chains can tell the model that it puts too much or too little mass on a
mode, which restarts at data points or uniform restarts cannot. A jump costs one energy+gradient evaluation and
N distance evaluations per chain (log q at both points).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ebm_samplers.kernels._metropolis import acceptance_uniform, metropolis_decision
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, not_finite, where_state
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad


class ModeJump:
    """The jump alone: an independence Metropolis-Hastings move proposed from the Gaussian kernel density
    estimate of `reference` (N, *event) with bandwidth `bandwidth` (see the module docstring). Not a kernel
    (it needs a state with its energy, and moves nothing else): `DataJump` runs it after every transition of
    a kernel, `Persistent(jump=...)` once per call after the inner transitions."""

    def __init__(self, reference: Tensor, bandwidth: float = 0.1) -> None:
        if not isinstance(reference, Tensor) or reference.ndim < 2 or reference.shape[0] == 0:
            got = tuple(reference.shape) if isinstance(reference, Tensor) else type(reference).__name__
            raise ValueError(f"data_jump reference must be a tensor of points (N, *event) with N >= 1; got {got}")
        check_positive(bandwidth, "data_jump bandwidth")
        self.reference = reference.detach()
        self.bandwidth = float(bandwidth)

    def log_q(self, x: Tensor) -> Tensor:
        """log q(x) (n,) of the kernel density estimate, exact up to nothing (normalised)."""
        return kde_log_density(x, self.reference.to(x), self.bandwidth)

    def __call__(self, state: State, energy, generator: torch.Generator) -> tuple[State, Tensor]:
        """`(state, accepted)`: one jump per chain from `state` (which carries its energy)."""
        n = state.position.shape[0]
        index = torch.randint(0, self.reference.shape[0], (n,), generator=generator, device=self.reference.device)
        noise = torch.randn(
            state.position.shape, generator=generator, dtype=state.position.dtype, device=state.position.device
        )
        position = self.reference[index.to(self.reference.device)].to(state.position) + self.bandwidth * noise
        value, grad = energy_and_grad(energy, position)
        proposal = dataclasses.replace(state, position=position, energy=value, grad=grad)
        log_ratio = (state.energy - value) + (self.log_q(state.position) - self.log_q(position))
        accepted, _ = metropolis_decision(log_ratio, acceptance_uniform(state.energy, generator))
        accepted = accepted & ~not_finite(log_ratio)  # a proposal with a NaN/inf energy is rejected
        return where_state(accepted, proposal, state), accepted

    def params(self) -> dict[str, object]:
        return {"bandwidth": self.bandwidth, "reference_points": int(self.reference.shape[0])}


def kde_log_density(x: Tensor, reference: Tensor, bandwidth: float) -> Tensor:
    """log (1/N sum_j N(x; r_j, b^2 I)) (n,) for points `x` (n, *event) and `reference` (N, *event)."""
    flat = x.reshape(x.shape[0], -1)
    squared = torch.cdist(flat, reference.reshape(reference.shape[0], -1)).square()
    return _kde_log_density(squared, flat.shape[1], bandwidth)


def _kde_log_density(squared: Tensor, dimension: int, bandwidth: float) -> Tensor:
    """`kde_log_density` from the squared distances (n, N) between the points and the reference, `dimension`
    coordinates each."""
    b2 = bandwidth**2
    exponent = -squared / (2 * b2)
    top = exponent.amax(1, keepdim=True)
    # log-sum-exp with the terms below e^-80 of the largest raised to it: exp() of far smaller numbers ends in
    # subnormal floats, ~25 times slower on a CPU (a narrow kernel puts most reference points there), while
    # the change is below N e^-80 relative, far under float precision
    total = (exponent - top).clamp_(min=-80.0).exp_().sum(1).log_() + top[:, 0]
    return total - math.log(squared.shape[1]) - 0.5 * dimension * math.log(2 * math.pi * b2)


def held_out_bandwidth(reference: Tensor, held_out: Tensor, candidates: int = 25) -> float:
    """The bandwidth, among `candidates` log-spaced between 1e-3 and 1 times the reference's largest coordinate
    range, under which the kernel density estimate of `reference` gives `held_out` (other points of the same
    data) the highest mean log density: likelihood cross-validation, which follows the data's local scale (thin
    rings get a narrow kernel, broad blobs a wide one) where a rule of thumb from the global sd would blur modes."""
    flat = reference.reshape(reference.shape[0], -1).double()
    span = float((flat.amax(0) - flat.amin(0)).max())
    if not span > 0:
        raise ValueError("held_out_bandwidth needs reference points that are not all equal")
    grid = torch.logspace(-3, 0, candidates, dtype=torch.float64) * span
    squared = torch.cdist(held_out.reshape(held_out.shape[0], -1).double(), flat).square()  # once for every candidate
    scores = [float(_kde_log_density(squared, flat.shape[1], float(b)).mean()) for b in grid]
    return float(grid[max(range(candidates), key=scores.__getitem__)])


@register_sampler("data_jump")
class DataJump(Kernel):
    """One transition of `inner`, then an independence MH jump proposed from the Gaussian KDE of `reference`
    (N, *event) with bandwidth `bandwidth` (a `ModeJump`). `inner_params` build `inner` when it is given by name."""

    def __init__(self, reference: Tensor, bandwidth: float = 0.1, inner: str | Kernel = "mala", **inner_params):
        self.jump = ModeJump(reference, bandwidth)
        self.inner = resolve_kernel(inner, inner_params, owner="data_jump")

    @property
    def reference(self) -> Tensor:
        return self.jump.reference

    @property
    def bandwidth(self) -> float:
        return self.jump.bandwidth

    @property
    def step_size(self) -> float:
        return self.inner.step_size

    def init(self, x: Tensor, energy) -> State:
        return self.inner.init(x, energy)

    def log_q(self, x: Tensor) -> Tensor:
        """log q(x) (n,) of the kernel density estimate."""
        return self.jump.log_q(x)

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        state, info = self.inner.step(state, energy, generator)
        state, accepted = self.jump(state, energy, generator)
        return state, {**info, "jump_accepted": accepted}

    def params(self) -> dict[str, object]:
        return {
            "inner": self.inner.name or type(self.inner).__name__,
            "inner_params": self.inner.params(),
            **self.jump.params(),
        }
