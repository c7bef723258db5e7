"""Pictures that show whether sampling worked, written as PNG files without a display.

Own figures use `matplotlib.figure.Figure` directly (no pyplot state, no backend switch); ArviZ's plots
go through pyplot, which falls back to Agg on a headless machine (the CLI selects Agg explicitly).

* `convergence_plots`: ArviZ trace + marginals, rank ECDF differences, autocorrelation, and the energy
  plot when there is a Hamiltonian per draw (sample_stats "energy"). The rank plot is drawn from thinned draws, so
  that autocorrelation does not fake non-uniformity; the thinning step is the largest within-chain
  autocorrelation time N / ESS over single chains. (ArviZ's `thin=True` uses the pooled ESS, which
  collapses to a handful of draws exactly when chains disagree and the plot matters most.)
  The first `max_coordinates` coordinates are drawn, one panel row each.
* `plot_energy_landscape`: a 2-D energy as filled contours with the samples on top, and the marginal
  histograms against the true marginal densities when the target's normalised `log_prob` is known.
* `plot_replay_buffer`: a snapshot of a persistent-chain buffer (points or images, ages, energies).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from diagnostics._ess import ess_of_series
from diagnostics._inputs import chain_draws_of, read_chains

_DPI = 90


def convergence_plots(source, out_dir: str | os.PathLike, *, max_coordinates: int = 4) -> list[Path]:
    """Write trace.png, rank.png (two or more chains), autocorr.png, and energy.png (Hamiltonian samplers)
    into `out_dir`; return the paths written."""
    import arviz as az

    chains = read_chains(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, draws = chains.coordinates()
    # one scalar variable per coordinate, so every panel row is one coordinate with one colour per chain
    posterior = {label: draws[:, :, index] for index, label in enumerate(labels[:max_coordinates])}
    groups = {"posterior": posterior}
    if chains.hamiltonian_energy:
        groups["sample_stats"] = {"energy": chains.sample_stats["energy"]}
    tree = az.from_dict(groups)
    height = 2.3 * len(posterior) + 0.8

    written = []
    collection = az.plot_trace_dist(
        tree, aes={"color": ["chain"]}, figure_kwargs={"figsize": (10, height), "layout": "constrained"}
    )
    written.append(_save(collection, out / "trace.png"))
    if chains.n_chains > 1:  # ranks compare chains: nothing to draw for one
        step = _thinning(draws[:, :, : len(posterior)])
        thinned = tree.isel(draw=slice(None, None, step))
        collection = az.plot_rank(thinned, figure_kwargs={"figsize": (10, height)})
        written.append(_save(collection, out / "rank.png"))
    collection = az.plot_autocorr(tree, max_lag=min(100, chains.n_draws - 1), figure_kwargs={"figsize": (10, height)})
    written.append(_save(collection, out / "autocorr.png"))
    if chains.hamiltonian_energy:
        collection = az.plot_energy(tree, figure_kwargs={"figsize": (6, 4)})
        written.append(_save(collection, out / "energy.png"))
    return written


def _thinning(draws: np.ndarray) -> int:
    """Largest within-chain autocorrelation time n / ESS over chains and coordinates (at least 1)."""
    n_draws = draws.shape[1]
    worst = 1.0
    for chain in range(draws.shape[0]):
        for coordinate in range(draws.shape[2]):
            ess, _ = ess_of_series(draws[None, chain : chain + 1, :, coordinate])
            worst = max(worst, n_draws / float(ess[0]))
    return max(1, min(int(np.ceil(worst)), n_draws // 20 or 1))


def plot_energy_landscape(
    energy,
    samples,
    path: str | os.PathLike,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    grid: int = 200,
    title: str | None = None,
    max_points: int = 5000,
) -> Path:
    """Filled contours of E(x) over `bounds` = (x_min, x_max, y_min, y_max) (default: the samples' range
    plus a margin), the samples on top (an evenly spaced subset of `max_points`), and marginal
    histograms with the exact marginals from `energy.log_prob` when it exists."""
    points = _points(samples, "plot_energy_landscape")
    if points.shape[1] != 2:
        raise ValueError(f"plot_energy_landscape: needs 2-D samples; got dimension {points.shape[1]}")
    if bounds is None:
        low, high = points.min(0), points.max(0)
        margin = 0.15 * (high - low) + 1e-6
        bounds = (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])
    xs = np.linspace(bounds[0], bounds[1], grid)
    ys = np.linspace(bounds[2], bounds[3], grid)
    mesh = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    values = _evaluate(energy, mesh).reshape(grid, grid)
    log_density = _log_density(energy, mesh)

    figure = Figure(figsize=(7.5, 7.5))
    layout = figure.add_gridspec(2, 2, width_ratios=(4, 1.2), height_ratios=(1.2, 4), wspace=0.05, hspace=0.05)
    main = figure.add_subplot(layout[1, 0])
    top = figure.add_subplot(layout[0, 0], sharex=main)
    side = figure.add_subplot(layout[1, 1], sharey=main)
    finite = values[np.isfinite(values)]
    # quantile-spaced levels resolve the low-energy region where the samples are (linear levels would
    # spend most contours on the steep walls)
    levels = np.unique(np.quantile(finite, np.linspace(0.0, 0.9, 25)))
    filled = main.contourf(xs, ys, values, levels=levels, cmap="viridis_r", extend="max")
    shown = points[np.linspace(0, len(points) - 1, min(max_points, len(points))).round().astype(int)]
    main.scatter(shown[:, 0], shown[:, 1], s=3, c="tab:red", alpha=0.4, linewidths=0, label="samples")
    main.set_xlabel("x[0]")
    main.set_ylabel("x[1]")
    main.set_xlim(bounds[0], bounds[1])
    main.set_ylim(bounds[2], bounds[3])
    main.legend(loc="upper left", markerscale=4, framealpha=0.8)
    colorbar = figure.colorbar(filled, ax=side, fraction=0.5, pad=0.1)
    colorbar.set_label("energy E(x)")

    top.hist(points[:, 0], bins=60, range=bounds[:2], density=True, color="tab:red", alpha=0.5, label="samples")
    side.hist(
        points[:, 1], bins=60, range=bounds[2:], density=True, color="tab:red", alpha=0.5, orientation="horizontal"
    )
    if log_density is not None:
        density = np.exp(log_density.reshape(grid, grid))
        # marginals of the exact density, integrated over the plotted box (exact when the box holds the mass)
        top.plot(xs, density.sum(0) * (ys[1] - ys[0]), color="black", label="true marginal")
        side.plot(density.sum(1) * (xs[1] - xs[0]), ys, color="black")
        top.legend(loc="upper right", fontsize=8)
    top.set_ylabel("density")
    side.set_xlabel("density")
    top.tick_params(labelbottom=False)
    side.tick_params(labelleft=False)
    figure.suptitle(title or f"energy landscape and {len(points)} samples", y=0.93)
    return _save_figure(figure, Path(path))


def plot_replay_buffer(
    samples,
    path: str | os.PathLike,
    *,
    ages=None,
    lineage=None,
    energies=None,
    max_images: int = 64,
    title: str | None = None,
) -> Path:
    """Snapshot of a replay buffer: 2-D points (coloured by lineage or age when given), an image grid for
    (n, C, H, W) / (n, H, W) buffers, else the first two coordinates; histograms of lineage/ages and energies.

    `samples` is the buffer's samples (n, *event), or the buffer itself (an object with `samples`, `lineage` and
    `energy`, such as `ebm_samplers.ReplayBuffer`): then its lineages and, where all are known, energies are shown.
    """
    if hasattr(samples, "samples") and hasattr(samples, "lineage"):  # a replay buffer object (duck-typed)
        held = samples
        samples = held.samples
        if lineage is None and ages is None:
            lineage = held.lineage
        stored = getattr(held, "energy", None)
        if energies is None and stored is not None and len(stored) and bool(np.isfinite(_as_numpy(stored)).all()):
            energies = stored
    buffer = _as_numpy(samples)
    if buffer.ndim < 2 or len(buffer) == 0:
        raise ValueError(f"plot_replay_buffer: expected buffer samples (n, *event) with n >= 1; got {buffer.shape}")
    if ages is not None and lineage is not None:
        raise ValueError("plot_replay_buffer: give ages or lineage, not both (one colours the points)")
    ages_np = None if ages is None else _as_numpy(ages).reshape(-1)
    lineage_np = None if lineage is None else _as_numpy(lineage).reshape(-1)
    energies_np = None if energies is None else _as_numpy(energies).reshape(-1)
    for name, values in (("ages", ages_np), ("lineages", lineage_np), ("energies", energies_np)):
        if values is not None and len(values) != len(buffer):
            raise ValueError(f"plot_replay_buffer: {len(values)} {name} for {len(buffer)} buffer samples")
    if lineage_np is not None:
        colour, colour_label = lineage_np, "lineage (transitions since fresh start)"
    else:
        colour, colour_label = ages_np, "age (pushes since written)"
    extra = [name for name, values in (("colour", colour), ("energy", energies_np)) if values is not None]
    figure = Figure(figsize=(5.2 * (1 + len(extra)), 4.6), layout="tight")
    axes = figure.subplots(1, 1 + len(extra), squeeze=False)[0]
    images = buffer.ndim in (3, 4) and buffer.shape[-1] > 3 and buffer.shape[-2] > 3
    if images:
        _image_grid(axes[0], buffer[:max_images])
        axes[0].set_title(f"first {min(max_images, len(buffer))} of {len(buffer)} buffer images")
    else:
        points = buffer.reshape(len(buffer), -1)
        y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
        scatter = axes[0].scatter(points[:, 0], y, s=4, c=colour if colour is not None else "tab:blue", cmap="plasma")
        if colour is not None:
            figure.colorbar(scatter, ax=axes[0]).set_label(colour_label)
        axes[0].set_xlabel("x[0]")
        axes[0].set_ylabel("x[1]" if points.shape[1] > 1 else "(1-D buffer)")
        shown = "" if points.shape[1] <= 2 else f" (first 2 of {points.shape[1]} coordinates)"
        axes[0].set_title(f"{len(buffer)} buffer samples{shown}")
    for axis, name in zip(axes[1:], extra, strict=True):
        values = colour if name == "colour" else energies_np
        axis.hist(values, bins=40, color="tab:gray")
        axis.set_xlabel(colour_label if name == "colour" else "energy E(x)")
        axis.set_ylabel("buffer entries")
        label = colour_label.split(" ")[0] if name == "colour" else name
        axis.set_title(f"{label}: mean {values.mean():.3g}, max {values.max():.3g}")
    if title:
        figure.suptitle(title)
    return _save_figure(figure, Path(path))


def _image_grid(axis, images: np.ndarray) -> None:
    if images.ndim == 4:  # (n, C, H, W) -> (n, H, W, C)
        images = np.moveaxis(images, 1, -1)
        if images.shape[-1] == 1:
            images = images[..., 0]
    n = len(images)
    columns = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    low, high = float(images.min()), float(images.max())
    scaled = (images - low) / (high - low) if high > low else np.zeros_like(images)
    height, width = scaled.shape[1:3]
    canvas_shape = (rows * (height + 1), columns * (width + 1), *scaled.shape[3:])
    canvas = np.ones(canvas_shape)
    for index in range(n):
        r, c = divmod(index, columns)
        canvas[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = scaled[index]
    axis.imshow(canvas, cmap="gray" if canvas.ndim == 2 else None, interpolation="nearest")
    axis.set_axis_off()


def _points(samples, what: str) -> np.ndarray:
    if hasattr(samples, "to_arviz") or hasattr(samples, "children"):  # a Trace or a DataTree: pool the chains
        draws = chain_draws_of(samples)
        samples = draws.reshape(-1, *draws.shape[2:])
    points = _as_numpy(samples)
    if points.ndim != 2:
        raise ValueError(f"{what}: expected samples of shape (n, d); got {points.shape}")
    return points


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


def _evaluate(energy, mesh: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _as_numpy(energy(torch.from_numpy(mesh).to(_dtype(energy))))


def _log_density(energy, mesh: np.ndarray) -> np.ndarray | None:
    if not hasattr(energy, "log_prob"):
        return None
    try:
        with torch.no_grad():
            return _as_numpy(energy.log_prob(torch.from_numpy(mesh).to(_dtype(energy))))
    except NotImplementedError:  # the energy has no normaliser: no "true" marginals to draw
        return None


def _dtype(energy) -> torch.dtype:
    if isinstance(energy, torch.nn.Module):
        for tensor in (*energy.parameters(), *energy.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.get_default_dtype()


def _save(collection, path: Path) -> Path:
    import matplotlib.pyplot as plt  # ArviZ draws through pyplot; close its figure so loops do not leak

    collection.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(collection.viz["figure"].item())
    return path


def _save_figure(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path
