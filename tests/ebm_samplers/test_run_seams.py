"""The seams of the run loop that other parts plug into: `WarmupAdaptation.start`, and sharding that wraps the
local run (it never calls `sample()` again)."""

import pytest
import torch

import ebm_samplers
from ebm_samplers.adaptation import WarmupAdaptation
from ebm_samplers.run import sharding
from energies import Gaussian


@pytest.fixture
def start_calls(monkeypatch):
    """The steps done when `WarmupAdaptation.start` was called, one entry per call."""
    calls = []
    original = WarmupAdaptation.start

    def counting(self, state, energy, generator):
        calls.append(state)
        return original(self, state, energy, generator)

    monkeypatch.setattr(WarmupAdaptation, "start", counting)
    return calls


def test_start_runs_once_before_an_adapting_warmup(start_calls):
    ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=3, n_steps=10, warmup=20, seed=0, step_size=0.5)
    assert len(start_calls) == 1
    start_calls.clear()
    ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=3, n_steps=10, warmup=0, seed=0, step_size=0.5)
    ebm_samplers.sample(
        Gaussian([0.0, 0.0]),
        "mala",
        n_chains=3,
        n_steps=10,
        warmup=20,
        adapt_step_size=False,
        adapt_mass_matrix=False,  # MALA's metric adapts too
        seed=0,
        step_size=0.5,
    )
    assert start_calls == []  # no warm-up, or nothing to adapt


def test_start_is_not_run_again_by_a_resumed_run(start_calls, tmp_path):
    run = dict(n_chains=3, n_steps=10, warmup=20, seed=0, step_size=0.5, checkpoint=tmp_path / "run.ckpt")
    first = ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", checkpoint_every=5, **run)
    assert len(start_calls) == 1
    again = ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", checkpoint_every=5, **run)  # resumes at the end
    assert len(start_calls) == 1
    assert torch.equal(first.draws, again.draws)


def test_sharded_runs_never_call_sample_again(monkeypatch):
    from ebm_samplers import distributed

    def refuse(*args, **kwargs):
        raise AssertionError("sample() re-entered")

    monkeypatch.setattr(ebm_samplers.run, "sample", refuse)
    monkeypatch.setattr(ebm_samplers, "sample", refuse)
    trace = distributed.sample_sharded(Gaussian([0.0, 0.0]), "ula", n_shards=2, n_chains=3, n_steps=4, seed=1)
    assert trace.n_chains == 3 and trace.attrs["n_shards"] == 2
    assert not sharding.should_shard()
