"""Stragglers: a chain that a whole slow window left far above the others' energies moves to another chain.

A chain can spend the whole warm-up where the target has no mass to speak of: started where the energy is
astronomical and so steep that its adapted step shrinks to nothing (posteriordb's ARMA(1, 1) from a moving-average
coefficient beyond 1: energy ~1e42 at the start, still 21,000 nats above the others at the end of warm-up under
`mala`), or in a secondary mode hundreds of nats worse than the main one (a two-component mixture whose one
component covers all the data: 400 nats worse in 5 coordinates). Such a chain never contributes a draw that
matters, and R-hat fails the run. At the end of each slow window a chain is moved, with everything its state
holds, to the position of a chain that agrees with the others, when both hold:

* the metric estimate left it out (`metric.agreeing_chains`: its window mean lies more than 10 robust sds from the
  chains' median in some coordinate), and
* its mean energy over the window exceeds the median of the other chains' by more than 10 robust sds of their
  energies (1.4826 x the median absolute deviation of their window means plus the median of their own sds) and
  by more than `NATS_PER_COORDINATE` x d nats.

The second bound keeps a legitimate mode: modes of comparable mass whose scales differ by a factor r have
typical energies d log r apart, so a chain is moved only where that would take r > e^10 in every coordinate.
Draws before the move are warm-up, never kept, and the kept draws follow the Markov chain from wherever warm-up
left it, so the move cannot bias them; what it costs is the independence of that chain's start, which is why it
needs both bounds and is reported (`warmup_chains_moved` in the trace attributes: per move the window's end, the
chain, the chain it moved to and the energy gap). Donors are the agreeing chains in turn, lowest index first.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.adaptation.metric import OUTLIER_SDS, median, robust_spread
from ebm_samplers.adaptation.schedule import window_at
from ebm_samplers.adaptation.welford import WelfordVariance

#: A chain is moved only when its window's mean energy exceeds the others' by more than this many nats per coordinate.
NATS_PER_COORDINATE = 10.0


class Stragglers:
    """Accumulates each chain's energy over the slow `windows` and decides, at each window's end, which chains
    move where (see the module docstring)."""

    def __init__(self, windows: list[tuple[int, int]]) -> None:
        self.windows = windows
        #: per move: [window end, chain, the chain it moved to, the energy gap in nats]
        self.moves: list[list[float]] = []
        self._reset()

    def _reset(self) -> None:
        self._energy = WelfordVariance(per_chain=True)

    def update(self, iteration: int, energy: Tensor) -> None:
        """Feed warm-up iteration `iteration`'s energies (n,)."""
        if window_at(self.windows, iteration) is not None:
            self._energy.update(energy.detach().to(torch.float64))

    def donors(self, iteration: int, left_out: list[int], dimension: int) -> Tensor | None:
        """At the end of the window ending with `iteration`, whose metric left out the chains `left_out`: for
        each chain the chain whose state it continues from (itself, or a donor), or None when none moves."""
        energy = self._energy
        self._reset()
        if not left_out or energy.count < 2:
            return None
        mean, variance = energy.mean(), energy.variance()
        agreeing = torch.ones_like(mean, dtype=torch.bool)
        agreeing[left_out] = False
        reference = median(mean[agreeing])
        spread = robust_spread(mean[agreeing], variance[agreeing])
        gap = mean - reference
        bound = max(OUTLIER_SDS * float(spread), NATS_PER_COORDINATE * dimension)
        moving = [chain for chain in left_out if float(gap[chain]) > bound]
        if not moving:
            return None
        sources = torch.arange(mean.shape[0])
        donors = agreeing.nonzero().flatten().tolist()
        for turn, chain in enumerate(moving):
            sources[chain] = donors[turn % len(donors)]
            self.moves.append([iteration + 1, chain, donors[turn % len(donors)], float(gap[chain])])
        return sources

    def state_dict(self) -> dict[str, object]:
        return {"energy": self._energy.state_dict(), "moves": self.moves}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self._energy.load_state_dict(saved["energy"])
        self.moves = [list(move) for move in saved["moves"]]
