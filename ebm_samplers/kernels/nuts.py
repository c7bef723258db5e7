"""The No-U-Turn Sampler (NUTS; Hoffman & Gelman 2014) in its multinomial form (Betancourt 2017), as Stan runs it.

A transition draws p ~ N(0, M) and grows a trajectory of leapfrog states of H(x, p) = E(x) + 1/2 p^T M^{-1} p
from (x, p) by doubling: at depth j a subtree of 2^j new states is added at the forward or the backward end
(direction uniform), until the trajectory makes a U-turn, a state diverges, or `max_tree_depth` doublings are
done (at most 2^max_tree_depth - 1 leapfrog steps). Every state i has the weight w_i = exp(H_0 - H_i), and the
kept state is drawn from the trajectory in proportion to these weights:

- inside a subtree, uniform progressive sampling: the subtree's candidate becomes its newest state with
  probability w_new / (sum of the subtree's weights so far), which draws the candidate in proportion to w;
- when a subtree is merged into the trajectory, biased progressive sampling: its candidate replaces the kept
  state with probability min(1, W_subtree / W_trajectory), which favours states far from the start and
  leaves the target invariant (Betancourt 2017, appendix A.3.2).

Generalised no-U-turn criterion (Betancourt 2017, A.4.2): a (sub)trajectory with momentum sum rho and
velocities p#_- = M^{-1} p_- and p#_+ = M^{-1} p_+ at its two ends has turned when p#_- . rho <= 0 or
p#_+ . rho <= 0. It is checked on every subtree as it completes and on the whole trajectory after each
merge; as in Stan (since 2.26), every merge of two halves also checks the first half extended by the first
state of the second, and the second half extended by the last state of the first, which catches U-turns
that fall between the halves. A subtree that turns, or that holds a divergent state, is discarded whole and
ends the transition; the trajectory built so far keeps its sample.

Divergence: a leapfrog state with H_i - H_0 > `divergence_threshold` (1000, Stan's max_deltaH), or with a
Hamiltonian that is not finite (an energy of +inf, -inf or NaN, or a gradient that is not finite, which makes
the momentum and so H non-finite). Such a state has weight 0, ends the tree and flags the transition
`diverging`; it is never a failure of the run.

Batched: every chain builds its own tree (its own directions, depth, ends, momentum sums, candidate and
weights) in lockstep with the others, with one energy+gradient call per leapfrog step for all chains. The
doublings are taken in step, so within a subtree all chains are at the same leaf, and the U-turn checkpoints
(the states at which pending subtrees start, kept on a stack of at most `max_tree_depth` entries, as in
iterative NUTS) are addressed by host integers. A chain whose tree has ended waits, masked: it is still
evaluated with the batch, at a frozen position, and its figures are not changed. The batch therefore runs
as many leapfrog steps as its longest tree; `n_leapfrog` records what each chain needed and
`n_leapfrog_batch` what the batch computed.

Recorded per draw: `acceptance_rate` (Stan's accept_stat: the mean of min(1, exp(H_0 - H_i)) over the states
of the final tree, which warm-up's dual averaging drives to 0.8), `accepted` (the kept state is not the
start), `diverging`, `tree_depth`, `n_leapfrog`, `n_leapfrog_batch` and `hamiltonian` (H of the kept state
with its momentum, Stan's energy__).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from ebm_samplers.kernels._integrators import drift, kick, leapfrog
from ebm_samplers.kernels._kinetic import (
    KineticState,
    check_metric,
    initial_inverse_mass,
    kinetic_energy,
    resolve_metric,
    sample_momentum,
    velocity,
)
from ebm_samplers.kernels._metropolis import reject_diverging
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive, per_chain
from ebm_samplers.registry import register_sampler
from energies import energy_and_grad

#: U-turn checks on momentum sums of at most this many numbers (all chains) are stacked into one product
_STACK_LIMIT = 1 << 15


class _Point(NamedTuple):
    """One phase-space state per chain with what the tree reads of it: velocity M^{-1} p (`sharp`)."""

    position: Tensor
    momentum: Tensor
    grad: Tensor
    energy: Tensor
    sharp: Tensor


class _Checkpoint(NamedTuple):
    """The leaf that starts a pending subtree (see `_subtree_checks`): its velocity and momentum, the subtree's
    momentum sum before it (None at the subtree's first leaf: zero), and the previous leaf's velocity and momentum."""

    sharp: Tensor
    momentum: Tensor
    sum_before: Tensor | None
    previous_sharp: Tensor | None
    previous_momentum: Tensor | None


@register_sampler("nuts")
@dataclass
class NUTS(Kernel):
    """Multinomial NUTS with step size `step_size` and at most `max_tree_depth` doublings per transition.

    `metric` is "diag" or "dense" (None, the default: dense up to `_kinetic.DENSE_MAX_DIM` coordinates, diag
    above); `inverse_mass` is the starting metric (a number or a list of event shape;
    None: identity), which warm-up re-estimates unless `sample(..., adapt_mass_matrix=False)`. A state whose
    energy error exceeds `divergence_threshold` is a divergence.
    """

    target_acceptance = 0.8
    #: the tree's length depends on the draws (a host sync per doubling): `sample(..., compile_step=True)` refuses it
    compile_step_supported: ClassVar[bool] = False
    step_size: float = 0.1
    max_tree_depth: int = 10
    divergence_threshold: float = 1000.0
    metric: str | None = None
    inverse_mass: float | list | None = None

    def __post_init__(self) -> None:
        check_positive(self.step_size, "nuts step_size")
        check_positive(self.divergence_threshold, "nuts divergence_threshold")
        depth = self.max_tree_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"nuts max_tree_depth must be an int >= 1 (Stan's default is 10); got {depth!r}")
        check_metric(self.metric, "nuts", default_allowed=True)

    def init(self, x, energy) -> KineticState:
        state = super().init(x, energy)
        # the form warm-up estimates (see `_kinetic.metric_in_use`: a state at the identity does not say)
        self._metric_in_use = resolve_metric(self.metric, state.position, energy)
        inverse_mass = initial_inverse_mass(self.inverse_mass, state.position, "nuts", self._metric_in_use)
        return KineticState(**vars(state), inverse_mass=inverse_mass)

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        if not isinstance(state, KineticState):
            raise TypeError(f"nuts needs the state from NUTS.init (a KineticState); got {type(state).__name__}")
        inverse_mass, step_size = state.inverse_mass, state.step_size
        n, event = state.position.shape[0], state.position.shape[1:]
        like = dict(dtype=state.energy.dtype, device=state.energy.device)

        momentum = sample_momentum(inverse_mass, generator)
        start = _Point(state.position, momentum, state.grad, state.energy, velocity(momentum, inverse_mass))
        start_hamiltonian = _hamiltonian(start)
        # the trajectory: its two ends (packed, so that choosing between them is one operation), momentum sum
        # rho, log of its total weight (the start has w = 1) and the state kept so far
        forward = backward = _pack(start)
        momentum_sum = momentum
        log_weight = torch.zeros(n, **like)
        kept = _pack_candidate(state.position, state.grad, state.energy, start_hamiltonian)

        depth = torch.zeros(n, dtype=torch.long, device=like["device"])
        n_leapfrog = torch.zeros_like(depth)
        acceptance_sum = torch.zeros(n, **like)
        diverging = torch.zeros(n, dtype=torch.bool, device=like["device"])
        moved = torch.zeros_like(diverging)
        done = torch.zeros_like(diverging)
        batch_leapfrog = 0

        for level in range(self.max_tree_depth):
            size = 1 << level
            # per chain: the direction, the merge's uniform and one uniform per new state
            uniforms = torch.rand((size + 2, n), generator=generator, **like)
            go_forward = uniforms[0] < 0.5
            log_uniforms = torch.log(uniforms[1:])
            towards = per_chain(go_forward, forward)
            near = _unpack(torch.where(towards, forward, backward), event)  # the end the subtree grows from
            far = _unpack(torch.where(towards, backward, forward), event)
            signed_step = torch.where(go_forward, step_size, -step_size)
            half_step = 0.5 * signed_step

            # ---- the subtree: 2^level leapfrog steps from `near`, chains in step (same leaf index)
            active = ~done
            leaf = first = near
            stack: list[_Checkpoint | None] = [None] * (level + 1)
            subtree_sum = momentum  # placeholder: S is set at leaf 0
            subtree_log_weight = torch.full((n,), -math.inf, **like)
            candidate = kept
            actives, oks, log_ws = [], [], []  # per leaf, summed once per doubling
            for index in range(size):
                previous = leaf
                leaf = _leapfrog(energy, leaf, active, signed_step, half_step, inverse_mass)
                hamiltonian = _hamiltonian(leaf)
                # w = exp(H_0 - H); 0 where H is NaN or -inf (a non-finite energy or gradient: a divergence,
                # like H = +inf) and for chains not active, which keeps them out of every sum and draw
                log_w = torch.nan_to_num(start_hamiltonian - hamiltonian, nan=-math.inf, posinf=-math.inf)
                log_w = torch.where(active, log_w, -math.inf)
                ok = log_w >= -self.divergence_threshold
                actives.append(active), oks.append(ok), log_ws.append(log_w)

                # uniform progressive sampling: the new state is the candidate with probability w / sum w
                subtree_log_weight = torch.logaddexp(subtree_log_weight, log_w)
                take = log_uniforms[1 + index] < log_w - subtree_log_weight  # never where w = 0
                new = _pack_candidate(leaf.position, leaf.grad, leaf.energy, hamiltonian)
                candidate = torch.where(per_chain(take, candidate), new, candidate)

                if index == 0:
                    first, before, subtree_sum = leaf, None, leaf.momentum
                else:
                    before, subtree_sum = subtree_sum, subtree_sum + leaf.momentum
                if index % 2 == 0:
                    stack[_popcount(index)] = _Checkpoint(
                        leaf.sharp,
                        leaf.momentum,
                        before,
                        previous.sharp if index else None,
                        previous.momentum if index else None,
                    )
                    active = ok
                else:
                    active = ok & _no_u_turn(_subtree_checks(index, stack, leaf, subtree_sum))
            batch_leapfrog += size
            computed = torch.stack(actives)
            n_leapfrog += computed.sum(0)
            # Stan's accept_stat terms min(1, w_i), over every state computed (0 where a chain was waiting)
            acceptance_sum += torch.stack(log_ws).clamp(max=0.0).exp().sum(0)
            diverging |= (computed > torch.stack(oks)).any(0)  # computed and not ok

            # ---- merge the valid subtrees into their trajectories (biased progressive sampling)
            merged = active  # building, and neither diverged nor turned inside the subtree
            depth += merged
            take = merged & (log_uniforms[0] < subtree_log_weight - log_weight)
            kept = torch.where(per_chain(take, kept), candidate, kept)
            moved |= take
            log_weight = torch.where(merged, torch.logaddexp(log_weight, subtree_log_weight), log_weight)
            # the whole trajectory, and each side extended by the nearest state of the other (Stan's extra checks)
            persists = _no_u_turn(
                [
                    (far.sharp, leaf.sharp, momentum_sum + subtree_sum),
                    (far.sharp, first.sharp, momentum_sum + first.momentum),
                    (near.sharp, leaf.sharp, subtree_sum + near.momentum),
                ]
            )
            momentum_sum = torch.where(per_chain(merged, momentum_sum), momentum_sum + subtree_sum, momentum_sum)
            last = _pack(leaf)
            forward = torch.where(per_chain(merged & go_forward, last), last, forward)
            backward = torch.where(per_chain(merged & ~go_forward, last), last, backward)
            done = ~(merged & persists)  # a chain that was done has merged nothing
            if level + 1 < self.max_tree_depth and not bool((~done).any()):  # one host sync per doubling
                break

        position, grad, value, hamiltonian = _unpack_candidate(kept, event)
        new_state = KineticState(
            position=position, energy=value, grad=grad, step_size=step_size, inverse_mass=inverse_mass
        )
        info = {
            "acceptance_rate": acceptance_sum / n_leapfrog,
            "accepted": moved,
            "diverging": diverging,
            "tree_depth": depth,
            "n_leapfrog": n_leapfrog,
            "n_leapfrog_batch": torch.full_like(n_leapfrog, batch_leapfrog),
            "hamiltonian": hamiltonian,
        }
        return new_state, info

    def probe_acceptance(self, state: State, energy, generator: torch.Generator) -> Tensor:
        """min(1, exp(H_0 - H_1)) of one leapfrog step with a fresh momentum (Hoffman & Gelman 2014, Algorithm 4),
        0 where the step diverged: the initial step-size search costs one gradient per chain and probe, not a
        whole tree (up to 2^max_tree_depth steps at a tiny step size)."""
        momentum = sample_momentum(state.inverse_mass, generator)
        start = state.energy + kinetic_energy(momentum, state.inverse_mass)
        _, momentum, value, grad = leapfrog(
            energy, state.position, momentum, state.grad, state.inverse_mass, state.step_size, None, 1
        )
        log_ratio, _ = reject_diverging(start - value - kinetic_energy(momentum, state.inverse_mass), value, grad)
        return log_ratio.clamp(max=0.0).exp()


def _leapfrog(energy, point: _Point, active: Tensor, signed_step: Tensor, half_step: Tensor, inverse_mass) -> _Point:
    """One leapfrog step of signed size per chain; chains not `active` keep their position, so the energy never
    sees what a trajectory that has ended would do next."""
    momentum = kick(point.momentum, point.grad, half_step)
    position = drift(point.position, momentum, inverse_mass, signed_step)
    position = torch.where(per_chain(active, position), position, point.position)
    value, grad = energy_and_grad(energy, position)
    momentum = kick(momentum, grad, half_step)
    return _Point(position, momentum, grad, value, velocity(momentum, inverse_mass))


def _hamiltonian(point: _Point) -> Tensor:
    """H = E + K with K = 1/2 p . M^{-1} p = 1/2 p . p#, per chain."""
    return torch.add(point.energy, _dot(point.momentum, point.sharp), alpha=0.5)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-chain inner product over the event, shape (n,)."""
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


def _pack(point: _Point) -> Tensor:
    """A trajectory end as one (n, 4 D + 1) tensor: position, momentum, gradient, velocity, energy."""
    parts = (point.position, point.momentum, point.grad, point.sharp)
    return torch.cat([*(part.flatten(1) for part in parts), point.energy[:, None]], dim=1)


def _unpack(packed: Tensor, event: torch.Size) -> _Point:
    n, size = packed.shape[0], (packed.shape[1] - 1) // 4
    parts = [packed[:, i * size : (i + 1) * size].reshape(n, *event) for i in range(4)]
    return _Point(parts[0], parts[1], parts[2], packed[:, -1], parts[3])


def _pack_candidate(position: Tensor, grad: Tensor, energy: Tensor, hamiltonian: Tensor) -> Tensor:
    """A state that may be kept as one (n, 2 D + 2) tensor: position, gradient, energy, Hamiltonian."""
    return torch.cat([position.flatten(1), grad.flatten(1), energy[:, None], hamiltonian[:, None]], dim=1)


def _unpack_candidate(packed: Tensor, event: torch.Size) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n, size = packed.shape[0], (packed.shape[1] - 2) // 2
    position = packed[:, :size].reshape(n, *event).contiguous()
    grad = packed[:, size : 2 * size].reshape(n, *event).contiguous()
    return position, grad, packed[:, -2].contiguous(), packed[:, -1].contiguous()


def _subtree_checks(index: int, stack: list, leaf: _Point, subtree_sum: Tensor) -> list:
    """The no-U-turn checks due at odd leaf `index` of a subtree: one per subtree of 2^k leaves that ends here.

    Leaf `index` ends the subtrees of 2^k leaves for k = 1 .. (trailing one bits of index); the one of 2^k
    leaves starts at a = index + 1 - 2^k, whose checkpoint is on stack slot popcount(a) (a checkpoint is
    pushed at every even leaf a on slot popcount(a); no leaf between a and index uses that slot, so it is
    intact). For k >= 2 the subtree is the merge of two halves, the second starting at m = a + 2^(k-1),
    and Stan's extra checks need the first half plus leaf m and the second half plus leaf m - 1. With S(i)
    the subtree's momentum sum up to leaf i, a check is (p# at one end, p# at the other, sum over the span).
    """
    checks = []
    trailing_ones = (index ^ (index + 1)).bit_length() - 1
    for k in range(1, trailing_ones + 1):
        start = stack[_popcount(index + 1 - (1 << k))]
        span = subtree_sum if start.sum_before is None else subtree_sum - start.sum_before
        checks.append((start.sharp, leaf.sharp, span))
        if k >= 2:
            middle = stack[_popcount(index + 1 - (1 << (k - 1)))]
            first_half_and_one = middle.sum_before + middle.momentum
            if start.sum_before is not None:
                first_half_and_one = first_half_and_one - start.sum_before
            checks.append((start.sharp, middle.sharp, first_half_and_one))
            one_and_second_half = subtree_sum - middle.sum_before + middle.previous_momentum
            checks.append((middle.previous_sharp, leaf.sharp, one_and_second_half))
    return checks


def _no_u_turn(checks: list) -> Tensor:
    """Per chain, whether every (p#_-, p#_+, rho) of `checks` satisfies the generalised no-U-turn criterion
    p#_- . rho > 0 and p#_+ . rho > 0."""
    if len(checks) == 1:
        minus, plus, span = checks[0]
        return torch.minimum(_dot(minus, span), _dot(plus, span)) > 0
    if checks[0][2].numel() > _STACK_LIMIT:  # large batches: stacking would copy every operand once more
        products = torch.stack([_dot(end, span) for minus, plus, span in checks for end in (minus, plus)])
        return products.amin(0) > 0
    # small batches, where the number of operations is the cost: one product for all checks
    ends = torch.stack([end for minus, plus, _ in checks for end in (minus, plus)])  # (2c, n, *event)
    sums = torch.stack([span for _, _, span in checks])  # (c, n, *event)
    count, n = sums.shape[:2]
    products = ends.reshape(count, 2, n, -1) * sums.reshape(count, 1, n, -1)
    return products.sum(-1).reshape(2 * count, n).amin(0) > 0


def _popcount(value: int) -> int:
    return bin(value).count("1")
