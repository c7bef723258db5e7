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
