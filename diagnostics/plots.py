"""Pictures that show whether sampling worked, written as PNG files without a display.

Figures use `matplotlib.figure.Figure` directly (no pyplot state, no backend switch).

* `convergence_plots`: trace + per-chain marginals, rank histograms, autocorrelation, and the energy
  plot when there is a Hamiltonian per draw (sample_stats "energy"); one panel per coordinate, one colour per chain,
  a chain legend, titles and labelled axes. The rank plot is drawn from thinned draws, so that
  autocorrelation does not fake non-uniformity; the thinning step is the largest within-chain
  autocorrelation time N / ESS over single chains. (ArviZ's `thin=True` uses the pooled ESS, which
  collapses to a handful of draws exactly when chains disagree and the plot matters most.)
  `var_names=` or `coordinates=` choose what is drawn (default: the first `max_coordinates`).
* `plot_energy_landscape`: a 2-D energy as filled contours with the samples on top, and the marginal
  histograms against the true marginal densities when the target's normalised `log_prob` is known.
* `plot_replay_buffer`: a snapshot of a persistent-chain buffer (points or images, ages, energies).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from diagnostics._ess import ess_of_series
from diagnostics._inputs import chain_draws_of, read_chains

_DPI = 90


def convergence_plots(
    source,
    out_dir: str | os.PathLike,
    *,
    var_names: Sequence[str] | None = None,
    coordinates: Sequence[str] | None = None,
    max_coordinates: int = 8,
) -> list[Path]:
    """Write trace.png, rank.png (two or more chains), autocorr.png, and energy.png (Hamiltonian samplers)
    into `out_dir`; return the paths written.

    One panel (row) per coordinate, one colour per chain with a legend naming chains as `diagnose` does
    (chain 0, 1, ...). `var_names` picks variables (every coordinate of `theta`), `coordinates` picks
    coordinates by their labels (`"theta[Choate]"`, `"x[1]"`); otherwise the first `max_coordinates` are
    drawn, and a note printed when that is not all of them."""
    chains = read_chains(source)
    out = Path(out_dir)
    labels, draws = chains.coordinates()
    chosen = _choose(labels, var_names, coordinates, max_coordinates)
    if var_names is None and coordinates is None and len(chosen) < len(labels):
        shown = ", ".join(labels[i] for i in chosen)
        print(
            f"note: the plots show {len(chosen)} of {len(labels)} coordinates ({shown}); "
            "pick others with var_names= or coordinates= (CLI: --var-names, --coordinates)"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = [labels[i] for i in chosen]
    selected = draws[:, :, chosen]
    colours = _chain_colours(chains.n_chains)
    subtitle = f"{chains.n_chains} chain{'s' if chains.n_chains > 1 else ''} x {chains.n_draws} draws"

    written = [_save_figure(_trace_figure(selected, names, colours, subtitle), out / "trace.png")]
    if chains.n_chains > 1:  # ranks compare chains: nothing to draw for one
        step = _thinning(selected)
        figure = _rank_figure(selected[:, ::step], names, colours, subtitle, step)
        written.append(_save_figure(figure, out / "rank.png"))
    written.append(_save_figure(_autocorr_figure(selected, names, colours, subtitle), out / "autocorr.png"))
    if chains.hamiltonian_energy:
        written.append(_save_figure(_energy_figure(chains.sample_stats["energy"], colours), out / "energy.png"))
    return written


def _choose(labels: list[str], var_names, coordinates, max_coordinates: int) -> list[int]:
    """Indices of the coordinates to draw (see `convergence_plots`)."""
    if var_names is not None and coordinates is not None:
        raise ValueError("give var_names or coordinates, not both")
    if var_names is not None:
        variables = [label.split("[")[0] for label in labels]
        unknown = [name for name in var_names if name not in variables]
        if unknown:
            raise ValueError(f"var_names: no variable {unknown[0]!r}; the variables are {sorted(set(variables))}")
        return [i for i, variable in enumerate(variables) if variable in var_names]
    if coordinates is not None:
        unknown = [name for name in coordinates if name not in labels]
        if unknown:
            listed = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise ValueError(f"coordinates: no coordinate {unknown[0]!r}; they are labelled like {listed}")
        return [labels.index(name) for name in coordinates]
    if isinstance(max_coordinates, bool) or not isinstance(max_coordinates, int) or max_coordinates < 1:
        raise ValueError(f"max_coordinates must be an integer >= 1; got {max_coordinates!r}")
    return list(range(min(max_coordinates, len(labels))))


def _thinning(draws: np.ndarray) -> int:
    """Largest within-chain autocorrelation time n / ESS over chains and coordinates (at least 1)."""
    n_draws = draws.shape[1]
    worst = 1.0
    for chain in range(draws.shape[0]):
        for coordinate in range(draws.shape[2]):
            ess, _ = ess_of_series(draws[None, chain : chain + 1, :, coordinate])
            worst = max(worst, n_draws / float(ess[0]))
    return max(1, min(int(np.ceil(worst)), n_draws // 20 or 1))


def _chain_colours(n_chains: int) -> list:
    import matplotlib

    if n_chains <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n_chains)]
    return [matplotlib.colormaps["viridis"](i / (n_chains - 1)) for i in range(n_chains)]


def _chain_legend(figure, axis, n_chains: int) -> None:
    """One legend for the figure, below the panels, naming chains as `diagnose` does."""
    handles, names = axis.get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncols=min(n_chains, 10), fontsize=9, frameon=False)


def _trace_figure(draws: np.ndarray, names: list[str], colours: list, subtitle: str) -> Figure:
    n_chains, n_draws, k = draws.shape
    figure = Figure(figsize=(11, 1.9 * k + 1.2), layout="constrained")
    axes = figure.subplots(k, 2, squeeze=False, width_ratios=(3, 1))
    for row, name in enumerate(names):
        values = draws[:, :, row]
        bins = np.histogram_bin_edges(values, bins=40)
        for chain in range(n_chains):
            axes[row, 0].plot(values[chain], color=colours[chain], lw=0.6, alpha=0.8, label=f"chain {chain}")
            axes[row, 1].hist(values[chain], bins=bins, density=True, histtype="step", color=colours[chain])
        axes[row, 0].set_ylabel(name)
        axes[row, 1].set_xlabel(name)
        axes[row, 1].set_ylabel("density")
        axes[row, 0].set_xlim(0, n_draws - 1)
        axes[row, 0].set_xlabel("draw (after warm-up)" if row == k - 1 else "")
    _chain_legend(figure, axes[0, 0], n_chains)
    figure.suptitle(f"Trace and per-chain marginals: {subtitle}")
    return figure


def _panel_grid(k: int, width: float = 11, row_height: float = 2.6) -> tuple[Figure, np.ndarray]:
    columns = min(k, 3)
    rows = -(-k // columns)
    figure = Figure(figsize=(width, row_height * rows + 1.2), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes[k:]:
        axis.set_visible(False)
    return figure, axes


def _rank_figure(draws: np.ndarray, names: list[str], colours: list, subtitle: str, step: int) -> Figure:
    """Rank histograms (Vehtari et al. 2021): ranks of all draws pooled, histogram per chain. Chains that agree
    are uniform: inside the grey band (99% binomial interval per bin) around the dashed expected count."""
    from scipy import stats

    n_chains, n_draws, k = draws.shape
    n_bins = int(np.clip(n_draws // 10, 5, 20))
    figure, axes = _panel_grid(k)
    expected = n_draws / n_bins
    low, high = stats.binom.ppf([0.005, 0.995], n_draws, 1 / n_bins)
    edges = np.linspace(0, n_chains * n_draws, n_bins + 1)
    for index, name in enumerate(names):
        axis = axes[index]
        ranks = stats.rankdata(draws[:, :, index].ravel()).reshape(n_chains, n_draws)
        axis.axhspan(low, high, color="0.88", lw=0)
        axis.axhline(expected, color="0.4", ls="--", lw=1)
        for chain in range(n_chains):
            counts, _ = np.histogram(ranks[chain], bins=edges)
            axis.stairs(counts, edges, color=colours[chain], lw=1.3, label=f"chain {chain}")
        axis.set_title(name)
        axis.set_xlabel("rank among all draws")
        axis.set_ylabel("draws per bin")
        axis.set_xlim(0, n_chains * n_draws)
    _chain_legend(figure, axes[0], n_chains)
    thinned = f", one draw in {step} (the autocorrelation time)" if step > 1 else ""
    figure.suptitle(
        f"Rank histograms: {subtitle}{thinned}\nchains that agree stay near the dashed line, inside the 99% band"
    )
    return figure


def _autocorr_figure(draws: np.ndarray, names: list[str], colours: list, subtitle: str) -> Figure:
    n_chains, n_draws, k = draws.shape
    max_lag = min(100, n_draws - 1)
    figure, axes = _panel_grid(k)
    for index, name in enumerate(names):
        axis = axes[index]
        rho = _autocorrelation(draws[:, :, index])[:, : max_lag + 1]
        for chain in range(n_chains):
            axis.plot(rho[chain], color=colours[chain], lw=1, label=f"chain {chain}")
        axis.axhline(0, color="0.4", lw=0.8)
        axis.set_ylim(-0.3, 1.05)
        axis.set_title(name)
        axis.set_xlabel("lag (draws)")
        axis.set_ylabel("autocorrelation")
    _chain_legend(figure, axes[0], n_chains)
    figure.suptitle(f"Autocorrelation per chain: {subtitle}")
    return figure


def _autocorrelation(series: np.ndarray) -> np.ndarray:
    """Per row of (chains, n): the autocorrelation at every lag, by FFT (rho[:, 0] == 1; 0 for constant rows)."""
    centred = series - series.mean(axis=1, keepdims=True)
    n = series.shape[1]
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size, axis=1)
    covariance = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, :n]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = covariance / covariance[:, :1]
    return np.nan_to_num(rho, nan=0.0)


def _energy_figure(energy: np.ndarray, colours: list) -> Figure:
    """Betancourt's energy plot: the marginal energy distribution against that of its transitions. When the
    transitions' histogram is much narrower, momentum resampling explores energy levels slowly (low E-BFMI)."""
    energy = energy.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        bfmi = np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1, ddof=1)
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    axis = figure.subplots()
    centred = (energy - energy.mean()).ravel()
    transitions = np.diff(energy, axis=1).ravel()
    bins = np.histogram_bin_edges(np.concatenate([centred, transitions]), bins=60)
    axis.hist(centred, bins=bins, density=True, alpha=0.5, color="tab:blue", label="energy E - mean(E)")
    axis.hist(transitions, bins=bins, density=True, alpha=0.5, color="tab:orange", label="transition dE")
    axis.set_xlabel("energy (centred)")
    axis.set_ylabel("density")
    axis.legend(fontsize=8)
    values = ", ".join(f"{chain}: {value:.2f}" for chain, value in enumerate(bfmi))
    figure.suptitle(f"Energy and its transitions; E-BFMI per chain {values} (below 0.3: low)", fontsize=10)
    return figure


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
    side.locator_params(axis="x", nbins=2)  # a narrow panel: more tick labels run into each other
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


def _save_figure(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path
