"""Parallel tempering against MALA on a target with two well-separated modes.

A 1-D mixture 0.3 N(-4, 0.25) + 0.7 N(4, 0.25) has an energy barrier of about 31 nats between its modes: MALA's
chains stay in the mode they start in, so the mode weights they report depend on where they started. Parallel
tempering runs hotter replicas that cross the barrier and swaps states down to the T = 1 replica.

    python examples/multimodal_tempering.py [OUT_DIR]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import diagnostics
import ebm_samplers
from energies import GaussianMixture

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
mixture = GaussianMixture([0.3, 0.7], [[-4.0], [4.0]], 0.25)
init = 3 * torch.randn(16, 1, generator=torch.Generator().manual_seed(0))

mala = ebm_samplers.sample(mixture, "mala", init=init, n_steps=1000, warmup=300, seed=0)
tempering = ebm_samplers.sample(
    mixture,
    "parallel_tempering",
    init=init,
    n_steps=1000,
    warmup=300,
    seed=0,
    inner="mala",
    step_size=0.1,
    n_temperatures=6,
    max_temperature=60.0,
)

figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained", sharey=True)
x = torch.linspace(-6, 6, 400)[:, None]
exact = torch.exp(-mixture(x))
exact = exact / (exact.sum() * (x[1, 0] - x[0, 0]))
for axis, (name, trace) in zip(axes, [("MALA", mala), ("parallel tempering", tempering)], strict=True):
    weight = (trace.draws[..., 0] > 0).float().mean().item()
    print(f"--- {name}: weight of the right mode {weight:.3f} (exact 0.700)")
    print(diagnostics.diagnose(trace))
    axis.hist(trace.draws.reshape(-1).numpy(), bins=80, range=(-6, 6), density=True, alpha=0.6, label="draws")
    axis.plot(x[:, 0], exact, color="black", lw=1, label="exact density")
    axis.set(xlabel="x", title=f"{name}\nright-mode weight {weight:.2f} (exact 0.70)")
    axis.legend(fontsize=8)
axes[0].set_ylabel("density")
figure.savefig(out / "multimodal_pt_vs_mala.png", dpi=110)
