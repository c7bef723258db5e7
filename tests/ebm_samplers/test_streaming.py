"""Streaming traces (chunk files on disk) and running moments (keep="moments")."""

import warnings

import h5py
import pytest
import torch
import xarray as xr

import ebm_samplers
from ebm_samplers import Trace
from ebm_samplers.moments import Moments
from energies import GaussianMixture

RUN = dict(n_chains=4, n_steps=250, warmup=20, thin=2, seed=1, step_size=0.3)


@pytest.fixture(scope="module")
def in_memory():
    return ebm_samplers.sample(GaussianMixture(), "mala", **RUN)


def test_a_streamed_trace_equals_the_in_memory_one(tmp_path, in_memory):
    folder = tmp_path / "stream"
    streamed = ebm_samplers.sample(GaussianMixture(), "mala", stream=folder, stream_every=50, **RUN)
    assert sorted(p.name for p in folder.glob("chunk-*.nc")) == [f"chunk-{i:012d}.nc" for i in (0, 50, 100)]
    for trace in (streamed, Trace.load(folder)):
        assert torch.equal(trace.draws, in_memory.draws)
        assert set(trace.stats) == set(in_memory.stats)
        for name, values in in_memory.stats.items():
            assert trace.stats[name].dtype == values.dtype and torch.equal(trace.stats[name], values), name
        assert trace.attrs["n_draws_complete"] == 125 and trace.attrs["complete"]


def test_chunk_files_are_netcdf_in_the_arviz_layout(tmp_path, in_memory):
    folder = tmp_path / "stream"
    ebm_samplers.sample(GaussianMixture(), "mala", stream=folder, stream_every=50, **RUN)
    posterior = xr.open_dataset(folder / "chunk-000000000050.nc", group="posterior", engine="h5netcdf")
    assert posterior["x"].dims == ("chain", "draw", "x_dim_0")
    assert posterior["draw"].values.tolist() == list(range(50, 100))
    assert torch.equal(torch.from_numpy(posterior["x"].values), in_memory.draws[:, 50:100])
    stats = xr.open_dataset(folder / "chunk-000000000050.nc", group="sample_stats", engine="h5netcdf")
    assert stats["accepted"].dtype == bool


def test_an_unfinished_stream_reads_up_to_its_last_complete_chunk(tmp_path, in_memory):
    folder = tmp_path / "stream"
    ebm_samplers.sample(GaussianMixture(), "mala", stream=folder, stream_every=50, **RUN)
    (folder / "chunk-000000000100.nc").unlink()  # as if killed while writing the third chunk:
    (folder / ".chunk-000000000100.nc.x1y2.tmp").write_bytes(b"\x89HDF half written")  # its temporary file
    with pytest.warns(UserWarning, match="holds 100 of 125 draws: the run did not finish"):
        partial = Trace.load(folder)
    assert partial.attrs["n_draws_complete"] == 100 and not partial.attrs["complete"]
    assert torch.equal(partial.draws, in_memory.draws[:, :100])


def test_a_new_run_replaces_an_old_stream(tmp_path):
    folder = tmp_path / "stream"
    ebm_samplers.sample(GaussianMixture(), "mala", stream=folder, stream_every=10, **RUN)
    fewer = {**RUN, "n_steps": 40}
    trace = ebm_samplers.sample(GaussianMixture(), "mala", stream=folder, stream_every=10, **fewer)
    assert trace.n_draws == 20 and len(list(folder.glob("chunk-*.nc"))) == 2


def test_stream_errors_are_clear(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; streaming writes a folder"):
        ebm_samplers.sample(GaussianMixture(), "mala", stream=tmp_path / "file", **RUN)
    with pytest.raises(ValueError, match="not an ebm-samplers stream"):
        Trace.load(tmp_path)
    with pytest.raises(ValueError, match="stream_every must be an integer >= 1"):
        ebm_samplers.sample(GaussianMixture(), "mala", stream=tmp_path / "s", stream_every=0, **RUN)


def test_moments_equal_the_moments_of_the_draws(in_memory):
    moments = ebm_samplers.sample(GaussianMixture(), "mala", keep="moments", **RUN)
    assert isinstance(moments, Moments) and moments.count == 125 and moments.n_chains == 4
    draws = in_memory.draws.double()
    torch.testing.assert_close(moments.mean, draws.mean(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(moments.variance, draws.var(1), rtol=1e-12, atol=1e-12)
    for name, values in in_memory.stats.items():
        torch.testing.assert_close(moments.stats_mean[name], values.double().mean(1), rtol=0, atol=1e-12)
    assert moments.attrs["sampler"] == "mala" and moments.attrs["nonfinite_total"] == 0


def test_moments_with_a_stream_keep_both(tmp_path, in_memory):
    moments = ebm_samplers.sample(GaussianMixture(), "mala", keep="moments", stream=tmp_path / "s", **RUN)
    assert isinstance(moments, Moments)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished stream gives no warning
        assert torch.equal(Trace.load(tmp_path / "s").draws, in_memory.draws)
    with h5py.File(tmp_path / "s" / "chunk-000000000000.nc") as file:
        assert file["posterior"]["x"].shape == (4, 125, 2)


def test_moments_arguments_are_checked():
    with pytest.raises(ValueError, match="keep must be 'draws' or 'moments'; got 'all'"):
        ebm_samplers.sample(GaussianMixture(), "mala", keep="all", **RUN)
    with pytest.raises(ValueError, match="needs at least 2 kept draws"):
        ebm_samplers.sample(GaussianMixture(), "mala", keep="moments", n_chains=2, warmup=0, n_steps=1)
