"""The kernel contract shared by every sampler.

A kernel is a small object holding its parameters. `init(x, energy)` builds a `State` that caches the
position, its energy and gradient, so a Metropolis-adjusted kernel spends one energy+gradient
evaluation per step. `step(state, energy, generator)` returns the next state and an `Info` dict of
per-chain figures of shape `(n_chains,)` (at least `acceptance_rate` and `accepted`); every entry of
`Info` is recorded in the trace's stats, except keys starting with "_", which only the run loop reads
(e.g. MALA's `_proposal_energy`, to name the value when a proposal is not finite). Kernels never touch
global RNG state: all randomness comes from the `torch.Generator` passed in.
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
#: Info keys with this prefix are for the run loop (e.g. MALA's `_proposal_energy`) and are not recorded.
TRANSIENT_PREFIX = "_"


def recorded(info: Info) -> Info:
    """The entries of `info` that go into the trace's stats (all but the transient ones)."""
    return {name: value for name, value in info.items() if not name.startswith(TRANSIENT_PREFIX)}


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

    step_size: float

    def init(self, x: Tensor, energy) -> State:
        value, grad = energy_and_grad(energy, x)
        step_size = torch.full((x.shape[0],), float(self.step_size), dtype=x.dtype, device=x.device)
        return State(position=x.detach(), energy=value, grad=grad, step_size=step_size)

    @abstractmethod
    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        """One transition of every chain."""

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
        # fields the proposal shares with the current state (step size, metric) need no selection
        fields[field.name] = old if new is old else torch.where(per_chain(accepted, new), new, old)
    return type(current)(**fields)


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
