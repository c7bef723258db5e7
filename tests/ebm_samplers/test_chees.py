"""ChEES-HMC: hmc's default with warm-up adapts its integration time (Hoffman, Radul & Sountsov 2021)."""

import math

import pytest
import torch

import ebm_samplers
from ebm_samplers.adaptation import chees
from ebm_samplers.kernels import HMC
from ebm_samplers.kernels.hmc import TrajectoryState, halton
from energies import Gaussian
from tests.helpers import assert_function_matches, assert_matches


def assert_centred_moments(draws, variances):
    draws = draws.double()
    for i, variance in enumerate(variances):
        assert_matches(draws[..., i].mean(1) / math.sqrt(variance), 0.0, f"mean[{i}] / sd")
        assert_matches(draws[..., i].square().mean(1) / variance, 1.0, f"variance[{i}] / truth")


def test_chees_hmc_is_exact_on_an_ill_conditioned_100d_gaussian():
    variances = torch.logspace(-1, 1, 100, dtype=torch.float64)  # two orders of magnitude
    energy = Gaussian(torch.zeros(100, dtype=torch.float64), torch.diag(variances))
    init = torch.zeros(16, 100, dtype=torch.float64)
    trace = ebm_samplers.sample(energy, "hmc", init=init, n_steps=300, warmup=300, seed=5)
    assert trace.attrs["adapted_trajectory_length"] and trace.attrs["target_acceptance"] == chees.TARGET_ACCEPTANCE
    assert 0.5 < trace.attrs["trajectory_length"] < 20.0  # of the order of the (whitened) scale, not stuck
    assert_centred_moments(trace.draws[..., ::11], variances[::11].tolist())


def test_chees_hmc_is_exact_on_a_strongly_correlated_2d_gaussian():
    covariance = torch.tensor([[1.0, 0.99], [0.99, 1.0]], dtype=torch.float64)
    energy = Gaussian(torch.zeros(2, dtype=torch.float64), covariance)
    trace = ebm_samplers.sample(energy, "hmc", init=torch.zeros(16, 2, dtype=torch.float64), n_steps=400, seed=6)
    # the length grows well past the short scale (0.1) toward the long one (1.41)
    assert trace.attrs["trajectory_length"] > 0.5
    draws = trace.draws.double()
    assert_centred_moments(draws, [1.0, 1.0])
    moments = torch.stack([draws[..., 0].square(), draws[..., 1].square(), draws[..., 0] * draws[..., 1]], -1)
    assert_function_matches(moments.mean(1), lambda m: m[2] / torch.sqrt(m[0] * m[1]), 0.99, "correlation")


def test_trajectories_keep_their_halton_jitter_around_the_adapted_length():
    warmup = 100
    trace = ebm_samplers.sample(Gaussian([0.0, 0.0]), "hmc", init=torch.zeros(8, 2), n_steps=256, warmup=warmup, seed=7)
    length = trace.attrs["trajectory_length"]
    step = torch.tensor(trace.attrs["final_step_size"])  # one per chain (the default step_size_per_chain)
    steps = trace.stats["n_leapfrog"]
    # transition k runs ceil(2 u_k T / h) steps in every chain, u_k the k-th Halton point, shared by the chains
    jitter = 2.0 * halton(torch.arange(warmup, warmup + 256))
    expected = torch.ceil(jitter * torch.tensor(length, dtype=torch.float32) / step[:, None]).long()
    assert torch.equal(steps, expected.clamp(min=1))
    assert abs(float(jitter.mean()) - 1.0) < 0.01  # Halton points fill (0, 1) evenly
    torch.testing.assert_close(trace.stats["trajectory_length"], steps * trace.stats["step_size"])


def test_halton_points_are_the_base_2_van_der_corput_sequence():
    assert halton(torch.arange(7)).tolist() == [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]


def test_an_explicit_n_leapfrog_keeps_the_fixed_trajectory_and_chees_options_need_none():
    trace = ebm_samplers.sample(
        Gaussian([0.0]), "hmc", init=torch.zeros(6, 1), n_steps=20, warmup=20, seed=1, n_leapfrog=(2, 4)
    )
    assert "trajectory_length" not in trace.attrs and "trajectory_length" not in trace.stats
    assert trace.attrs["target_acceptance"] == 0.8
    assert set(trace.stats["n_leapfrog"].unique().tolist()) <= {2, 3, 4}
    with pytest.raises(ValueError, match=r"n_leapfrog=10 fixes the trajectory, but trajectory_length configure"):
        HMC(n_leapfrog=10, trajectory_length=2.0)
    with pytest.raises(ValueError, match="chees_learning_rate must be a finite number > 0"):
        HMC(chees_learning_rate=-1.0)


def test_without_warmup_the_length_stays_where_it_starts():
    trace = ebm_samplers.sample(
        Gaussian([0.0]), "hmc", init=torch.zeros(4, 1), n_steps=16, warmup=0, seed=2, trajectory_length=0.7
    )
    assert isinstance(HMC().init(torch.zeros(2, 1), Gaussian([0.0])), TrajectoryState)
    assert float((trace.stats["n_leapfrog"] * 0.1).max()) < 1.4 + 0.1 + 1e-6  # within 2 T (one step of rounding)
    assert "adapted_trajectory_length" not in trace.attrs


def test_the_gradient_points_toward_longer_trajectories_when_they_are_too_short():
    # a 1-D standard normal from the stationary law, after a short trajectory t: the proposal has moved little,
    # and lengthening it increases the change of the squared distance
    generator = torch.Generator().manual_seed(0)
    n, t = 4096, 0.2
    x = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    p = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    end, velocity = x * math.cos(t) + p * math.sin(t), -x * math.sin(t) + p * math.cos(t)  # exact flow
    info = {
        "_start": x,
        "_proposal": end,
        "_velocity": velocity,
        "acceptance_rate": torch.ones(n, dtype=torch.float64),
        "_time": torch.full((n,), t, dtype=torch.float64),
    }
    assert float(chees.chees_gradient(info)) > 0
    t = 2.5  # past the half period pi/2 of the flow... up to pi: shortening helps
    end, velocity = x * math.cos(t) + p * math.sin(t), -x * math.sin(t) + p * math.cos(t)
    info |= {"_proposal": end, "_velocity": velocity, "_time": torch.full((n,), t, dtype=torch.float64)}
    assert float(chees.chees_gradient(info)) < 0


def test_the_step_size_statistic_is_the_harmonic_mean_over_chains_that_did_not_diverge_times_their_share():
    info = {
        "acceptance_rate": torch.tensor([0.5, 1.0, 0.0, 0.25]),
        "diverging": torch.tensor([False, False, True, False]),
    }
    # harmonic mean over the 3 that did not diverge, times the fraction 3 / 4 that did not
    assert float(chees.harmonic_mean_acceptance(info)) == pytest.approx(3 / (2 + 1 + 4) * 3 / 4)
    info["diverging"] = torch.tensor([False, False, False, False])  # a chain that accepts nothing: 0
    assert float(chees.harmonic_mean_acceptance(info)) == 0.0
    info["diverging"] = torch.ones(4, dtype=torch.bool)
    assert float(chees.harmonic_mean_acceptance(info)) == 0.0


def test_a_run_interrupted_in_warmup_resumes_chees_bit_identically(tmp_path):
    from ebm_samplers.checkpoint import read_checkpoint
    from tests.ebm_samplers.test_checkpoint import Interrupted, QuarticWell, _assert_same_trace

    run = dict(n_chains=6, n_steps=60, warmup=100, seed=8)
    full = ebm_samplers.sample(QuarticWell(), "hmc", **run)
    assert full.attrs["adapted_trajectory_length"]
    path = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):  # ChEES's T, Adam's moments and the Halton counter are all mid-flight
        ebm_samplers.sample(QuarticWell(fail_after=300), "hmc", checkpoint=path, checkpoint_every=10, **run)
    assert 0 < read_checkpoint(path)["step"] < 100
    resumed = ebm_samplers.sample(QuarticWell(), "hmc", checkpoint=path, checkpoint_every=10, **run)
    _assert_same_trace(resumed, full)


def test_chees_adapts_a_step_per_chain_until_the_first_slow_window_then_shares_one():
    # a chain that starts far out finds its own step first (stochastic volatility on the panel: one chain stayed
    # stuck under the shared step); from the first slow window on, the chains share the median of theirs
    from ebm_samplers.adaptation.warmup import WarmupAdaptation

    energy = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 0.01]])
    kernel = ebm_samplers.get_sampler("hmc")
    generator = torch.Generator().manual_seed(5)
    state = kernel.init(torch.randn(8, 2, generator=generator) * 3.0, energy)
    adaptation = WarmupAdaptation(kernel, state, 200)
    state = adaptation.start(state, energy, generator)
    first_window = adaptation._windows[0][0]
    for iteration in range(first_window + 5):
        state, info = kernel.step(state, energy, generator)
        state = adaptation.update(iteration, state, info)
        if iteration == first_window - 2:
            assert state.step_size.unique().numel() == 8
    assert state.step_size.unique().numel() == 1


def test_chees_starts_short_again_after_each_metric_update():
    # T grown under one metric sits on a later, lower peak of the criterion under the next (a logistic regression
    # on the panel ended warm-up at T = 22 where NUTS's trajectories last ~4): each new metric restarts T at one
    # step, and the T kept after warm-up averages only the last window's values
    from ebm_samplers.adaptation.warmup import WarmupAdaptation

    energy = Gaussian([0.0, 0.0], [4.0, 0.25])
    kernel = ebm_samplers.get_sampler("hmc")
    generator = torch.Generator().manual_seed(6)
    state = kernel.init(torch.randn(8, 2, generator=generator), energy)
    adaptation = WarmupAdaptation(kernel, state, 300)
    state = adaptation.start(state, energy, generator)
    ends = [end for _, end in adaptation._windows]
    grown = False
    for iteration in range(300):
        state, info = kernel.step(state, energy, generator)
        before = float(state.trajectory_length[0])
        state = adaptation.update(iteration, state, info)
        if iteration + 1 in ends:
            grown = grown or before > 2 * float(state.step_size[0])
            assert float(state.trajectory_length[0]) == pytest.approx(float(state.step_size.median()))
    assert grown  # T had grown past one step before the restarts, so the restart is seen
    assert float(state.trajectory_length[0]) > 2 * float(state.step_size[0])  # and grows again in the last window


def test_the_floor_of_t_is_the_step_size_given_not_the_exploring_iterate():
    # dual averaging tries steps ~10x its average right after a restart; T pushed up to such a step stayed on a
    # later peak of the criterion, so warm-up passes the averaged step as T's floor
    generator = torch.Generator().manual_seed(1)
    n = 64
    x = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    info = {
        "_start": x,
        "_proposal": x.clone(),
        "_velocity": torch.zeros_like(x),  # a zero gradient: only the floor moves T
        "acceptance_rate": torch.ones(n, dtype=torch.float64),
        "_time": torch.full((n,), 0.1, dtype=torch.float64),
    }
    state = TrajectoryState(
        position=x, energy=torch.zeros(n, dtype=torch.float64), grad=torch.zeros_like(x),
        step_size=torch.full((n,), 2.0, dtype=torch.float64), inverse_mass=None,
        trajectory_length=torch.full((n,), 0.1, dtype=torch.float64), transition=torch.zeros(n, dtype=torch.long),
    )  # fmt: skip
    adaptation = chees.ChEES()
    adaptation.start(torch.tensor(0.1, dtype=torch.float64))
    assert float(adaptation.update(state, info, torch.tensor(0.2, dtype=torch.float64))) == pytest.approx(0.2)
    assert float(adaptation.update(state, info)) == pytest.approx(2.0)  # without one: the chains' median step
