"""Warm-up moves a chain that its slow window left far from the others and far above their energies.

The statistical check compares with the exact answer within the Monte Carlo standard error (tests/helpers.py),
and the same run without the move is shown to fail it, so the test has power.
"""

import pytest
import torch
from torch import Tensor

import ebm_samplers
import ebm_samplers.adaptation.warmup as warmup_module
from ebm_samplers.adaptation import slow_windows
from ebm_samplers.adaptation.stragglers import Stragglers
from tests.ebm_samplers.test_checkpoint import Interrupted, _assert_same_trace
from tests.helpers import assert_matches, chain_estimates_z

F64 = torch.float64


def _window_energies(stragglers: Stragglers, energies: Tensor) -> None:
    for iteration, energy in enumerate(energies):
        stragglers.update(iteration, energy)


def test_only_a_left_out_chain_far_above_the_others_energies_moves_to_an_agreeing_chain():
    generator = torch.Generator().manual_seed(0)
    energies = 10.0 + torch.randn(20, 6, dtype=F64, generator=generator)  # one window of 20 draws, 6 chains
    energies[:, 4] += 1_000.0
    energies[:, 1] += 15.0  # above the others, but less than 10 nats per coordinate in d = 2
    stragglers = Stragglers([(0, 20)])
    _window_energies(stragglers, energies)
    sources = stragglers.donors(19, left_out=[1, 4], dimension=2)
    assert sources.tolist() == [0, 1, 2, 3, 0, 5]  # chain 4 continues from chain 0, the first agreeing chain
    assert stragglers.moves[0][:3] == [20, 4, 0] and 990 < stragglers.moves[0][3] < 1010
    # a chain far above in energy that the metric kept (it agrees in position) does not move, nor does any chain
    # when the metric left none out; each window starts afresh
    _window_energies(stragglers, energies)
    assert stragglers.donors(19, left_out=[1], dimension=2) is None
    _window_energies(stragglers, energies)
    assert stragglers.donors(19, left_out=[], dimension=2) is None
    # the bound grows with the dimension: 1,000 nats in d = 200 is a legitimate mode's gap, not a straggler's
    _window_energies(stragglers, energies)
    assert stragglers.donors(19, left_out=[4], dimension=200) is None


def _one_far_poor_mode(x: Tensor) -> Tensor:
    """N(0, I) in 2-D, plus a copy at (60, 60) with 1,000 nats less mass (relative weight e^-1000)."""
    near, far = 0.5 * x.square().sum(-1), 0.5 * (x - 60.0).square().sum(-1) + 1_000.0
    return -torch.logsumexp(torch.stack([-near, -far]), 0)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_a_chain_started_in_a_mode_without_mass_is_moved_and_the_kept_draws_are_the_target(sampler, monkeypatch):
    """Chain 3 starts in a mode that holds e^-1000 of the mass, 60 sds from the other; chains never cross. Warm-up
    moves it at the end of the first slow window and every chain then samples N(0, I): the mean of x_0 matches 0
    within the MCSE. Without the move chain 3 stays there and the pooled mean is off by hundreds of those MCSEs."""
    init = torch.zeros(8, 2, dtype=F64)
    init[3] = 60.0
    run = dict(init=init, n_steps=400, warmup=300, seed=1)
    trace = ebm_samplers.sample(_one_far_poor_mode, sampler, **run)
    first_window_end = slow_windows(300)[0][1]
    assert [move[:3] for move in trace.attrs["warmup_chains_moved"]] == [[first_window_end, 3, 0]]
    assert_matches(trace.draws[..., 0].mean(1), 0.0, f"{sampler}: mean of x_0")
    _, mcse, _ = chain_estimates_z(trace.draws[..., 0].mean(1), 0.0)
    monkeypatch.setattr(warmup_module.Stragglers, "donors", lambda self, *args: None)
    stuck = ebm_samplers.sample(_one_far_poor_mode, sampler, **run)
    assert float(stuck.draws[3, :, 0].mean()) > 50.0  # one chain in 8 there: the pooled mean ~ 7.5
    assert float(stuck.draws[..., 0].mean()) / mcse > 100.0


def test_chains_in_modes_of_equal_mass_are_not_moved():
    init = torch.zeros(8, 2, dtype=F64)
    init[3] = 60.0

    def two_equal_modes(x: Tensor) -> Tensor:
        return -torch.logsumexp(torch.stack([-0.5 * x.square().sum(-1), -0.5 * (x - 60.0).square().sum(-1)]), 0)

    trace = ebm_samplers.sample(two_equal_modes, "mala", init=init, n_steps=10, warmup=300, seed=1)
    assert trace.attrs["metric_chains_left_out"][-1] == [3] and trace.attrs["warmup_chains_moved"] == []


class _FailingPoorMode:
    """`_one_far_poor_mode` that raises after `fail_after` evaluations (to interrupt a checkpointed run)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after, self.calls = fail_after, 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise Interrupted
        return _one_far_poor_mode(x)


def test_a_run_that_moves_a_chain_resumes_bit_identically(tmp_path):
    init = torch.zeros(8, 2, dtype=F64)
    init[3] = 60.0
    run = dict(init=init, n_steps=50, warmup=300, seed=1)
    full = ebm_samplers.sample(_FailingPoorMode(), "mala", **run)
    assert full.attrs["warmup_chains_moved"]
    path = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):  # mid-window: the energies accumulated so far are in the checkpoint
        ebm_samplers.sample(_FailingPoorMode(fail_after=60), "mala", checkpoint=path, checkpoint_every=25, **run)
    resumed = ebm_samplers.sample(_FailingPoorMode(), "mala", checkpoint=path, checkpoint_every=25, **run)
    _assert_same_trace(resumed, full)
    assert resumed.attrs["warmup_chains_moved"] == full.attrs["warmup_chains_moved"]
