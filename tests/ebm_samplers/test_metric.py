"""The metric (inverse mass matrix): dense and diagonal, its estimation in warm-up, and preconditioned MALA/ULA.

Statistical checks compare with exact answers within the Monte Carlo standard error (tests/helpers.py); each has
a companion assertion that the wrong answer (no metric, or ULA's bias) lies far outside that error, so it has power.
"""

import math

import pytest
import torch
from torch import Tensor

import ebm_samplers
from ebm_samplers.adaptation.metric import MetricAdaptation, agreeing_chains, dense_metric, regularise
from ebm_samplers.adaptation.welford import WelfordChains
from ebm_samplers.checkpoint import read_checkpoint
from ebm_samplers.kernels._integrators import drift, leapfrog
from ebm_samplers.kernels._kinetic import DenseMetric, KineticState, kinetic_energy, sample_momentum, velocity
from ebm_samplers.kernels._langevin import langevin_log_density, langevin_log_ratio, langevin_proposal
from ebm_samplers.kernels.base import State, where_state
from energies import Gaussian
from tests.ebm_samplers.test_checkpoint import Interrupted, QuarticWell, _assert_same_trace
from tests.helpers import Z_999, assert_bivariate_gaussian_moments, assert_matches, chain_estimates_z
from tests.paths import PATHS, gaussian_target

F64 = torch.float64


def _random_metric(d: int, n: int, generator: torch.Generator) -> DenseMetric:
    factor = torch.randn(d, d, dtype=F64, generator=generator)
    return DenseMetric.from_matrix(factor @ factor.T + 0.5 * torch.eye(d, dtype=F64), torch.zeros(n, d, dtype=F64))


# --- the dense metric's algebra -------------------------------------------------------------------------------


def test_dense_momentum_has_covariance_m_and_the_kinetic_energy_and_velocity_use_m_inverse():
    generator = torch.Generator().manual_seed(0)
    metric = _random_metric(3, 200_000, generator)
    momentum = sample_momentum(metric, generator)
    assert momentum.shape == (200_000, 3) and momentum.dtype == F64
    mass = torch.linalg.inv(metric.inverse_mass)
    # the sample covariance of 200,000 draws: entries within a few 1/sqrt(n) of M's
    sample = momentum.T @ momentum / momentum.shape[0]
    scale = torch.sqrt(torch.diagonal(mass)[:, None] * torch.diagonal(mass)[None, :])
    assert float(((sample - mass) / scale).abs().max()) < 5 * math.sqrt(2 / momentum.shape[0])
    p = momentum[:5]
    torch.testing.assert_close(velocity(p, metric), p @ metric.inverse_mass)
    torch.testing.assert_close(kinetic_energy(p, metric), 0.5 * ((p @ metric.inverse_mass) * p).sum(-1))


def test_a_dense_metric_with_a_diagonal_matrix_moves_exactly_as_the_diagonal_metric():
    generator = torch.Generator().manual_seed(1)
    n, event = 4, (2, 3)
    diagonal = torch.rand(event, dtype=F64, generator=generator) + 0.5
    like = torch.zeros(n, *event, dtype=F64)
    dense = DenseMetric.from_matrix(torch.diag(diagonal.reshape(-1)), like)
    diag = diagonal.expand(n, *event)
    p = torch.randn(n, *event, dtype=F64, generator=generator)
    x = torch.randn(n, *event, dtype=F64, generator=generator)
    t = torch.rand(n, dtype=F64, generator=generator)
    torch.testing.assert_close(velocity(p, dense), velocity(p, diag))
    torch.testing.assert_close(kinetic_energy(p, dense), kinetic_energy(p, diag))
    torch.testing.assert_close(drift(x, p, dense, t), drift(x, p, diag, t))
    energy = Gaussian(torch.zeros(6), torch.linspace(0.5, 2.0, 6))
    flat = x.reshape(n, 6)
    value, grad = energy(flat), torch.func.vmap(torch.func.grad(lambda y: energy(y[None])[0]))(flat)
    runs = [
        leapfrog(lambda y: energy(y.reshape(n, 6)), x, p, grad.reshape(n, *event), metric, t, None, 5)
        for metric in (dense, diag)
    ]
    for dense_part, diag_part in zip(*runs, strict=True):
        torch.testing.assert_close(dense_part, diag_part)
    assert value.shape == (n,)


def test_a_metric_that_is_not_positive_definite_or_the_wrong_size_is_refused():
    like = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="positive definite"):
        DenseMetric.from_matrix(torch.tensor([[1.0, 2.0], [2.0, 1.0]]), like)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        DenseMetric.from_matrix(torch.eye(3), like)


def test_where_state_keeps_the_shared_dense_metric():
    like = torch.zeros(3, 2)
    metric = DenseMetric.identity(like)

    def state(value: float) -> KineticState:
        full = torch.full((3, 2), value)
        return KineticState(full, full[:, 0], full, full[:, 0], metric)

    chosen = where_state(torch.tensor([True, False, True]), state(1.0), state(0.0))
    assert chosen.inverse_mass is metric
    assert chosen.position[:, 0].tolist() == [1.0, 0.0, 1.0]
    ones, zeros = torch.ones(3, 2), torch.zeros(3, 2)
    plain = where_state(torch.tensor([True, False, True]), State(ones, ones[:, 0], ones, ones[:, 0]),
                        State(zeros, zeros[:, 0], zeros, zeros[:, 0]))  # fmt: skip
    assert plain.position[:, 0].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("kind", ["identity", "diag", "dense"])
def test_preconditioned_log_ratio_equals_the_difference_of_the_two_proposal_densities(kind):
    """MALA's one-inner-product ratio under a metric A equals log q(x | x') - log q(x' | x) computed from the two
    quadratic forms in A^{-1} (float64, per-chain steps, 2-D events)."""
    generator = torch.Generator().manual_seed(2)
    n, event = 200, (3, 2)
    x = torch.randn(n, *event, dtype=F64, generator=generator)
    grad = torch.randn(n, *event, dtype=F64, generator=generator)
    h = torch.rand(n, dtype=F64, generator=generator) + 0.01
    metric = {
        "identity": None,
        "diag": torch.rand(n, *event, dtype=F64, generator=generator) + 0.2,
        "dense": _random_metric(6, n, generator),
    }[kind]
    if kind == "dense":
        metric = DenseMetric.from_tensors(metric.tensors(), (n, *event))
    proposal = langevin_proposal(x, grad, h, generator, metric)
    grad_at_proposal = torch.randn(n, *event, dtype=F64, generator=generator)
    expected = langevin_log_density(x, proposal, grad_at_proposal, h, metric) - langevin_log_density(
        proposal, x, grad, h, metric
    )
    ratio = langevin_log_ratio(x, proposal, grad, grad_at_proposal, h, metric)
    torch.testing.assert_close(ratio, expected, rtol=1e-9, atol=1e-9)
    assert float(expected.abs().mean()) > 0.1


# --- estimation in warm-up ------------------------------------------------------------------------------------


def test_dense_estimation_pools_the_chains_of_a_window_and_shrinks_toward_the_metric_in_use():
    """Stan's regularisation n / (n + 5) S + 1e-3 * 5 / (n + 5) P, with P the metric the window's draws were made
    under: the identity for the first window (Stan's rule), the first window's estimate for the second."""
    generator = torch.Generator().manual_seed(3)
    adaptation = MetricAdaptation("dense", warmup=200)
    (start, end), (second_start, second_end) = adaptation.windows[:2]  # [75, 100) and [100, 150)
    scales = torch.tensor([1.0, 3.0, 0.1], dtype=F64)
    positions = torch.randn(second_end, 6, 3, dtype=F64, generator=generator) * scales
    results = [adaptation.update(i, positions[i]) for i in range(end)]
    assert all(r is None for r in results[:-1]) and isinstance(results[-1], DenseMetric)
    pooled = positions[start:end].reshape(-1, 3)  # the window's draws of every chain, nothing before it
    n = pooled.shape[0]
    identity = torch.eye(3, dtype=F64)
    expected = n / (n + 5) * torch.cov(pooled.T) + 1e-3 * 5 / (n + 5) * identity
    torch.testing.assert_close(results[-1].inverse_mass, expected)
    torch.testing.assert_close(regularise(torch.cov(pooled.T), n, identity), expected)
    first = results[-1]
    second = [adaptation.update(i, positions[i], first) for i in range(end, second_end)][-1]
    pooled = positions[second_start:second_end].reshape(-1, 3)
    n = pooled.shape[0]
    expected = n / (n + 5) * torch.cov(pooled.T) + 1e-3 * 5 / (n + 5) * first.inverse_mass
    torch.testing.assert_close(second.inverse_mass, expected)
    assert adaptation.ridge_retries == 0


def test_the_shrinkage_follows_the_metric_in_use_so_a_tiny_scale_keeps_its_estimate():
    """Positions of scale 1e-4 (variance 1e-8) in a 500-draw window made under a metric of that scale: shrunk
    toward it, the estimate is the window's sample variance to within 1e-5 of itself (so within 20 % of 1e-8, about
    3 sampling sds); toward Stan's fixed 1e-3 I it would be 1e-5, 1,000 times too large, which is what made MALA
    crawl on posteriordb's kilpisjarvi regression."""
    generator = torch.Generator().manual_seed(4)
    for kind in ("diag", "dense"):
        adaptation = MetricAdaptation(kind, warmup=5)  # one window, [0, 5)
        positions = torch.randn(5, 100, 2, dtype=F64, generator=generator) * 1e-4
        in_use = torch.full((100, 2), 1e-8, dtype=F64)
        if kind == "dense":
            in_use = DenseMetric.from_matrix(1e-8 * torch.eye(2, dtype=F64), positions[0])
        metric = [adaptation.update(i, positions[i], in_use) for i in range(5)][-1]
        variance = metric.diagonal() if kind == "dense" else metric[0]
        torch.testing.assert_close(variance, torch.full((2,), 1e-8, dtype=F64), rtol=0.2, atol=0)
        sample_variance = positions.reshape(-1, 2).var(0)
        torch.testing.assert_close(variance, sample_variance * 500 / 505 + 1e-3 * 5 / 505 * 1e-8)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("scatter_entries", [WelfordChains.SCATTER_ENTRIES, 3 * 3 * 3])  # per chain; blocks of 3
def test_per_chain_accumulation_pools_any_subset_of_chains_as_one_sample(dense, scatter_entries, monkeypatch):
    monkeypatch.setattr(WelfordChains, "SCATTER_ENTRIES", scatter_entries)
    generator = torch.Generator().manual_seed(5)
    draws = torch.randn(30, 7, 3, dtype=F64, generator=generator) * torch.tensor([1.0, 5.0, 0.2], dtype=F64) + 2
    draws = draws + torch.randn(7, 3, dtype=F64, generator=generator)  # chains with different means
    accumulator = WelfordChains(dense=dense)
    for step in draws:
        accumulator.update(step)
    torch.testing.assert_close(accumulator.means(), draws.mean(0))
    torch.testing.assert_close(accumulator.variances(), draws.var(0))
    for keep in (torch.ones(7, dtype=torch.bool), torch.tensor([True] * 3 + [False] * 3 + [True])):
        keep = accumulator.block_mask(keep)
        pooled = draws[:, keep].reshape(-1, 3)
        expected = torch.cov(pooled.T) if dense else pooled.var(0)
        torch.testing.assert_close(accumulator.pooled(keep), expected)
    if dense and scatter_entries < 7 * 9:  # blocks {0, 1, 2}, {3, 4, 5}, {6}: leaving chain 4 out leaves out its block
        narrowed = accumulator.block_mask(torch.tensor([True] * 4 + [False] + [True] * 2))
        assert narrowed.tolist() == [True] * 3 + [False] * 3 + [True]


def test_only_a_chain_far_from_the_others_is_left_out_of_the_pool():
    generator = torch.Generator().manual_seed(6)
    means = torch.randn(8, 4, dtype=F64, generator=generator) * 0.1  # window means of agreeing chains
    variances = torch.ones(8, 4, dtype=F64)
    assert bool(agreeing_chains(means, variances).all())
    far = means.clone()
    far[5, 2] = 30.0  # 30 within-chain sds out in one coordinate
    assert (~agreeing_chains(far, variances)).nonzero().flatten().tolist() == [5]
    # two groups 4 sds apart (a mode each, or chains still converging) are within 10 robust sds: all pooled
    split = means.clone()
    split[:3] += 4.0
    assert bool(agreeing_chains(split, variances).all())
    # chains that all sit still at one point have no spread at all, and none is left out
    assert bool(agreeing_chains(torch.zeros(8, 4, dtype=F64), torch.zeros(8, 4, dtype=F64)).all())
    # no majority: with 5 of 8 chains far out, each in its own direction, fewer than half agree and all are pooled
    scattered = torch.randn(4, 8, 3, dtype=F64, generator=generator)
    scattered[:, torch.arange(5), torch.arange(5) % 3] += 100.0 * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=F64)
    assert int(agreeing_chains(scattered.mean(0), scattered.var(0)).sum()) < 4
    adaptation = MetricAdaptation("diag", warmup=4)  # one window, [0, 4)
    metric = [adaptation.update(i, scattered[i]) for i in range(4)][-1]
    assert adaptation.chains_left_out == [[]]
    torch.testing.assert_close(metric[0], regularise(scattered.reshape(-1, 3).var(0), 32))


def _two_far_modes(x: Tensor) -> Tensor:
    """An equal mixture of N(0, I) and N(100 * 1, I) in 2-D."""
    near, far = 0.5 * x.square().sum(-1), 0.5 * (x - 100.0).square().sum(-1)
    return -torch.logsumexp(torch.stack([-near, -far]), 0)


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_a_chain_in_a_far_mode_is_left_out_of_the_metric_and_reported(metric):
    """Seven chains in one mode, one in a mode 100 sds away (chains cannot cross): pooled with the others, that
    chain would make the metric ~1,100 (the spread between the modes) and every chain's steps 33 times too long
    for its mode; left out, the metric is the modes' own (variance 1) and the trace says which chain was left out
    of each slow window."""
    init = torch.zeros(8, 2, dtype=F64)
    init[3] = 100.0
    trace = ebm_samplers.sample(_two_far_modes, "mala", init=init, n_steps=10, warmup=300, seed=0, metric=metric)
    windows = len(ebm_samplers.adaptation.slow_windows(300))
    assert trace.attrs["metric_chains_left_out"] == [[3]] * windows
    variances = torch.tensor(trace.attrs["final_inverse_mass"])
    assert bool(((variances > 0.5) & (variances < 2.0)).all()), variances


def test_a_covariance_without_cholesky_factor_gets_a_ridge_and_a_count_never_a_silent_clamp():
    like = torch.zeros(4, 2)
    # rounding made it indefinite (eigenvalues 3 and -1): the smallest relative ridge that restores a factor
    metric, retries = dense_metric(torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64), 1000, like)
    assert retries > 0
    assert bool((torch.linalg.eigvalsh(metric.inverse_mass.double()) > 0).all())
    with pytest.raises(FloatingPointError, match="not finite"):
        dense_metric(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=F64), 1000, like)


def test_dense_warmup_recovers_a_strong_correlation_and_reports_its_metric():
    covariance = torch.tensor([[1.0, 0.99], [0.99, 1.0]]) * torch.tensor([[1.0, 10.0], [10.0, 100.0]])
    trace = ebm_samplers.sample(
        Gaussian([0.0, 0.0], covariance), "hmc", n_chains=8, n_steps=10, warmup=400, seed=0, metric="dense"
    )
    assert trace.attrs["metric"] == "dense" and trace.attrs["metric_ridge_retries"] == 0
    estimate = torch.tensor(trace.attrs["final_inverse_mass_dense"])
    assert estimate.shape == (2, 2)
    assert trace.attrs["final_inverse_mass"] == torch.diagonal(estimate).tolist()
    correlation = estimate[0, 1] / torch.sqrt(estimate[0, 0] * estimate[1, 1])
    assert float(correlation) > 0.95
    assert 0.5 < float(estimate[1, 1] / estimate[0, 0]) / 100.0 < 2.0


# --- samplers with a metric -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["hmc", "mala", "ula", "underdamped_langevin"])
def test_an_unknown_metric_is_refused_naming_the_accepted_ones(sampler):
    with pytest.raises(ValueError, match=r"metric must be 'diag' or 'dense'.*; got 'full'$"):
        ebm_samplers.sample(Gaussian([0.0]), sampler, n_chains=2, n_steps=2, metric="full")


def _scaled_gaussian_run(**options):
    scales = torch.logspace(-2, 2, 6)  # standard deviations 1e-2 ... 1e2
    energy = Gaussian(torch.zeros(6), scales**2)
    trace = ebm_samplers.sample(energy, "mala", n_chains=32, n_steps=1000, warmup=1000, seed=5, **options)
    return trace.draws.double().square().mean(dim=1) / scales.double() ** 2  # (chain, coordinate): E[x^2] / var


def test_preconditioned_mala_samples_a_badly_scaled_gaussian_where_identity_mala_fails():
    adapted = _scaled_gaussian_run()  # the defaults: warm-up estimates a diagonal metric
    for i in range(adapted.shape[1]):
        assert_matches(adapted[:, i], 1.0, f"preconditioned MALA variance ratio of coordinate {i}")
    identity = _scaled_gaussian_run(adapt_mass_matrix=False)
    # the step suits the smallest scale, so the largest one hardly moves from its start
    _, _, z = chain_estimates_z(identity[:, -1], 1.0)
    assert z > 20 * Z_999


@pytest.mark.parametrize("path", PATHS)
def test_mala_with_a_fixed_diagonal_metric_is_exact_where_ula_is_biased(path):
    # N(0, diag(v)) with a fixed metric m != v: MALA must correct the preconditioned proposal exactly
    variances, metric, h = [0.25, 4.0], [0.2, 3.0], 0.6
    energy = gaussian_target(path, [0.0, 0.0], torch.diag(torch.tensor(variances)))
    run = dict(n_chains=300, n_steps=800, warmup=100, seed=6, step_size=h, inverse_mass=metric, backend=path)
    fixed = dict(adapt_step_size=False, adapt_mass_matrix=False)
    mala = ebm_samplers.sample(energy, "mala", **run, **fixed)
    ula = ebm_samplers.sample(energy, "ula", **run, adapt_mass_matrix=False)
    assert 0.3 < float(mala.stats["acceptance_rate"].mean()) < 0.95
    for i, (v, m) in enumerate(zip(variances, metric, strict=True)):
        assert_matches(mala.draws[..., i].double().square().mean(1), v, f"MALA variance of coordinate {i}")
        # ULA with metric m on N(0, v): the AR(1) at step h m, stationary variance v / (1 - h m / (2 v))
        ula_variance = ula.draws[..., i].double().square().mean(1)
        assert_matches(ula_variance, v / (1 - h * m / (2 * v)), f"ULA variance of coordinate {i}")
        _, _, z = chain_estimates_z(ula_variance, v)
        assert z > 10 * Z_999


def test_mala_and_ula_with_a_fixed_dense_metric():
    # MALA is exact on a correlated Gaussian with a fixed dense metric that is not its covariance; ULA with the
    # covariance as metric is the AR(1) x' = (1 - h) x + sqrt(2h) Sigma^{1/2} xi, stationary Sigma / (1 - h/2)
    mean = torch.tensor([1.0, -1.0])
    covariance = torch.tensor([[2.0, 1.8], [1.8, 2.0]])
    energy = Gaussian(mean, covariance)
    run = dict(n_chains=200, n_steps=800, warmup=100, seed=7, metric="dense", adapt_mass_matrix=False)
    mala = ebm_samplers.sample(
        energy, "mala", **run, step_size=0.8, inverse_mass=[[1.5, 1.0], [1.0, 1.5]], adapt_step_size=False
    )
    assert 0.3 < float(mala.stats["acceptance_rate"].mean()) < 0.95
    assert_bivariate_gaussian_moments(mala.draws, mean, covariance)
    h = 0.5
    ula = ebm_samplers.sample(energy, "ula", **run, step_size=h, inverse_mass=covariance.tolist())
    assert_bivariate_gaussian_moments(ula.draws, mean, covariance / (1 - h / 2))
    with pytest.raises(AssertionError):
        assert_bivariate_gaussian_moments(ula.draws, mean, covariance)


def test_mala_warmup_finds_a_tiny_correlated_scale_that_a_fixed_ridge_would_swamp():
    """An intercept-slope posterior shaped like posteriordb's kilpisjarvi regression (sds 30 and 0.0075,
    correlation -0.9999, variance across the ridge ~1e-8) from N(0, I) starts, as the panel starts its chains:
    default MALA must end warm-up with a well-conditioned step and sample it. Stan's fixed ridge 1e-3 * 5 / (n + 5) I
    (~1e-6 in the last window here) would set the narrow direction instead: MALA's step fell to ~0.002."""
    sds = torch.tensor([30.0, 0.0075], dtype=torch.float64)
    correlation = torch.tensor([[1.0, -0.9999], [-0.9999, 1.0]], dtype=torch.float64)
    mean = torch.tensor([-60.0, 0.0176], dtype=torch.float64)
    covariance = correlation * torch.outer(sds, sds)
    init = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    trace = ebm_samplers.sample(Gaussian(mean, covariance), "mala", init=init, n_steps=500, warmup=500, seed=9)
    assert float(trace.stats["step_size"][:, -1].median()) > 0.3
    assert_bivariate_gaussian_moments(trace.draws / sds, mean / sds, correlation)


def test_dense_hmc_samples_a_strongly_correlated_gaussian():
    mean = torch.tensor([0.5, -0.5])
    covariance = torch.tensor([[1.0, 0.99], [0.99, 1.0]])
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance), "hmc", n_chains=32, n_steps=600, warmup=400, seed=8, metric="dense"
    )
    assert trace.attrs["metric"] == "dense"
    assert_bivariate_gaussian_moments(trace.draws, mean, covariance)


def test_a_dense_metric_runs_on_the_torch_path_with_a_numba_energy():
    from energies.numba_targets import gaussian

    energy = gaussian([0.0, 0.0], [[1.0, 0.5], [0.5, 1.0]])
    trace = ebm_samplers.sample(energy, "mala", n_chains=4, n_steps=20, warmup=200, seed=0, metric="dense")
    assert "backend" not in trace.attrs and trace.attrs["metric"] == "dense"
    assert ebm_samplers.sample(energy, "mala", n_chains=4, n_steps=20, seed=0).attrs["backend"] == "numba"
    with pytest.raises(ValueError, match="NumbaEnergy"):
        ebm_samplers.sample(energy, "hmc", n_chains=4, n_steps=20, metric="dense", backend="numba")


@pytest.mark.parametrize("sampler, params, calls_per_step", [("mala", {}, 1), ("hmc", {"n_leapfrog": 3}, 3)])
@pytest.mark.parametrize("interrupt_at", [130, 170])  # during warm-up after the first window, and after
def test_a_run_with_a_dense_metric_resumes_bit_identically(tmp_path, sampler, params, calls_per_step, interrupt_at):
    run = dict(n_chains=5, n_steps=100, warmup=150, thin=2, seed=4, step_size=0.3, metric="dense", **params)
    full = ebm_samplers.sample(QuarticWell(), sampler, **run)
    path = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        failing = QuarticWell(fail_after=5 + calls_per_step * interrupt_at)
        ebm_samplers.sample(failing, sampler, checkpoint=path, checkpoint_every=25, **run)
    assert read_checkpoint(path)["step"] == interrupt_at // 25 * 25
    _assert_same_trace(ebm_samplers.sample(QuarticWell(), sampler, checkpoint=path, checkpoint_every=25, **run), full)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_compile_step_runs_the_adapted_metric_as_the_eager_step_does(metric):
    # warm-up settles the metric, then the compiled step draws and moves with it: same decisions, draws equal up
    # to the rounding of fused arithmetic. One shared step size: a step per chain takes the rounding of that
    # chain's own acceptance into its recursion (relative 4e-7 after 5 steps, 4e-4 after 20), so decisions
    # made near the boundary eventually differ
    energy = Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    run = dict(n_chains=16, n_steps=40, warmup=200, seed=3, metric=metric, step_size_per_chain=False)
    eager, compiled = (ebm_samplers.sample(energy, "mala", **run, compile_step=c) for c in (False, True))
    assert compiled.attrs["metric"] == metric
    assert torch.equal(eager.stats["accepted"], compiled.stats["accepted"])
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)


def test_underdamped_langevin_with_a_dense_metric_keeps_baoabs_exact_gaussian_marginal():
    # BAOAB's position marginal is exact on a Gaussian for any stable step, whatever the (fixed) metric, so
    # after warm-up settles the dense metric (and rescales the momentum at each window) moments match exactly
    mean = torch.tensor([0.5, -0.5])
    covariance = torch.tensor([[1.0, 0.95], [0.95, 1.0]]) * 4.0
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance), "underdamped_langevin", n_chains=64, n_steps=400, warmup=300, seed=9,
        step_size=0.5, metric="dense",
    )  # fmt: skip
    assert trace.attrs["metric"] == "dense"
    assert_bivariate_gaussian_moments(trace.draws, mean, covariance)


def test_the_default_metric_is_dense_up_to_100_coordinates_and_diag_above():
    from ebm_samplers.kernels._kinetic import DENSE_MAX_DIM, resolve_metric
    from energies.numba_targets import gaussian

    assert DENSE_MAX_DIM == 100
    assert resolve_metric(None, torch.zeros(2, 10, 10)) == "dense"  # 100 entries
    assert resolve_metric(None, torch.zeros(2, 101)) == "diag"
    assert resolve_metric("diag", torch.zeros(2, 3)) == "diag"
    assert resolve_metric(None, torch.zeros(2, 2), gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])) == "diag"
    for d, expected in ((3, "dense"), (101, "diag")):
        for sampler in ("hmc", "mala"):
            trace = ebm_samplers.sample(Gaussian(torch.zeros(d)), sampler, n_chains=4, n_steps=2, warmup=150, seed=0)
            assert trace.attrs["metric"] == expected, (sampler, d)
    # without warm-up the identity stays a diagonal of ones (no dense products for nothing)
    kernel = ebm_samplers.get_sampler("hmc")
    state = kernel.init(torch.zeros(4, 3), Gaussian(torch.zeros(3)))
    assert isinstance(state.inverse_mass, torch.Tensor) and kernel._metric_in_use == "dense"
