"""Train a noise-conditional energy by multi-scale denoising score matching, then sample it with annealed Langevin.

`fit(method="dsm_multiscale")` learns E(x, sigma) at geometric noise levels (Song & Ermon 2019) and returns an
`energies.NoiseConditionalMLP`; the `annealed_langevin` sampler walks the levels from the largest to the smallest.
Score matching alone learns shapes well but not mode weights: the annealing across noise levels is what puts the
right share of samples in each mode.

    python examples/annealed_langevin_dsm.py [OUT_DIR]
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ebm_samplers
from ebm_samplers.training import fit, toy_dataset

# CI runs every example with EBM_SAMPLERS_SMOKE_TEST=1: the same code on a smaller budget (figures not to read)
SMOKE = os.environ.get("EBM_SAMPLERS_SMOKE_TEST") == "1"
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
generator = torch.Generator().manual_seed(0)
train = toy_dataset("8gaussians").sample(5_000, generator)
# 6,000 steps rather than the method's default 3,000: with fewer, the learnt energy separates the modes only weakly
# and annealed Langevin returns a blurred ring (about 25 s on 2 CPU cores)
result = fit(train, method="dsm_multiscale", seed=0, progress=False, n_iterations=600 if SMOKE else 6000)
model = result.energy

init = 8 * torch.rand(1_000, 2, generator=generator) - 4
trace = ebm_samplers.sample(
    model,
    "annealed_langevin",
    init=init,
    n_steps=1,
    seed=0,
    sigma_max=2.0,
    sigma_min=0.05,
    n_levels=10,
    steps_per_level=100,
    step_scale=5e-4,
    denoise=True,
)
samples = trace.draws[:, 0]
print(f"samples: {len(samples)}, finite: {bool(torch.isfinite(samples).all())}")

figure, axes = plt.subplots(1, 2, figsize=(8, 4), layout="constrained", sharex=True, sharey=True)
axes[0].scatter(train[:2000, 0], train[:2000, 1], s=2, alpha=0.4)
axes[0].set(title="training data (8gaussians)", xlabel="x[0]", ylabel="x[1]")
axes[1].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:orange")
axes[1].set(title="annealed Langevin samples of the model", xlabel="x[0]")
for axis in axes:
    axis.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal")
figure.savefig(out / "annealed_langevin_dsm.png", dpi=110)
