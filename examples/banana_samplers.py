"""Sample a banana with five samplers and read the diagnosis.

The banana (Rosenbrock-type) target: x0 ~ N(0, 1), x1 | x0 ~ N(x0^2, 1). Its curved ridge is easy for samplers that
follow the gradient a long way (NUTS, HMC) and harder for local ones. Each run uses the defaults (warm-up included);
`diagnostics.diagnose` says in words whether the chains mixed. Writes one picture per sampler.

    python examples/banana_samplers.py [OUT_DIR]
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import diagnostics
import ebm_samplers

# CI runs every example with EBM_SAMPLERS_SMOKE_TEST=1: the same code on a smaller budget (figures not to read)
SMOKE = os.environ.get("EBM_SAMPLERS_SMOKE_TEST") == "1"
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)


def banana(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x[:, 0] ** 2 + 0.5 * (x[:, 1] - x[:, 0] ** 2) ** 2


init = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 200), torch.linspace(-2, 8, 200), indexing="xy"), -1)
density = torch.exp(-banana(grid.reshape(-1, 2))).reshape(200, 200)

for name, options in [
    ("nuts", {}),
    ("hmc", {}),
    ("mala", {}),
    ("ula", {"step_size": 0.02}),
    ("underdamped_langevin", {}),
]:
    trace = ebm_samplers.sample(
        banana, name, init=init, n_steps=200 if SMOKE else 1000, warmup=100 if SMOKE else 500, seed=0, **options
    )
    report = diagnostics.diagnose(trace)
    print(f"--- {name}: mean of x1 {trace.draws[..., 1].mean():.2f} (exact 1.00)")
    print(report)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    axes[0].contour(grid[..., 0], grid[..., 1], density, levels=8, colors="0.6", linewidths=0.8)
    points = trace.draws.reshape(-1, 2)
    axes[0].scatter(points[:, 0], points[:, 1], s=2, alpha=0.3)
    axes[0].set(xlabel="x[0]", ylabel="x[1]", title=f"{name}: draws of 8 chains over the target")
    for chain in range(trace.draws.shape[0]):
        axes[1].plot(trace.draws[chain, :, 1], lw=0.6, label=f"chain {chain}")
    axes[1].set(xlabel="draw", ylabel="x[1]", title="trace of x[1] (the curved direction)")
    axes[1].legend(fontsize=6, ncol=2, loc="upper right")
    figure.savefig(out / f"banana_{name}.png", dpi=110)
    plt.close(figure)
