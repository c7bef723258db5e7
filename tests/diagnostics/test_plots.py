"""Plots are written as non-trivial PNG files for traces, DataTrees, energies and replay buffers."""

import arviz as az
import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics.plots import convergence_plots, plot_energy_landscape, plot_replay_buffer
from energies import GaussianMixture


def _is_png(path, min_bytes=5_000):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > min_bytes


def test_convergence_plots_for_a_trace_and_for_a_hamiltonian_datatree(tmp_path):
    trace = ebm_samplers.sample(GaussianMixture(), "mala", n_chains=4, warmup=0, n_steps=200, seed=0, step_size=0.3)
    written = convergence_plots(trace, tmp_path / "trace")
    assert [p.name for p in written] == ["trace.png", "rank.png", "autocorr.png"]
    assert all(_is_png(p) for p in written)

    rng = np.random.default_rng(0)
    tree = az.from_dict(
        {
            "posterior": {"mu": rng.normal(size=(4, 300)), "theta": rng.normal(size=(4, 300, 5))},
            "sample_stats": {"energy": rng.normal(size=(4, 300)), "diverging": np.zeros((4, 300), dtype=bool)},
        }
    )
    written = convergence_plots(tree, tmp_path / "tree", max_coordinates=3)
    assert [p.name for p in written] == ["trace.png", "rank.png", "autocorr.png", "energy.png"]
    assert all(_is_png(p) for p in written)


def test_energy_landscape_and_replay_buffer(tmp_path):
    mixture = GaussianMixture()
    samples = mixture.sample(500, torch.Generator().manual_seed(0))
    assert _is_png(plot_energy_landscape(mixture, samples, tmp_path / "landscape.png"), 20_000)
    # a plain callable has no log_prob: contours and histograms only
    banana = lambda x: 0.5 * x[:, 0] ** 2 + 0.5 * (x[:, 1] - x[:, 0] ** 2) ** 2  # noqa: E731
    assert _is_png(plot_energy_landscape(banana, samples, tmp_path / "banana.png"), 20_000)
    ages = torch.arange(500) % 37
    assert _is_png(plot_replay_buffer(samples, tmp_path / "buffer.png", ages=ages, energies=mixture(samples)))
    assert _is_png(plot_replay_buffer(torch.rand(30, 3, 8, 8), tmp_path / "images.png"))
    with pytest.raises(ValueError, match="needs 2-D samples"):
        plot_energy_landscape(mixture, torch.zeros(10, 3), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="3 ages for 500"):
        plot_replay_buffer(samples, tmp_path / "bad.png", ages=torch.arange(3))


def test_one_chain_has_no_rank_plot(tmp_path):
    written = convergence_plots(np.random.default_rng(1).normal(size=(1, 200, 2)), tmp_path)
    assert [p.name for p in written] == ["trace.png", "autocorr.png"]


def test_plots_choose_coordinates_and_say_when_not_all_are_drawn(tmp_path, capsys):
    rng = np.random.default_rng(2)
    tree = az.from_dict(
        {"posterior": {"mu": rng.normal(size=(4, 200)), "theta": rng.normal(size=(4, 200, 5))}},
        dims={"theta": ["school"]},
        coords={"school": list("ABCDE")},
    )
    convergence_plots(tree, tmp_path / "default", max_coordinates=2)
    assert "the plots show 2 of 6 coordinates (mu, theta[A]); pick others with var_names=" in capsys.readouterr().out
    written = convergence_plots(tree, tmp_path / "theta", var_names=["theta"])
    assert all(_is_png(p) for p in written) and capsys.readouterr().out == ""
    convergence_plots(tree, tmp_path / "two", coordinates=["theta[C]", "mu"])
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match=r"var_names: no variable 'tau'; the variables are \['mu', 'theta'\]"):
        convergence_plots(tree, tmp_path / "bad", var_names=["tau"])
    with pytest.raises(
        ValueError, match=r"coordinates: no coordinate 'theta\[0\]'; they are labelled like mu, theta\[A\]"
    ):
        convergence_plots(tree, tmp_path / "bad", coordinates=["theta[0]"])


def test_trace_figure_has_one_panel_row_per_coordinate_and_a_chain_legend():
    from diagnostics.plots import _chain_colours, _trace_figure

    draws = np.random.default_rng(3).normal(size=(3, 50, 2))
    figure = _trace_figure(draws, ["a", "b"], _chain_colours(3), "3 chains x 50 draws")
    axes = figure.axes
    assert len(axes) == 4 and [axes[0].get_ylabel(), axes[2].get_ylabel()] == ["a", "b"]
    assert [len(axis.lines) for axis in (axes[0], axes[2])] == [3, 3]  # one line per chain in its own panel
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["chain 0", "chain 1", "chain 2"]
    assert axes[2].get_xlabel() == "draw (after warm-up)" and axes[3].get_ylabel() == "density"
    assert figure.get_suptitle().startswith("Trace and per-chain marginals")
