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
    assert set(trace.stats) >= {"potential_energy", "acceptance_rate", "accepted", "step_size"}
    assert all(v.shape == (4, 60) for v in trace.stats.values())
    assert trace.stats["accepted"].dtype == torch.bool
    torch.testing.assert_close(
        trace.stats["potential_energy"], GaussianMixture()(trace.draws.reshape(-1, 2)).reshape(4, 60)
    )


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
    (tmp_path / "notes.txt").write_text("not a trace")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "model.pt")
    for foreign in ("notes.txt", "model.pt"):
        with pytest.raises(ValueError, match=rf"{foreign} is not a netCDF file; expected a trace written by"):
            Trace.load(tmp_path / foreign)


def test_save_to_a_folder_is_explained_and_missing_folders_are_created(trace, tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a folder; expected the path of a file to write"):
        trace.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    assert Trace.load(trace.save(tmp_path / "new" / "folder" / "trace.nc")).n_draws == trace.n_draws


def test_trace_rejects_draws_and_stats_that_are_not_tensors():
    with pytest.raises(TypeError, match=r"Trace.draws must be a torch.Tensor; got ndarray"):
        Trace(draws=torch.zeros(2, 5, 1).numpy())
    with pytest.raises(TypeError, match=r"Trace.stats\['energy'\] must be a torch.Tensor; got list"):
        Trace(draws=torch.zeros(2, 5, 1), stats={"energy": [0.0] * 10})


def test_trace_rejects_mismatched_stats():
    with pytest.raises(ValueError, match=r"expected \(chain, draw\)"):
        Trace(draws=torch.zeros(2, 5, 1), stats={"energy": torch.zeros(2, 4)})


def test_the_hamiltonian_is_arviz_energy_and_comes_back_under_its_own_name(tmp_path):
    from energies import Gaussian

    hmc = ebm_samplers.sample(Gaussian([0.0, 0.0]), "hmc", n_chains=4, n_steps=40, seed=0, step_size=0.3)
    assert {"hamiltonian", "potential_energy"} <= set(hmc.stats) and "energy" not in hmc.stats
    stats = hmc.to_arviz()["sample_stats"]
    assert "energy" in stats.data_vars and "hamiltonian" not in stats.data_vars
    assert (stats["energy"].values == hmc.stats["hamiltonian"].numpy()).all()
    back = Trace.load(hmc.save(tmp_path / "hmc.nc"))
    assert set(back.stats) == set(hmc.stats) and torch.equal(back.stats["hamiltonian"], hmc.stats["hamiltonian"])
    streamed = ebm_samplers.sample(
        Gaussian([0.0, 0.0]), "hmc", n_chains=4, n_steps=40, seed=0, step_size=0.3, stream=tmp_path / "stream"
    )
    assert torch.equal(streamed.stats["hamiltonian"], hmc.stats["hamiltonian"])


def test_a_trace_without_a_hamiltonian_exports_no_arviz_energy(trace, tmp_path):
    assert "energy" not in trace.to_arviz()["sample_stats"].data_vars
    # a file written before the rename: its "energy" was E(x), so it is read back as potential_energy
    old = Trace(draws=trace.draws, stats={"energy": trace.stats["potential_energy"]}, attrs={"sampler": "mala"})
    assert set(Trace.load(old.save(tmp_path / "old.nc")).stats) == {"potential_energy"}
    # ArviZ's "energy" from elsewhere (no sampler attribute of ours) is a Hamiltonian
    foreign = Trace(draws=trace.draws, stats={"energy": trace.stats["potential_energy"]})
    assert set(Trace.load(foreign.save(tmp_path / "foreign.nc")).stats) == {"hamiltonian"}
