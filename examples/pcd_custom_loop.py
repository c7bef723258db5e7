"""Persistent contrastive divergence in your own training loop, with `ebm_samplers.PersistentChains`.

    PYTHONPATH=. python examples/pcd_custom_loop.py [folder]      # writes folder/pcd_custom_loop.png

Trains a small MLP energy on the 8-Gaussians toy set for 1,500 Adam steps (about half a CPU minute) and writes a
picture of the replay buffer: its samples coloured by lineage, the lineage histogram and the stored energies.
"""

import os
import sys
from pathlib import Path

import torch
from torch import nn

from diagnostics.plots import plot_replay_buffer
from ebm_samplers import PersistentChains, ReplayBuffer
from ebm_samplers.training import toy_dataset

# CI runs every example with EBM_SAMPLERS_SMOKE_TEST=1: the same code on a smaller budget (figures not to read)
SMOKE = os.environ.get("EBM_SAMPLERS_SMOKE_TEST") == "1"
torch.manual_seed(0)
data = toy_dataset("8gaussians").sample(20_000, torch.Generator().manual_seed(0))  # your data: (n, *event)


class Energy(nn.Module):  # any nn.Module mapping (n, *event) -> (n,)
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


model = Energy()
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
# 10,000 stored chains; fresh ones (5 % per draw) start uniformly on the data's range widened by 10 %
chains = PersistentChains(ReplayBuffer.for_data(data, 10_000), "mala", n_steps=20, step_size=0.01)
alpha = 0.05  # the energy penalty of Du & Mordatch (2019): keeps energies near 0
evaluations = 0
for iteration in range(150 if SMOKE else 1500):
    x = data[torch.randint(len(data), (256,))]
    negatives = chains.sample(model, x)  # raises FloatingPointError if a chain became NaN/inf
    evaluations += negatives.gradient_evaluations
    positive, negative = model(x), model(negatives.samples)
    loss = positive.mean() - negative.mean() + alpha * (positive.square().mean() + negative.square().mean())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    if iteration % 500 == 0:
        print(f"step {iteration}: loss {loss.item():+.3f}, mean lineage {negatives.lineage.float().mean():.0f}")

stats = chains.buffer.statistics()
print(
    f"{evaluations} sample gradient evaluations; buffer {len(chains.buffer)} states, mean lineage "
    f"{stats['mean_lineage']:.0f} transitions"
)
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
path = plot_replay_buffer(chains.buffer, out / "pcd_custom_loop.png")
print(f"wrote {path}")
