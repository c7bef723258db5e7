"""Hamiltonian Monte Carlo (HMC; Duane et al. 1987, Neal 2011) with a diagonal or dense mass matrix.

Each transition draws a momentum p ~ N(0, M), runs L leapfrog steps of size h on
H(x, p) = E(x) + 1/2 p^T M^{-1} p, and accepts the end point (x', p') with probability

    min(1, exp(H(x, p) - H(x', p'))).

Leapfrog is volume preserving and reversible (with the momentum flip, which H ignores), so this is
exact Metropolis-Hastings. By default (`n_leapfrog=None`) the integration time T is adapted in warm-up by
ChEES (`adaptation.chees`) and transition k runs L = ceil(2 u_k T / h) steps, u_k the k-th Halton point,
shared by all chains (any jitter independent of the state keeps the chain exact). Otherwise L is fixed, or
drawn per chain and transition uniformly from [L_min, L_max]: with a fixed L, near-Gaussian targets have
resonant step sizes where the trajectory returns close to its start, so acceptance is not monotone in h and
dual averaging can settle far from its target.
A transition whose energy error H(x', p') - H(x, p) exceeds `divergence_threshold` (or is NaN) is
flagged `diverging`: the integrator left the region where it is stable, a sign of a step too large for
the local curvature (Betancourt 2017). As in Stan, a trajectory whose energy overflows to infinity or
NaN, or that reaches a point of energy +inf or NaN or of non-finite gradient, is a divergence (rejected, with
acceptance probability 0, and flagged), not a failure of the run: warm-up's exploring step sizes produce such
trajectories routinely, and a +inf energy outside a support is zero density. (A non-finite gradient anywhere
on the trajectory makes the end momentum, hence H, NaN or infinite.) Only an end point at energy -inf is
accepted into a failing state, for the run's `on_nonfinite`. The state caches grad E, so L leapfrog steps
cost L gradients.

Recorded per draw: `acceptance_rate`, `accepted`, `diverging`, `n_leapfrog`, `energy_error`,
`hamiltonian` = H of the kept point (exported to ArviZ as `energy`, Stan's `energy__`, what BFMI and the
energy plot read) and, as for every kernel, `potential_energy` = E(x); with ChEES also `trajectory_length`
(the time integrated, L h). The target acceptance for warm-up is 0.8 on the mean over chains with a given
`n_leapfrog`, 0.8 on the harmonic mean with ChEES.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers.kernels._integrators import leapfrog
from ebm_samplers.kernels._kinetic import (
    KineticState,
    check_metric,
    initial_inverse_mass,
    kinetic_energy,
    resolve_metric,
    sample_momentum,
    velocity,
)
from ebm_samplers.kernels._metropolis import acceptance_uniform, metropolis_decision
from ebm_samplers.kernels.base import (
    Draws,
    DrawThenAdvance,
    Info,
    State,
    StepFailure,
    check_positive,
    where_state,
    with_failure,
)
from ebm_samplers.registry import register_sampler

#: Leapfrog steps of one transition at most when the trajectory length is adapted (ChEES), as TFP's cap.
MAX_LEAPFROG = 1000
#: Bits of the Halton (base-2 van der Corput) jitter sequence: 2^20 transitions before it repeats.
_HALTON_BITS = 20


@dataclass
class TrajectoryState(KineticState):
    """HMC's state when the trajectory length is adapted (`n_leapfrog=None`), per chain, shape (n,): the
    integration time T (warm-up's ChEES adaptation writes it) and the transition counter that indexes the
    Halton jitter (the same in every chain, so all chains run one trajectory length per transition)."""

    trajectory_length: Tensor
    transition: Tensor


def halton(index: Tensor) -> Tensor:
    """The base-2 Halton (van der Corput) point of `index + 1` in (0, 1), elementwise: bit b of the index
    becomes the binary digit 2^-(b + 1). Quasi-random, so T is jittered evenly over few transitions."""
    bits = torch.arange(_HALTON_BITS, device=index.device)
    digits = ((index + 1).unsqueeze(-1) >> bits) & 1
    return (digits.to(torch.float64) * 0.5 ** (bits + 1).to(torch.float64)).sum(-1)


@register_sampler("hmc")
@dataclass
class HMC(DrawThenAdvance):
    """HMC with step size `step_size` and a trajectory of `n_leapfrog` steps or of adapted length.

    `n_leapfrog`: an int, or (min, max) for uniform jitter per chain and transition; None (the default): the
    integration time T is adapted in warm-up by ChEES (`adaptation.chees`; Hoffman, Radul & Sountsov 2021),
    starting from `trajectory_length` (None: the step size after the initial search; without warm-up, 10 step
    sizes), and each transition runs
    ceil(2 u_k T / step_size) leapfrog steps (at most `MAX_LEAPFROG`) with u_k the k-th Halton point, shared by
    all chains; warm-up then aims the step size at the chains' harmonic-mean acceptance
    (`chees.TARGET_ACCEPTANCE`, 0.8) instead of their mean.
    `chees_learning_rate` is Adam's learning rate on log T (None: the paper's 0.025). Without warm-up, T stays
    where it starts.

    `metric` is "diag" (a diagonal mass matrix) or "dense" (one matrix over the flattened event, shared by
    every chain); None, the default, is dense up to `_kinetic.DENSE_MAX_DIM` coordinates, diag above.
    `inverse_mass` is the starting metric (a number or a list of event shape; with "dense" also a (d, d)
    matrix; None: identity); warm-up re-estimates it unless `sample(..., adapt_mass_matrix=False)`.
    """

    target_acceptance = 0.8
    step_size: float = 0.1
    n_leapfrog: int | tuple[int, int] | None = None
    divergence_threshold: float = 1000.0
    inverse_mass: float | list | None = None
    trajectory_length: float | None = None
    chees_learning_rate: float | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "hmc step_size")
        check_metric(self.metric, "hmc", default_allowed=True)
        check_positive(self.divergence_threshold, "hmc divergence_threshold")
        chees_options = [
            name for name in ("trajectory_length", "chees_learning_rate") if getattr(self, name) is not None
        ]
        for name in chees_options:
            check_positive(getattr(self, name), f"hmc {name}")
        if self.n_leapfrog is None:
            self._leapfrog_range = None
            return
        if chees_options:
            raise ValueError(
                f"hmc n_leapfrog={self.n_leapfrog!r} fixes the trajectory, but {' and '.join(chees_options)} "
                "configure its adaptation (ChEES, n_leapfrog=None): give one or the other"
            )
        bounds = self.n_leapfrog if isinstance(self.n_leapfrog, (tuple, list)) else (self.n_leapfrog, self.n_leapfrog)
        if len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            raise ValueError(
                f"hmc n_leapfrog must be an int, a (min, max) pair of ints or None (adapted); got {self.n_leapfrog!r}"
            )
        if not 1 <= bounds[0] <= bounds[1]:
            raise ValueError(f"hmc n_leapfrog needs 1 <= min <= max; got {self.n_leapfrog!r}")
        self._leapfrog_range = (int(bounds[0]), int(bounds[1]))

    @property
    def chees(self) -> bool:
        """Whether the trajectory length is adapted (ChEES) rather than given as `n_leapfrog`."""
        return self._leapfrog_range is None

    @property
    def gradients_per_transition(self) -> int:
        return MAX_LEAPFROG if self.chees else self._leapfrog_range[1]

    def init(self, x, energy) -> KineticState:
        state = super().init(x, energy)
        # the form warm-up estimates (see `_kinetic.metric_in_use`: a state at the identity does not say)
        self._metric_in_use = resolve_metric(self.metric, state.position, energy)
        inverse_mass = initial_inverse_mass(self.inverse_mass, state.position, "hmc", self._metric_in_use)
        state = KineticState(**vars(state), inverse_mass=inverse_mass)
        if not self.chees:
            return state
        length = self.trajectory_length if self.trajectory_length is not None else 10.0 * self.step_size
        trajectory_length = torch.full_like(state.step_size, length)
        transition = torch.zeros(state.step_size.shape, dtype=torch.long, device=state.step_size.device)
        return TrajectoryState(**vars(state), trajectory_length=trajectory_length, transition=transition)

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        expected = TrajectoryState if self.chees else KineticState
        if not isinstance(state, expected):
            raise TypeError(f"hmc needs the state from HMC.init (a {expected.__name__}); got {type(state).__name__}")
        n = state.position.shape[0]
        if self.chees:
            jitter = (2.0 * halton(state.transition)).to(state.step_size)  # 2 u_k: mean 1
            n_leapfrog = torch.ceil(jitter * state.trajectory_length / state.step_size).clamp_(1, MAX_LEAPFROG).long()
        else:
            low, high = self._leapfrog_range
            n_leapfrog = torch.randint(low, high + 1, (n,), generator=generator, device=state.position.device)
        momentum = sample_momentum(state.inverse_mass, generator)
        draws = {"n_leapfrog": n_leapfrog, "momentum": momentum, "uniform": acceptance_uniform(state.energy, generator)}
        return draws | ({"jitter": jitter} if self.chees else {})

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        if self.chees:
            # every chain shares u_k, T and (unless adapted per chain) the step size: usually one length, no
            # per-chain selection; the loop's bound is a host number (one synchronisation per transition)
            low, high = (int(v) for v in torch.aminmax(draws["n_leapfrog"]))
        else:
            low, high = self._leapfrog_range
        n_leapfrog = None if low == high else draws["n_leapfrog"]  # a fixed length needs no per-chain selection
        new_state, info = self._trajectory(state, energy, draws["momentum"], n_leapfrog, high, draws["uniform"])
        info["n_leapfrog"] = draws["n_leapfrog"]
        if self.chees:
            info["trajectory_length"] = draws["n_leapfrog"] * state.step_size  # the time integrated, L h
            info["_time"] = draws["jitter"] * state.trajectory_length  # the jittered time 2 u T it was drawn from
            new_state = dataclasses.replace(new_state, transition=state.transition + 1)
        return new_state, info

    def probe_acceptance(self, state: State, energy, generator: torch.Generator) -> torch.Tensor:
        """One leapfrog step with a fresh momentum (Hoffman & Gelman 2014, Algorithm 4)."""
        momentum = sample_momentum(state.inverse_mass, generator)
        uniform = acceptance_uniform(state.energy, generator)
        return self._trajectory(state, energy, momentum, None, 1, uniform)[1]["acceptance_rate"]

    def _trajectory(self, state, energy, momentum, n_leapfrog, max_steps: int, uniform) -> tuple[State, Info]:
        """Leapfrog from (x, p) for `n_leapfrog` (n,) steps (None: `max_steps`), then the MH decision."""
        start_hamiltonian = state.energy + kinetic_energy(momentum, state.inverse_mass)
        position, momentum, value, grad = leapfrog(
            energy, state.position, momentum, state.grad, state.inverse_mass, state.step_size, n_leapfrog, max_steps
        )
        end_hamiltonian = value + kinetic_energy(momentum, state.inverse_mass)
        energy_error = end_hamiltonian - start_hamiltonian

        accepted, probability = metropolis_decision(-energy_error, uniform)
        # the proposal shares every other field with the state (same tensors: where_state keeps them as they are)
        proposal = dataclasses.replace(state, position=position, energy=value, grad=grad)
        new_state = where_state(accepted, proposal, state)
        info = {
            "acceptance_rate": probability,
            "accepted": accepted,
            "diverging": ~(energy_error <= self.divergence_threshold),  # NaN errors diverge too
            "energy_error": energy_error,
            "hamiltonian": torch.where(accepted, end_hamiltonian, start_hamiltonian),
            # not recorded: what ChEES's gradient needs, the start, the end point and its velocity M^-1 p
            "_start": state.position,
            "_proposal": position,
            "_velocity": velocity(momentum, state.inverse_mass),
        }
        # from a finite state, an accepted end point is not finite only at energy -inf (energy error -inf)
        return new_state, with_failure(info, StepFailure(failed=accepted & (energy_error == -torch.inf)))
