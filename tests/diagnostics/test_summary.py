"""diagnostics.summary on arrays, DataTrees and Traces, against known behaviour."""

import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics import summary
from energies import Gaussian


def test_independent_draws_give_rhat_one_and_full_ess():
    draws = np.random.default_rng(0).normal(size=(4, 1000, 3))
    table = summary(draws)
    assert list(table.index) == ["x[0]", "x[1]", "x[2]"]
    assert {"mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat", "flags"} <= set(table.columns)
    assert (table["r_hat"] < 1.01).all()
    assert (table["ess_bulk"] > 3000).all()
    # MCSE of the mean of 4000 iid N(0,1) draws is 1/sqrt(4000)
    np.testing.assert_allclose(table["mcse_mean"], 1 / np.sqrt(4000), rtol=0.15)
    assert (table["flags"] == "").all()


def test_chains_in_different_places_are_flagged():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 500, 1)) + np.array([0.0, 0.0, 3.0, 3.0])[:, None, None]
    table = summary(draws)
    assert table.loc["x[0]", "r_hat"] > 1.5
    assert "r_hat>1.01" in table.loc["x[0]", "flags"]


def test_trace_datatree_and_tensor_agree():
    trace = ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=4, warmup=0, n_steps=200, seed=0, step_size=0.5)
    from_trace = summary(trace)
    from_tree = summary(trace.to_arviz())
    from_tensor = summary(trace.draws)
    np.testing.assert_allclose(from_trace["r_hat"], from_tree["r_hat"])
    np.testing.assert_allclose(from_trace["ess_bulk"], from_tensor["ess_bulk"])


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="chain axis"):
        summary(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        summary(np.full((2, 10), np.nan))
    with pytest.raises(TypeError, match="expected a Trace"):
        summary("trace.nc")
    with pytest.raises(ValueError, match="at least 4"):
        summary(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="expected real numbers; got dtype complex128"):
        summary(np.ones((4, 10)) + 1j)  # its imaginary part would be dropped with only a numpy warning
    with pytest.raises(TypeError, match="expected real numbers; got dtype object"):
        summary(np.full((4, 10), "a", dtype=object))


def test_quantiles_and_hdi_columns():
    draws = np.random.default_rng(2).normal(size=(4, 1000, 2))
    table = summary(draws, hdi_prob=0.9)
    assert list(table.columns) == [
        "mean", "sd", "mcse_mean", "5%", "50%", "95%", "hdi90_lb", "hdi90_ub", "ess_bulk", "ess_tail", "r_hat", "flags"
    ]  # fmt: skip
    np.testing.assert_allclose(table["5%"], np.quantile(draws.reshape(-1, 2), 0.05, axis=0))
    # the 90% HDI of N(0, 1) is +-1.645; the sd of an empirical 5% quantile from 4000 iid draws is about 0.034
    np.testing.assert_allclose(table["hdi90_lb"], -1.645, atol=4 * 0.034)
    np.testing.assert_allclose(table["hdi90_ub"], 1.645, atol=4 * 0.034)
    assert list(summary(draws, quantiles=(0.025, 0.975)).columns[3:5]) == ["2.5%", "97.5%"]
    assert "5%" not in summary(draws, quantiles=()).columns


def test_hdi_is_the_shortest_interval_holding_the_share():
    from diagnostics.summary import hdi

    skewed = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 9.0])[:, None]
    low, high = hdi(skewed, 0.6)  # 4 of 6 draws: [0, 0.3] is far shorter than any window reaching 5 or 9
    assert (low[0], high[0]) == (0.0, 0.3)


@pytest.mark.parametrize("bad", [(0.05, 1.0), (0.0, 0.5), (-0.1,), (0.5, 1.5), ("a",)])
def test_quantiles_outside_the_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        summary(np.zeros((4, 10)), quantiles=bad)


def test_hdi_prob_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"hdi_prob must be a probability strictly between 0 and 1; got 94"):
        summary(np.zeros((4, 10)), hdi_prob=94)


def test_printed_table_rounds_and_never_truncates():
    rng = np.random.default_rng(3)
    draws = 5188.117540 + rng.normal(size=(4, 200, 70)) * 1e-3
    text = str(summary(draws))
    assert "..." not in text and all(f"x[{k}]" in text for k in range(70))
    assert "5188.117540" not in text and "5188" in text
    assert all(column in text.splitlines()[0] for column in ("mean", "95%", "ess_tail", "r_hat", "flags"))


def test_an_undefined_r_hat_is_reported_as_undefined_not_above_threshold():
    draws = np.random.default_rng(4).normal(size=(1, 500, 1))  # one chain: R-hat has nothing to compare
    table = summary(draws)
    assert np.isnan(table.loc["x[0]", "r_hat"])
    assert "r_hat>1.01" not in table.loc["x[0]", "flags"] and "r_hat undefined" in table.loc["x[0]", "flags"]
    assert "undefined" in str(table)
