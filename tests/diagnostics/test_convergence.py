"""convergence_figures: equal to ArviZ 1.x, and ESS / R-hat against AR(1) theory."""

import arviz as az
import numpy as np
import pytest

from diagnostics import convergence_figures
from tests.helpers import Z_999


def _arviz(x):
    return {
        "r_hat": az.rhat(x),
        "ess_bulk": az.ess(x),
        "ess_tail": az.ess(x, method="tail", prob=(0.05, 0.95)),
        "mcse_mean": az.mcse(x),
        "mcse_sd": az.mcse(x, method="sd"),
    }


def ar1(rng, rho, shape):
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t along axis 1 (unit marginal variance)."""
    noise = rng.normal(size=shape)
    x = np.empty(shape)
    x[:, 0] = noise[:, 0]
    scale = np.sqrt(1 - rho**2)
    for t in range(1, shape[1]):
        x[:, t] = rho * x[:, t - 1] + scale * noise[:, t]
    return x


def test_figures_equal_arviz_including_edge_cases():
    rng = np.random.default_rng(0)
    tied = rng.normal(size=(4, 101, 4))  # odd draw count: the split drops the middle draw
    tied[1] += 1.0
    tied[:, :, 1] = np.round(tied[:, :, 1], 1)  # many ties
    tied[3, :, 2] = 0.5  # one constant chain
    tied[:, :, 3] = 2.0  # a constant coordinate
    cases = [tied, rng.normal(size=(1, 50, 2)), rng.normal(size=(3, 8, 1)), ar1(rng, 0.97, (4, 400, 3))]
    for x in cases:
        ours = convergence_figures(x)
        for name, expected in _arviz(x).items():
            np.testing.assert_allclose(ours[name], expected, rtol=1e-9, atol=1e-12, err_msg=f"{name} {x.shape}")
        np.testing.assert_allclose(ours["mean"], x.mean(axis=(0, 1)))
        np.testing.assert_allclose(ours["sd"], x.reshape(-1, x.shape[2]).std(axis=0, ddof=1))


def _exact_ess(rho, n_chains, n_draws):
    """Chains x draws / (1 + 2 sum_k (1 - k/n) rho^k): the exact variance of the mean of stationary AR(1) chains."""
    k = np.arange(1, n_draws)
    return n_chains * n_draws / (1 + 2 * np.sum((1 - k / n_draws) * rho**k))


def _check_ess_against_theory(rho, n_chains, n_draws, n_replicates, seed):
    x = ar1(np.random.default_rng(seed), rho, (n_chains, n_draws, n_replicates))
    figures = convergence_figures(x)
    truth = _exact_ess(rho, n_chains, n_draws)
    # ESS of the mean implied by the MCSE: sd^2 / mcse^2. Geyer's truncated estimator has a finite-sample
    # bias of order (truncation lag) / n, so the tolerance adds 1% to the Monte Carlo error of the average.
    for name, estimates in (
        ("ess(mean)", (figures["sd"] / figures["mcse_mean"]) ** 2),
        ("ess_bulk", figures["ess_bulk"]),
    ):
        mcse = estimates.std(ddof=1) / np.sqrt(n_replicates)
        gap = abs(estimates.mean() - truth)
        assert gap < Z_999 * mcse + 0.01 * truth, (
            f"{name}: {estimates.mean():.1f} vs theory {truth:.1f}, MCSE {mcse:.1f}"
        )
    # and the MCSE really is the sd of the estimate: the replicate means scatter as predicted
    means = figures["mean"]
    predicted = np.sqrt(np.mean(figures["mcse_mean"] ** 2))
    observed = np.sqrt(np.mean(means**2))  # the true mean is 0
    # observed^2 * R / predicted^2 is ~ chi^2_R / R; its sd is sqrt(2 / R)
    assert abs(observed**2 / predicted**2 - 1) < Z_999 * np.sqrt(2 / n_replicates) + 0.03


def test_ess_matches_ar1_theory():
    _check_ess_against_theory(rho=0.5, n_chains=4, n_draws=1000, n_replicates=300, seed=1)


@pytest.mark.slow
def test_ess_matches_ar1_theory_strong_autocorrelation():
    _check_ess_against_theory(rho=0.9, n_chains=8, n_draws=4000, n_replicates=500, seed=2)


def test_rhat_is_near_one_for_stationary_chains_and_grows_with_an_offset():
    rng = np.random.default_rng(3)
    x = ar1(rng, 0.5, (4, 1000, 200))
    r_hat = convergence_figures(x)["r_hat"]
    # split R-hat^2 ~ 1 + (tau - 1) / (n / 2) for stationary chains: ~1.002 here, so 1.01 is far out
    assert np.mean(r_hat > 1.01) < 0.02 and np.all(r_hat < 1.02)
    offsets = [0.0, 0.25, 0.5, 1.0, 2.0]
    shifted = [convergence_figures(x[:, :, :50] + np.array([0, 0, d, d])[:, None, None])["r_hat"] for d in offsets]
    medians = [np.median(r) for r in shifted]
    assert medians == sorted(medians), medians
    assert np.all(shifted[-1] > 1.1) and np.all(shifted[2] > 1.01)


def test_too_few_draws_is_an_error():
    with pytest.raises(ValueError, match="at least 4"):
        convergence_figures(np.zeros((4, 3, 1)))
