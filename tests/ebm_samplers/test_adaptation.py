"""Warm-up adaptation: dual averaging, Stan's windows, the Welford metric, and what sample() does with them."""

import math

import pytest
import torch

import ebm_samplers
from ebm_samplers.adaptation import DualAveraging, WelfordVariance, slow_windows
from energies import Gaussian
from tests.helpers import assert_matches

CORRELATED = Gaussian([1.0, -1.0], [[2.0, 1.2], [1.2, 1.0]])


def test_dual_averaging_converges_to_the_step_with_the_target_acceptance():
    # a deterministic acceptance curve a(h) = exp(-h): the target 0.8 is reached at h* = -log 0.8
    averaging = DualAveraging(torch.tensor([1.0, 0.01], dtype=torch.float64), 0.8, per_chain=True)
    step = torch.tensor([1.0, 0.01], dtype=torch.float64)
    errors = []
    for iteration in range(1, 3001):
        step = averaging.update(torch.exp(-step))
        if iteration in (300, 3000):
            errors.append((averaging.final_step_size() / -math.log(0.8) - 1).abs().max())
    # the averaged iterate approaches h* from both starts (100x apart), and keeps getting closer
    assert errors[1] < 0.02 and errors[1] < errors[0] / 2, errors


def test_shared_dual_averaging_drives_every_chain_with_the_mean_acceptance():
    averaging = DualAveraging(torch.full((3,), 0.5), 0.6, per_chain=False)
    step = averaging.update(torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(step, step[0].expand(3))
    # first iterate: H_1 = (0.6 - 0.5) / 11, log h_1 = log(10 * 0.5) - sqrt(1) / 0.05 * H_1
    assert float(step[0]) == pytest.approx(math.exp(math.log(5.0) - 20 * 0.1 / 11), rel=1e-6)


def test_bad_target_acceptance_is_rejected():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        DualAveraging(torch.ones(2), 1.0)


def test_slow_windows_follow_stans_schedule():
    assert slow_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert slow_windows(100) == [(15, 90)]  # short warm-up: 15% / 75% / 10%
    assert slow_windows(5) == [(0, 5)]
    assert slow_windows(1) == []  # no window of 2 draws fits: the metric stays the identity


def test_welford_matches_the_batch_variance_pooled_and_per_chain():
    draws = torch.randn(7, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1
    pooled, per_chain = WelfordVariance(per_chain=False), WelfordVariance(per_chain=True)
    for step in range(draws.shape[0]):
        pooled.update(draws[step])
        per_chain.update(draws[step])
    torch.testing.assert_close(pooled.variance(), draws.reshape(-1, 3).var(0))
    torch.testing.assert_close(per_chain.variance(), draws.var(0))


@pytest.mark.parametrize("per_chain", [False, True])
@pytest.mark.parametrize(("sampler", "target", "params"), [("mala", 0.574, {}), ("hmc", 0.8, {"n_leapfrog": (5, 15)})])
def test_adapted_kernels_reach_their_target_acceptance(sampler, target, params, per_chain):
    # hmc with a given n_leapfrog; ChEES (its default) aims at a harmonic mean instead, see test_chees
    trace = ebm_samplers.sample(
        CORRELATED, sampler, n_chains=100, n_steps=300, warmup=500, seed=21, step_size_per_chain=per_chain, **params
    )
    acceptance = float(trace.stats["acceptance_rate"].mean())  # post-warm-up draws only
    if per_chain:
        # each chain's recursion sees only its own noisy statistic, and the error (target - a) is bounded by
        # target above but 1 - target below, so the averaged step lands small: above the target, as in Stan
        assert target - 0.05 < acceptance < target + 0.15, acceptance
    else:
        assert abs(acceptance - target) < 0.05, acceptance
    assert trace.attrs["target_acceptance"] == target
    final = torch.tensor(trace.attrs["final_step_size"], dtype=trace.stats["step_size"].dtype)
    assert torch.equal(trace.stats["step_size"], final[:, None].expand_as(trace.stats["step_size"]))


def test_a_user_target_acceptance_is_reached():
    trace = ebm_samplers.sample(
        CORRELATED,
        "mala",
        n_chains=100,
        n_steps=300,
        warmup=500,
        seed=22,
        target_acceptance=0.7,
        step_size_per_chain=False,  # the shared recursion lands on the target (per chain: above it, see above)
    )
    assert abs(float(trace.stats["acceptance_rate"].mean()) - 0.7) < 0.05


def test_per_chain_step_sizes_adapt_separately():
    trace = ebm_samplers.sample(
        CORRELATED, "mala", n_chains=20, n_steps=10, warmup=300, seed=23, step_size_per_chain=True
    )
    final = torch.tensor(trace.attrs["final_step_size"])
    assert final.unique().numel() == 20


def test_adapt_step_size_false_holds_the_users_step():
    trace = ebm_samplers.sample(
        CORRELATED, "mala", n_chains=4, n_steps=20, warmup=50, seed=24, step_size=0.123, adapt_step_size=False
    )
    assert torch.allclose(trace.stats["step_size"], torch.tensor(0.123))
    assert trace.attrs["adapted_step_size"] is False


@pytest.mark.parametrize(
    ("sampler", "options", "error", "message"),
    [
        ("ula", {"target_acceptance": 0.5}, ValueError, "no accept/reject step"),
        ("mala", {"target_acceptance": 1.5}, ValueError, "strictly between 0 and 1"),
        ("mala", {"adapt_step_size": "no"}, TypeError, "adapt_step_size must be True or False"),
        ("hmc", {"adapt_mass_matrix": 0}, TypeError, "adapt_mass_matrix must be True or False"),
    ],
)
def test_bad_adaptation_options_are_rejected(sampler, options, error, message):
    with pytest.raises(error, match=message):
        ebm_samplers.sample(CORRELATED, sampler, n_chains=2, n_steps=5, warmup=5, **options)


def test_a_target_acceptance_that_nothing_would_use_is_refused():
    with pytest.raises(
        ValueError, match=r"target_acceptance=0.7: options of .* this run has warmup=0, so they would be"
    ):
        ebm_samplers.sample(CORRELATED, "mala", n_chains=2, warmup=0, n_steps=5, target_acceptance=0.7)
    with pytest.raises(ValueError, match=r"this run has adapt_step_size=False, so they would be ignored"):
        ebm_samplers.sample(
            CORRELATED, "mala", n_chains=2, n_steps=5, warmup=5, adapt_step_size=False, target_acceptance=0.7
        )


def test_step_size_per_chain_without_adaptation_is_refused():
    with pytest.raises(
        ValueError, match=r"^step_size_per_chain=True: options of .* has warmup=0, so they would be ignored"
    ):
        ebm_samplers.sample(CORRELATED, "mala", n_chains=2, warmup=0, n_steps=5, step_size_per_chain=True)


def test_mass_matrix_adaptation_recovers_very_different_scales():
    variances = torch.tensor([0.01, 1.0, 100.0])
    target = Gaussian(torch.zeros(3), variances)
    trace = ebm_samplers.sample(target, "hmc", n_chains=50, n_steps=10, warmup=500, seed=25)
    inverse_mass = torch.tensor(trace.attrs["final_inverse_mass"])  # pooled over chains: one row
    # the last window holds 200 draws x 50 chains; 15% is several of its standard errors
    ratio = inverse_mass / variances
    assert torch.all((ratio - 1).abs() < 0.15), ratio


def test_adapted_values_survive_a_save_and_load(tmp_path):
    trace = ebm_samplers.sample(CORRELATED, "hmc", n_chains=3, n_steps=8, warmup=40, seed=26)
    loaded = ebm_samplers.Trace.load(trace.save(tmp_path / "hmc.nc"))
    for key in ("final_step_size", "final_inverse_mass", "target_acceptance", "adapted_mass_matrix"):
        assert loaded.attrs[key] == trace.attrs[key], key
    assert torch.equal(loaded.stats["diverging"], trace.stats["diverging"])
    assert torch.equal(loaded.stats["potential_energy"], trace.stats["potential_energy"])


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "target"), [("mala", 0.574), ("hmc", 0.8)])
def test_target_acceptance_is_reached_on_a_badly_scaled_10d_gaussian(sampler, target):
    params = {"n_leapfrog": (5, 15)} if sampler == "hmc" else {}  # ChEES aims at a harmonic mean instead
    scales = torch.logspace(-1, 0, 10).sqrt()
    covariance = (torch.full((10, 10), 0.5) + 0.5 * torch.eye(10)) * scales[:, None] * scales[None]
    gaussian = Gaussian(torch.zeros(10), covariance)
    trace = ebm_samplers.sample(gaussian, sampler, n_chains=100, n_steps=1000, warmup=1000, seed=27, **params)
    # per chain (the default) the realized acceptance lands above the target, see the test above
    assert target - 0.05 < float(trace.stats["acceptance_rate"].mean()) < target + 0.15
    variances = trace.draws.double().square().mean(dim=1)  # per chain, about the known mean 0
    for i in (0, 9):
        assert_matches(variances[:, i], float(covariance[i, i]), f"{sampler} variance[{i}]")


@pytest.mark.parametrize(("sampler", "params"), [("mala", {}), ("nuts", {}), ("hmc", {"n_leapfrog": 5})])
def test_by_default_each_chain_adapts_its_own_step_size(sampler, params):
    trace = ebm_samplers.sample(CORRELATED, sampler, n_chains=6, n_steps=5, warmup=60, seed=25, **params)
    assert torch.tensor(trace.attrs["final_step_size"]).unique().numel() == 6


def test_by_default_chees_hmc_shares_one_step_size():
    # its chains share one trajectory length, so the batch would pay for the chain with the smallest step
    trace = ebm_samplers.sample(CORRELATED, "hmc", n_chains=6, n_steps=5, warmup=60, seed=25)
    assert trace.attrs["adapted_trajectory_length"]
    assert torch.tensor(trace.attrs["final_step_size"]).unique().numel() == 1
