"""The in-memory recorder copies a stat only when it changed: what it stores must still be every step's value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import ebm_samplers
from ebm_samplers.kernels.base import Kernel
from energies import Gaussian


@dataclass
class _CountingKernel(Kernel):
    """Stands still; reports stats through tensors it reuses in the ways a user kernel might.

    `counter` is one tensor modified in place every step, `constant` the same unmodified tensor every step,
    `alternating` switches between two unmodified tensors, `fresh` is a new tensor every step.
    """

    step_size: float = 0.1

    def __post_init__(self):
        self._counter = None

    def step(self, state, energy, generator):
        n = state.position.shape[0]
        if self._counter is None:
            self._counter = torch.zeros(n)
            self._constant = torch.full((n,), 7.0)
            self._pair = (torch.full((n,), -1.0), torch.full((n,), 1.0))
        self._counter += 1.0
        info = {
            "acceptance_rate": self._constant,
            "accepted": torch.ones(n, dtype=torch.bool),
            "counter": self._counter,
            "alternating": self._pair[int(self._counter[0]) % 2],
        }
        return state, info


def test_reused_stat_tensors_are_recorded_at_every_step():
    trace = ebm_samplers.sample(Gaussian(torch.zeros(2)), _CountingKernel(), n_chains=3, n_steps=12, thin=2, warmup=3)
    steps = torch.arange(3 + 2, 3 + 12 + 1, 2, dtype=torch.float32)  # kept steps, counted from 1
    assert torch.equal(trace.stats["counter"], steps.expand(3, -1))
    assert torch.equal(trace.stats["acceptance_rate"], torch.full((3, 6), 7.0))
    assert torch.equal(trace.stats["alternating"], torch.where(steps % 2 == 1, 1.0, -1.0).expand(3, -1))
    assert torch.equal(trace.stats["step_size"], torch.full((3, 6), 0.1))


def test_ula_records_acceptance_one_and_adapted_step_sizes_are_kept_per_draw():
    energy = Gaussian(torch.zeros(2))
    trace = ebm_samplers.sample(energy, "ula", init=torch.zeros(4, 2), n_steps=9, seed=1)
    assert torch.equal(trace.stats["acceptance_rate"], torch.ones(4, 9))
    assert bool(trace.stats["accepted"].all())
    # adapted in warm-up, one step size per chain, then fixed: every kept draw records its chain's value
    adapted = ebm_samplers.sample(
        energy, "mala", init=torch.zeros(4, 2), warmup=50, n_steps=9, seed=1, step_size_per_chain=True
    )
    step_sizes = adapted.stats["step_size"]
    assert torch.equal(step_sizes, step_sizes[:, :1].expand(-1, 9))
    assert len(set(step_sizes[:, 0].tolist())) == 4


def test_inference_mode_tensors_without_a_version_counter_are_copied_every_time():
    with torch.inference_mode():
        trace = ebm_samplers.sample(Gaussian(torch.zeros(2)), _CountingKernel(), n_chains=3, n_steps=6, seed=0)
    assert torch.equal(trace.stats["counter"], torch.arange(1.0, 7.0).expand(3, -1))
    assert torch.equal(trace.stats["acceptance_rate"], torch.full((3, 6), 7.0))


def test_a_trace_that_would_not_fit_in_memory_is_refused_before_the_run(monkeypatch):
    from ebm_samplers.run import recording

    monkeypatch.setattr(recording, "available_memory", lambda device: 10_000)
    run = dict(n_chains=10, n_steps=50, seed=0, step_size=0.3)
    with pytest.raises(
        MemoryError, match=r"needs .* GiB but .* cpu memory is available.*thin=.*stream=.*keep='moments'"
    ):
        ebm_samplers.sample(Gaussian(torch.zeros(3)), "mala", **run)
    assert ebm_samplers.sample(Gaussian(torch.zeros(3)), "mala", keep="moments", **run).count == 50


def test_the_trace_is_a_view_of_the_recorded_storage_and_arviz_shares_it():
    trace = ebm_samplers.sample(Gaussian(torch.zeros(3)), "mala", n_chains=5, n_steps=20, seed=0, step_size=0.3)
    assert trace.draws.stride()[:2] == (3, 15)  # stored draw-major, handed over as a (chain, draw) view
    assert all(values.stride() == (1, 5) for values in trace.stats.values())
    tree = trace.to_arviz()
    assert np.shares_memory(tree["posterior"]["x"].values, trace.draws.numpy())
    assert np.shares_memory(tree["sample_stats"]["potential_energy"].values, trace.stats["potential_energy"].numpy())
