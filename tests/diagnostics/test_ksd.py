"""KSD: the closed-form Stein kernel, ~0 on exact samples, growing with the error, and a calibrated bootstrap test."""

import numpy as np
import pytest
import torch

from diagnostics import ksd
from diagnostics._stein_kernel import stein_sum
from diagnostics.ksd import stein_kernel
from energies import Gaussian, GaussianMixture


def _stein_by_autograd(x, y, score_x, score_y, c, beta):
    """h(x, y) = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k), by autograd."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    k = (c * c + ((x - y) ** 2).sum()) ** beta
    (grad_x,) = torch.autograd.grad(k, x, create_graph=True)
    (grad_y,) = torch.autograd.grad(k, y, create_graph=True)
    trace = sum(torch.autograd.grad(grad_x[i], y, retain_graph=True)[0][i] for i in range(len(x)))
    return float((score_x @ score_y * k + score_x @ grad_y + score_y @ grad_x + trace).detach())


@pytest.mark.parametrize(("c", "beta"), [(1.0, -0.5), (0.7, -0.3)])
def test_stein_kernel_matches_its_definition(c, beta):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    score = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    matrix = stein_kernel(x, x, score, score, c, beta)
    expected = [[_stein_by_autograd(x[i], x[j], score[i], score[j], c, beta) for j in range(4)] for i in range(4)]
    np.testing.assert_allclose(matrix.numpy(), expected, rtol=1e-12, atol=1e-12)
    # the fused numba loop sums the same matrix
    assert stein_sum(x.numpy(), score.numpy(), c, beta) == pytest.approx(float(matrix.sum()), rel=1e-12)


def test_numba_and_torch_block_paths_agree_with_bootstrap_weights():
    """The CPU path (fused numba) and the GPU path (torch row blocks) give the same sums; run here on the CPU."""
    from diagnostics.ksd import _stein_sums_numba, _stein_sums_torch

    generator = torch.Generator().manual_seed(5)
    x = torch.randn(130, 2, generator=generator, dtype=torch.float64)
    score = -x + 0.1
    weights = torch.randint(0, 2, (130, 7), generator=generator).double() * 2 - 1
    for block_size in (16, 1000):
        numba_total, numba_boot = _stein_sums_numba(x, score, 1.0, -0.5, block_size, weights)
        torch_total, torch_boot = _stein_sums_torch(x, score, 1.0, -0.5, block_size, weights)
        assert numba_total == pytest.approx(torch_total, rel=1e-10)
        np.testing.assert_allclose(numba_boot.numpy(), torch_boot.numpy(), rtol=1e-10)
    assert _stein_sums_numba(x, score, 1.0, -0.5, 16, None)[0] == pytest.approx(numba_total, rel=1e-10)


def test_score_energy_callable_and_energy_object_agree():
    target = Gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    x = target.sample(300, torch.Generator().manual_seed(1)).double()
    by_energy = ksd(x, target)
    by_callable = ksd(x, lambda z: target(z))  # autograd score
    by_score = ksd(x, lambda z: target.score(z))
    assert by_energy.v_statistic == pytest.approx(by_callable.v_statistic, rel=1e-10)
    assert by_energy.v_statistic == pytest.approx(by_score.v_statistic, rel=1e-10)
    assert by_energy.ksd == pytest.approx(np.sqrt(by_energy.v_statistic))
    # U excludes the diagonal: n (n - 1) U = n^2 V - sum_i h_ii
    assert by_energy.u_statistic < by_energy.v_statistic


def test_ksd_is_near_zero_for_exact_samples_and_grows_with_the_error():
    target = Gaussian([0.0, 0.0])
    generator = torch.Generator().manual_seed(2)
    exact = ksd(target.sample(2000, generator).double(), target)
    # E[U] = 0 for exact samples; its sd is O(1/n)
    assert abs(exact.u_statistic) < 0.005
    worse = [ksd(target.sample(2000, generator).double() + shift, target).ksd for shift in (0.1, 0.3, 1.0)]
    assert exact.ksd < worse[0] < worse[1] < worse[2]


def test_bootstrap_rejects_shifted_narrow_and_missing_mode_but_not_exact_samples():
    """Power at n = 400. The mixture's modes overlap (means +-(0.75, 0.75), covariance 0.5 I): for well
    separated modes a score-based discrepancy is nearly blind to a missing mode (Wenliang & Kanagawa 2020;
    on the default mixture p ~ 0.3 here), which is what `mode_coverage` is for."""
    generator = torch.Generator().manual_seed(3)
    gaussian = Gaussian([0.0, 0.0])
    mixture = GaussianMixture(means=[[-0.75, -0.75], [0.75, 0.75]])
    n = 400
    one_mode = Gaussian([0.75, 0.75], 0.5).sample(n, generator).double()
    cases = {
        "shifted": (gaussian.sample(n, generator).double() + 0.4, gaussian),
        "too narrow": (0.6 * gaussian.sample(n, generator).double(), gaussian),
        "one mode missing": (one_mode, mixture),
    }
    for name, (samples, target) in cases.items():
        result = ksd(samples, target, n_bootstrap=300, generator=generator)
        assert result.p_value < 0.05, f"{name}: {result}"
    # calibration at fixed n: exact samples are rejected at the nominal 5% rate
    rejected = sum(
        ksd(gaussian.sample(200, generator).double(), gaussian, n_bootstrap=200, generator=generator).p_value < 0.05
        for _ in range(40)
    )
    assert rejected <= 7  # 0.999 quantile of Binomial(40, 0.05)
    mixture_exact = ksd(mixture.sample(n, generator).double(), mixture, n_bootstrap=300, generator=generator)
    assert mixture_exact.ksd < ksd(one_mode, mixture).ksd


def test_bad_input_is_explained():
    target = Gaussian([0.0, 0.0])
    with pytest.raises(ValueError, match="expected a score"):
        ksd(torch.zeros(5, 2), lambda z: z.sum())
    with pytest.raises(ValueError, match=r"shape \(n, \*event\); got shape \(5,\) \(one number per sample: scalar"):
        ksd(torch.zeros(5), target)
    with pytest.raises(ValueError, match="beta"):
        ksd(torch.zeros(5, 2), target, beta=0.5)
    with pytest.raises(TypeError, match="score function"):
        ksd(torch.zeros(5, 2), 3.0)
    with pytest.raises(ValueError, match="NaN"):
        ksd(torch.full((5, 2), float("nan")), target)
    with pytest.raises(ValueError, match=r"samples of shape \(5, 3\) do not match the target's event shape \(2,\)"):
        ksd(torch.zeros(5, 3), target)
    with pytest.raises(ValueError, match=r"shape \(4, 5, 2\) do not match.*pass the Trace"):
        ksd(torch.zeros(4, 5, 2), GaussianMixture())  # (chain, draw, event) draws not pooled


def test_trace_datatree_and_array_give_the_same_ksd():
    import ebm_samplers
    from diagnostics import mode_coverage

    mixture = GaussianMixture()
    trace = ebm_samplers.sample(mixture, "mala", n_chains=4, warmup=0, n_steps=100, seed=0, step_size=0.3)
    pooled = trace.draws.reshape(-1, 2)
    expected = ksd(pooled, mixture).v_statistic
    assert ksd(trace, mixture).v_statistic == pytest.approx(expected, rel=1e-12)
    assert ksd(trace.to_arviz(), mixture).v_statistic == pytest.approx(expected, rel=1e-6)  # float32 draws
    from_tree = mode_coverage(trace.to_arviz(), mixture).table
    np.testing.assert_allclose(from_tree["fraction"], mode_coverage(trace, mixture).table["fraction"], rtol=1e-6)


def test_null_quantile_is_the_reference_the_p_value_is_judged_by():
    target = Gaussian([0.0, 0.0])
    exact = target.sample(300, torch.Generator().manual_seed(0)).double()
    for samples in (exact, exact + 0.3):
        result = ksd(samples, target, n_bootstrap=400, generator=torch.Generator().manual_seed(1))
        assert result.null_quantile > 0
        # p < 0.05 exactly when the KSD exceeds the bootstrap null's 95% quantile (up to the bootstrap's grain)
        assert (result.p_value < 0.05) == (result.ksd > result.null_quantile)
        assert "95% of the null below" in str(result)
    assert result.p_value < 0.05  # the shifted sample is rejected
    assert ksd(exact, target).null_quantile is None
