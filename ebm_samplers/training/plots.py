"""Pictures of a trained 2-D energy: learned density next to the data, samples over energy contours, the
score field over the data, and the loss curve. Matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ebm_samplers.training.datasets import TOY_BOUNDS
from ebm_samplers.training.evaluation import _energies, _grid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _square_plane(axis, bounds) -> None:
    """The 2-D data plane: equal aspect over `bounds`, labelled coordinates."""
    axis.set_xlim(*bounds)
    axis.set_ylim(*bounds)
    axis.set_aspect("equal")
    axis.set_xlabel("x[0]")
    axis.set_ylabel("x[1]")


def _save(figure, path: Path, *, tight: bool = True) -> Path:
    """Write the figure as PNG and free it (figures left open pile up over a training run's pictures)."""
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=90)
    _pyplot().close(figure)
    return path


def _log_density_image(energy, bounds, resolution: int = 200) -> Tensor:
    points, spacing = _grid(*bounds, resolution, torch.zeros(1))
    values = -_energies(energy, points).double()
    log_density = values - torch.logsumexp(values, 0) - 2 * torch.log(torch.tensor(spacing, dtype=torch.float64))
    return log_density.reshape(resolution, resolution).T  # rows = y for imshow


def density_figure(energy, data: Tensor, path: Path, title: str, bounds=TOY_BOUNDS) -> Path:
    """Left: histogram of the held-out data; right: the learned density exp(-E)/Z on the same window."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    extent = (*bounds, *bounds)
    axes[0].hist2d(data[:, 0].numpy(), data[:, 1].numpy(), bins=120, range=[bounds, bounds], cmap="viridis")
    axes[0].set_title("data")
    density = _log_density_image(energy, bounds).exp().numpy()
    axes[1].imshow(density, origin="lower", extent=extent, cmap="viridis", aspect="equal")
    axes[1].set_title(f"learned density ({title})")
    for axis in axes:
        _square_plane(axis, bounds)
    return _save(figure, path)


def samples_figure(energy, samples: Tensor, path: Path, title: str, bounds=TOY_BOUNDS) -> Path:
    """Model samples over contours of the learned energy (normalised, so levels are -log p in nats)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    resolution = 200
    minus_log_p = -_log_density_image(energy, bounds, resolution).numpy()
    grid = torch.linspace(bounds[0], bounds[1], resolution).numpy()
    levels = sorted({float(v) for v in torch.linspace(float(minus_log_p.min()), float(minus_log_p.min()) + 12, 13)})
    contours = axis.contour(grid, grid, minus_log_p, levels=levels, cmap="magma_r", linewidths=0.8)
    figure.colorbar(contours, ax=axis, shrink=0.8, label="-log p (nats)")
    axis.scatter(samples[:, 0].numpy(), samples[:, 1].numpy(), s=2, alpha=0.5, color="tab:blue")
    _square_plane(axis, bounds)
    axis.set_title(title, fontsize=9)
    return _save(figure, path)


def score_figure(energy, data: Tensor, path: Path, title: str, bounds=TOY_BOUNDS) -> Path:
    """The learned score -grad E as arrows on a coarse grid over a scatter of the data."""
    from energies import energy_and_grad

    plt = _pyplot()
    points, _ = _grid(*bounds, 24, torch.zeros(1))
    _, grad = energy_and_grad(energy, points)
    score = -grad
    length = score.norm(dim=1, keepdim=True).clamp_min(1e-12)
    direction = score / length * torch.log1p(length) / torch.log1p(length).max()  # compress the arrow lengths
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(data[:, 0].numpy(), data[:, 1].numpy(), s=1, alpha=0.3, color="tab:gray")
    axis.quiver(
        points[:, 0].numpy(),
        points[:, 1].numpy(),
        direction[:, 0].numpy(),
        direction[:, 1].numpy(),
        color="tab:red",
        angles="xy",
        scale_units="xy",
        scale=1 / (0.9 * (bounds[1] - bounds[0]) / 24),
    )
    _square_plane(axis, bounds)
    axis.set_title(title, fontsize=9)
    return _save(figure, path)


def loss_figure(history: dict[str, list[float]], path: Path, title: str) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    loss = torch.tensor(history["loss"])
    axis.plot(history["iteration"], loss.numpy(), lw=0.5, alpha=0.4, label="loss")
    window = max(1, len(loss) // 50)
    if len(loss) >= window > 1:
        smooth = torch.nn.functional.avg_pool1d(loss[None, None], window, stride=1)[0, 0]
        axis.plot(history["iteration"][window - 1 :], smooth.numpy(), lw=1.5, label=f"running mean ({window})")
    axis.set_xlabel("iteration")
    axis.set_ylabel("loss")
    axis.set_title(title, fontsize=9)
    axis.legend()
    return _save(figure, path)


def image_grid_figure(images: Tensor, path: Path, title: str, columns: int = 10) -> Path:
    """A grid of (n, 1, 8, 8) images in [-1, 1]."""
    plt = _pyplot()
    n = images.shape[0]
    rows = (n + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8 + 0.4))
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < n:
            axis.imshow(images[index, 0].clamp(-1, 1).numpy(), cmap="gray_r", vmin=-1, vmax=1)
    figure.suptitle(title)
    return _save(figure, path, tight=False)
