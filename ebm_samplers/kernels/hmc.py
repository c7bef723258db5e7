"""Hamiltonian Monte Carlo (HMC; Duane et al. 1987, Neal 2011) with a diagonal mass matrix.

Each transition draws a momentum p ~ N(0, M), runs L leapfrog steps of size h on
H(x, p) = E(x) + 1/2 p^T M^{-1} p, and accepts the end point (x', p') with probability

    min(1, exp(H(x, p) - H(x', p'))).

Leapfrog is volume preserving and reversible (with the momentum flip, which H ignores), so this is
exact Metropolis-Hastings. L is fixed, or drawn per chain and transition uniformly from
[L_min, L_max]. Jitter is the default, (5, 15): with a fixed L, near-Gaussian targets have resonant step
sizes where the trajectory returns close to its start, so acceptance is not monotone in h and dual
averaging can settle far from its target (measured on a 2-D Gaussian: 0.90-0.99 instead of 0.8).
A transition whose energy error H(x', p') - H(x, p) exceeds `divergence_threshold` (or is NaN) is
flagged `diverging`: the integrator left the region where it is stable, a sign of a step too large for
the local curvature (Betancourt 2017). As in Stan, a trajectory whose energy overflows to infinity or
NaN is a divergence (rejected and flagged), not a failure of the run: warm-up's exploring step sizes
produce such trajectories routinely. The state caches grad E, so L leapfrog steps cost L gradients.

Recorded per draw: `acceptance_rate`, `accepted`, `diverging`, `n_leapfrog`, `energy_error`,
`hamiltonian` = H of the kept point (exported to ArviZ as `energy`, Stan's `energy__`, what BFMI and the
energy plot read) and, as for every kernel, `potential_energy` = E(x). The target acceptance for warm-up is 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ebm_samplers.kernels._integrators import leapfrog
from ebm_samplers.kernels._kinetic import KineticState, initial_inverse_mass, kinetic_energy, sample_momentum
from ebm_samplers.kernels._metropolis import acceptance_uniform, metropolis_decision
from ebm_samplers.kernels.base import Draws, DrawThenAdvance, Info, State, check_positive, where_state
from ebm_samplers.registry import register_sampler


@register_sampler("hmc")
@dataclass
class HMC(DrawThenAdvance):
    """HMC with step size `step_size` and `n_leapfrog` steps: an int, or (min, max) for uniform jitter.

    `inverse_mass` is the starting diagonal metric (a number or a list of event shape; None: identity);
    warm-up re-estimates it unless `sample(..., adapt_mass_matrix=False)`.
    """

    target_acceptance = 0.8
    step_size: float = 0.1
    n_leapfrog: int | tuple[int, int] = (5, 15)
    divergence_threshold: float = 1000.0
    inverse_mass: float | list | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "hmc step_size")
        check_positive(self.divergence_threshold, "hmc divergence_threshold")
        bounds = self.n_leapfrog if isinstance(self.n_leapfrog, (tuple, list)) else (self.n_leapfrog, self.n_leapfrog)
        if len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            raise ValueError(f"hmc n_leapfrog must be an int or a (min, max) pair of ints; got {self.n_leapfrog!r}")
        if not 1 <= bounds[0] <= bounds[1]:
            raise ValueError(f"hmc n_leapfrog needs 1 <= min <= max; got {self.n_leapfrog!r}")
        self._leapfrog_range = (int(bounds[0]), int(bounds[1]))

    @property
    def gradients_per_transition(self) -> int:
        return self._leapfrog_range[1]

    def init(self, x, energy) -> KineticState:
        state = super().init(x, energy)
        return KineticState(**vars(state), inverse_mass=initial_inverse_mass(self.inverse_mass, state.position, "hmc"))

    def draw(self, state: State, generator: torch.Generator) -> Draws:
        if not isinstance(state, KineticState):
            raise TypeError(f"hmc needs the state from HMC.init (a KineticState); got {type(state).__name__}")
        low, high = self._leapfrog_range
        n = state.position.shape[0]
        n_leapfrog = torch.randint(low, high + 1, (n,), generator=generator, device=state.position.device)
        momentum = sample_momentum(state.inverse_mass, generator)
        return {"n_leapfrog": n_leapfrog, "momentum": momentum, "uniform": acceptance_uniform(state.energy, generator)}

    def advance(self, state: State, energy, draws: Draws) -> tuple[State, Info]:
        low, high = self._leapfrog_range
        n_leapfrog, momentum = draws["n_leapfrog"], draws["momentum"]
        start_hamiltonian = state.energy + kinetic_energy(momentum, state.inverse_mass)
        position, momentum, value, grad = leapfrog(
            energy,
            state.position,
            momentum,
            state.grad,
            state.inverse_mass,
            state.step_size,
            None if low == high else n_leapfrog,  # a fixed length needs no per-chain selection
            high,
        )
        end_hamiltonian = value + kinetic_energy(momentum, state.inverse_mass)
        energy_error = end_hamiltonian - start_hamiltonian

        accepted, probability = metropolis_decision(-energy_error, draws["uniform"])
        proposal = KineticState(
            position=position, energy=value, grad=grad, step_size=state.step_size, inverse_mass=state.inverse_mass
        )
        new_state = where_state(accepted, proposal, state)
        info = {
            "acceptance_rate": probability,
            "accepted": accepted,
            "diverging": ~(energy_error <= self.divergence_threshold),  # NaN errors diverge too
            "n_leapfrog": n_leapfrog,
            "energy_error": energy_error,
            "hamiltonian": torch.where(accepted, end_hamiltonian, start_hamiltonian),
        }
        return new_state, info
