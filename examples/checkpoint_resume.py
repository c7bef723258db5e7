"""Checkpoint a long run, lose the process, and resume it: the result is the uninterrupted run's, bit for bit.

`sample(..., checkpoint=path, checkpoint_every=K)` saves the run (chains, generator, warm-up, recorded draws)
every K transitions, atomically. Calling `sample` again with the same arguments continues from the file. Here the
"crash" is an energy that raises after a number of evaluations, as a killed job would stop mid-run.

    python examples/checkpoint_resume.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ebm_samplers

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)


class Crash(Exception):
    pass


class FlakyGaussian(torch.nn.Module):
    """A 5-d Gaussian whose process 'dies' after `fail_after` evaluations (None: never)."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.calls, self.fail_after = 0, fail_after

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise Crash(f"process lost after {self.fail_after} energy evaluations")
        return 0.5 * (x**2 / torch.arange(1.0, 6.0)).sum(-1)


run = dict(init=torch.zeros(8, 5), n_steps=3000, warmup=500, seed=0, checkpoint_every=250)
path = Path(tempfile.mkdtemp()) / "run.ckpt"
try:
    ebm_samplers.sample(FlakyGaussian(fail_after=2000), "mala", checkpoint=path, **run)
except Crash as crash:
    print(f"first attempt stopped: {crash}; checkpoint on disk: {path.exists()}")
resumed = ebm_samplers.sample(FlakyGaussian(), "mala", checkpoint=path, **run)
uninterrupted = ebm_samplers.sample(FlakyGaussian(), "mala", **run)
print("resumed run equals the uninterrupted run bit for bit:", torch.equal(resumed.draws, uninterrupted.draws))

figure, axis = plt.subplots(figsize=(7, 3.2), layout="constrained")
axis.plot(uninterrupted.draws[0, :, 4], lw=0.8, label="uninterrupted run, chain 0")
axis.plot(resumed.draws[0, :, 4], "--", lw=0.8, label="crashed at evaluation 2,000 and resumed")
axis.axvline(2000 - 500, color="0.5", lw=0.8, ls=":")
axis.set(xlabel="kept draw", ylabel="x[4]", title="Checkpoint and resume: the two traces coincide")
axis.legend(fontsize=8)
figure.savefig(out / "checkpoint_resume.png", dpi=110)
