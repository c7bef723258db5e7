"""The kernel contract shared by every sampler.

A kernel is a small object holding its parameters. `init(x, energy)` builds a `State` that caches the
position, its energy and gradient, so a Metropolis-adjusted kernel spends one energy+gradient
evaluation per step. `step(state, energy, generator)` returns the next state and an `Info` dict of
per-chain figures of shape `(n_chains,)` (at least `acceptance_rate` and `accepted`); every entry of
`Info` is recorded in the trace's stats, except keys starting with "_", which only the run loop and warm-up
read (e.g. HMC's trajectory end for ChEES). Kernels never touch global RNG state: all randomness comes from
the `torch.Generator` passed in.

Non-finite values. A proposal of a Metropolis-corrected kernel whose energy is +inf or NaN, or whose gradient
is not finite, is rejected and counted in the `diverging` stat: zero density is a legitimate value, not a
failure of the run. A chain *fails* only where its new state is not finite (an unadjusted kernel keeps every
proposal; an adjusted one accepts a proposal at energy -inf), and the run's `on_nonfinite` policy decides
what happens then. A kernel that knows which chains failed says so with a `StepFailure` (`with_failure`),
which spares the run loop a pass over the gradients; for a kernel that does not (a plain Info dict), the loop
checks the new state itself with `nonfinite`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ebm_samplers._validate import check_positive as check_positive  # kernels check their parameters with it
from energies import energy_and_grad

#: Per-chain figures from one step, each of shape (n_chains,).
Info = dict[str, Tensor]
#: Info keys with this prefix are for the run loop and warm-up (e.g. HMC's trajectory end) and are not recorded.
TRANSIENT_PREFIX = "_"
#: The Info key under which a kernel hands its `StepFailure` to the run loop (see `with_failure`).
_FAILURE = TRANSIENT_PREFIX + "failure"


def recorded(info: Info) -> Info:
    """The entries of `info` that go into the trace's stats (all but the transient ones)."""
    return {name: value for name, value in info.items() if not name.startswith(TRANSIENT_PREFIX)}


@dataclass
class StepFailure:
    """Which chains failed in one step, as the kernel knows it: per chain, shape (n,).

    `failed`: the chain's new state (or a point the step built it from, for a kernel that keeps every
    proposal) has a non-finite energy or gradient. `value`: the energy a failure report names per chain;
    None: the new state's. A rejected proposal is never a failure (see the module docstring).
    """

    failed: Tensor
    value: Tensor | None = None


def with_failure(info: Info, failure: StepFailure) -> Info:
    """`info` carrying the kernel's `failure` to the run loop (not recorded)."""
    info[_FAILURE] = failure  # type: ignore[assignment]
    return info


def step_failure(info: Info) -> StepFailure | None:
    """The `StepFailure` a kernel put in `info`, or None (the loop then checks the new state itself)."""
    return info.get(_FAILURE)  # type: ignore[return-value]


#: The random numbers one transition consumes, by name (see `DrawThenAdvance`).
Draws = dict[str, Tensor]


@dataclass
class State:
    """Per-chain sampler state; kernels that need more (momentum, ...) subclass it."""

    position: Tensor  # (n, *event)
    energy: Tensor  # (n,)
    grad: Tensor  # (n, *event): grad E at position
    step_size: Tensor  # (n,): per-chain step size, written by warm-up adaptation


class Kernel(ABC):
    """Base class for samplers; register subclasses with `ebm_samplers.register_sampler(name)`."""

    #: Registry name, set by `register_sampler`.
    name: ClassVar[str] = ""
    #: Acceptance rate that warm-up step-size adaptation aims for; None for kernels without MH.
    target_acceptance: ClassVar[float | None] = None
    #: Whether `sample(..., warmup=None)` warms this kernel up when it has something to adapt (see
    #: `adaptation.warmup.default_warmup`); False where the step size as given is the point (ULA).
    warmup_by_default: ClassVar[bool] = True

    step_size: float

    def init(self, x: Tensor, energy) -> State:
        value, grad = energy_and_grad(energy, x)
        step_size = torch.full((x.shape[0],), float(self.step_size), dtype=x.dtype, device=x.device)
        return State(position=x.detach(), energy=value, grad=grad, step_size=step_size)

    @abstractmethod
    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        """One transition of every chain."""

    def probe_acceptance(self, state: State, energy, generator: torch.Generator) -> Tensor:
        """The acceptance probability (n,) of one step from `state` at its step size, for the initial step-size
        search (`adaptation.step_size_search`); the state is left as it was. Default: one whole transition;
        HMC overrides it with one leapfrog step."""
        return self.step(state, energy, generator)[1]["acceptance_rate"]

    def params(self) -> dict[str, object]:
        """The kernel's parameters by name (recorded in trace attributes)."""
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {}


class DrawThenAdvance(Kernel):
    """A kernel whose transition is a deterministic function of the state and random numbers drawn first,

        draws = draw(state, generator),   (state', info) = advance(state, energy, draws),

    as BlackJAX hands its kernels a key; `step` is the composition. Keeping the draws out of `advance` lets
    `sample(..., compile_step=True)` compile a whole transition as one graph: torch.compile cannot trace a draw
    from a `torch.Generator`, and would split the step at every draw.

    `draw` may read the state's shapes, dtype and device and the fields that warm-up settles (step size,
    metric), never its position, energy or gradient: after warm-up, the compiled run draws the numbers of
    several transitions before running them (see `ebm_samplers._compiled_step`).
    """

    #: Gradient evaluations of one transition at most (HMC: its longest trajectory); sizes compiled blocks.
    gradients_per_transition: ClassVar[int] = 1

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        return self.advance(state, energy, self.draw(state, generator))

    @abstractmethod
    def draw(self, state: State, generator: torch.Generator) -> Draws:
        """Every random number of one transition of every chain."""

    @abstractmethod
    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        """The transition given its draws; no randomness of its own."""


def per_chain(values: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-chain `(n,)` tensor so it broadcasts against `like` of shape `(n, *event)`."""
    return values.reshape(values.shape[0], *([1] * (like.ndim - 1)))


def where_state(accepted: Tensor, proposal: State, current: State) -> State:
    """Per chain, the proposal's fields where `accepted`, else the current ones (same State type)."""
    fields = {}
    for field in dataclasses.fields(current):
        new, old = getattr(proposal, field.name), getattr(current, field.name)
        # fields the proposal shares with the current state (step size, metric) need no selection, nor do
        # fields that are not per-chain tensors (a dense metric, shared by every chain; None)
        shared = new is old or not isinstance(new, Tensor)
        fields[field.name] = old if shared else torch.where(per_chain(accepted, new), new, old)
    return type(current)(**fields)


def take_chains(state: State, sources: Tensor) -> State:
    """Chain c continues from chain `sources[c]`'s state: every per-chain tensor field indexed by `sources` (n,);
    fields that are not tensors (a dense metric, shared by every chain; None) stay as they are."""
    fields = {}
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        per_chain_tensor = isinstance(value, Tensor) and value.dim() > 0
        fields[field.name] = value[sources.to(value.device)] if per_chain_tensor else value
    return type(state)(**fields)


def squared_norm(x: Tensor) -> Tensor:
    """Per-sample squared Euclidean norm over all event axes, shape (n,)."""
    return x.reshape(x.shape[0], -1).square().sum(-1)


def nonfinite(energy: Tensor, grad: Tensor) -> Tensor:
    """Per chain, True where the energy or any gradient entry is NaN or infinite, shape (n,).

    Exact and cheap: 0 * v is (+-)0 for finite v and NaN for infinite or NaN v, and a sum is NaN as soon as
    one term is, so the sum below is 0 iff everything is finite (it cannot overflow, unlike a sum of the
    values). Two passes over the gradient instead of the five of `isfinite(...).all(-1)` (whose boolean
    reduction is slow on CPU); this runs every step.
    """
    return (energy * 0.0 + (grad.reshape(grad.shape[0], -1) * 0.0).sum(-1)) != 0.0


def not_finite(values: Tensor) -> Tensor:
    """Elementwise True where `values` is NaN or infinite (0 * v is 0 exactly for finite v)."""
    return (values * 0.0) != 0.0
