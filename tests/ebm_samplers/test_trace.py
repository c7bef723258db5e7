"""Trace -> ArviZ DataTree, and the netCDF round trip."""

import os

import pytest
import torch

import ebm_samplers
from ebm_samplers import Trace
from energies import GaussianMixture


@pytest.fixture(scope="module")
def trace():
    return ebm_samplers.sample(GaussianMixture(), "mala", n_chains=4, n_steps=60, warmup=10, seed=0, step_size=0.2)


def test_trace_layout(trace):
    assert trace.draws.shape == (4, 60, 2)
    assert set(trace.stats) >= {"energy", "acceptance_rate", "accepted", "step_size"}
    assert all(v.shape == (4, 60) for v in trace.stats.values())
    assert trace.stats["accepted"].dtype == torch.bool
    torch.testing.assert_close(trace.stats["energy"], GaussianMixture()(trace.draws.reshape(-1, 2)).reshape(4, 60))


def test_to_arviz_gives_posterior_and_sample_stats(trace):
    tree = trace.to_arviz()
    assert {"posterior", "sample_stats"} <= set(tree.children)
    assert tree["posterior"]["x"].dims == ("chain", "draw", "x_dim_0")
    assert tree["sample_stats"]["acceptance_rate"].shape == (4, 60)


def test_netcdf_round_trip_is_exact(trace, tmp_path):
    path = trace.save(tmp_path / "nested" / "trace.nc")
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    back = Trace.load(path)
    assert torch.equal(back.draws, trace.draws)
    assert set(back.stats) == set(trace.stats)
    for name, values in trace.stats.items():
        assert torch.equal(back.stats[name], values), name
    assert back.attrs == trace.attrs


def test_load_explains_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trace file"):
        Trace.load(tmp_path / "missing.nc")


def test_trace_rejects_mismatched_stats():
    with pytest.raises(ValueError, match=r"expected \(chain, draw\)"):
        Trace(draws=torch.zeros(2, 5, 1), stats={"energy": torch.zeros(2, 4)})
