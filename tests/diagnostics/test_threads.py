"""numba's parallel loops must not change torch's thread count (numba's OpenMP layer resets it on first use)."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import torch
torch.set_num_threads(1)
import ebm_samplers
from diagnostics import ksd, mmd
from energies.numba_targets import default_mixture
# torch's own OpenMP pool first (as in a training run): numba's first launch then resets the count torch reads
a = torch.randn(1000, 1000)
(a @ a).sum()
torch.randn(1_000_000).exp().sum()
x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
counts = []
ksd(x, lambda z: 0.5 * (z**2).sum(-1))
counts.append(torch.get_num_threads())
mmd(x, x + 1.0)
counts.append(torch.get_num_threads())
ebm_samplers.sample(default_mixture(), "mala", init=x[:8], n_steps=20, warmup=0, step_size=0.1, backend="numba",
                    progress=False)
counts.append(torch.get_num_threads())
print(counts)
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with one core numba's thread count is torch's anyway")
def test_ksd_mmd_and_the_numba_backend_keep_the_torch_thread_count_the_user_set():
    # a fresh process: numba's threading layer changes the OpenMP thread count only at its first parallel launch
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("NUMBA_NUM_THREADS", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[1, 1, 1]"
