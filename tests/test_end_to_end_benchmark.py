"""benchmarks/end_to_end.py: its hand-written MALA loop, the reference of the eager path's target, does our work.

The loop is the yardstick of "no framework overhead" (eager `sample()` at most 1.15x its time): if it did less
than `sample()` (another algorithm, fewer stored values) the ratio would flatter nobody but mean nothing.
"""

import pytest
import torch

import ebm_samplers
from tests.benchmark_modules import load_benchmark

end_to_end = load_benchmark("end_to_end")


@pytest.mark.parametrize("energy_kind", ["callable", "analytic"])
@pytest.mark.parametrize("target", ["mixture", "gaussian100"])
def test_the_hand_written_loop_computes_the_chain_sample_computes(target, energy_kind, monkeypatch):
    """Same seed, same random numbers in the same order: the same draws, decisions and acceptance rates, for the
    targets as plain callables (autograd) and as the `energies` classes (their analytic gradients)."""
    monkeypatch.setattr(end_to_end, "_ENERGY", energy_kind)
    init, energy = end_to_end._exact_draws(target, 50), end_to_end._torch_energy(target)
    step_size = end_to_end.STEP_SIZES[target]
    draws, _, rates, accepted = end_to_end.hand_mala(energy, init, 30, step_size, seed=3)
    trace = ebm_samplers.sample(energy, "mala", init=init, n_steps=30, warmup=0, step_size=step_size, seed=3)
    assert 0.2 < float(accepted.float().mean()) < 0.95  # both moves and rejections are compared
    assert torch.equal(trace.stats["accepted"], accepted.T)
    torch.testing.assert_close(trace.draws, draws.transpose(0, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trace.stats["acceptance_rate"], rates.T, rtol=1e-4, atol=1e-5)


def test_the_benchmark_refuses_unknown_rows_before_it_runs_anything(capsys):
    with pytest.raises(SystemExit):
        end_to_end.main(["--rows", "eager,blackjack"])
    assert "--rows: unknown blackjack; expected some of blackjax" in capsys.readouterr().err
