"""Data-parallel PCD under torchrun (2 ranks, gloo, CPU): per-rank buffers, mixing, checkpoints, quality.

Quality check: the 2-rank run is one more draw from the distribution of training outcomes (it uses
rank-derived seeds, so it is not bit-identical to any single-process run). Its test NLL must fall in the
two-sided 99.9 % prediction interval of the single-process outcomes with the same total batch, estimated
from 5 seeds: mean +- t_{0.9995, 4} s sqrt(1 + 1/5), exact if outcomes are normal. That interval is wide
(s from 5 seeds is itself uncertain), so the run must ALSO improve on the initial model by at least half
of the single-process runs' mean improvement.
"""

import textwrap
from pathlib import Path

import pytest
import torch
from scipy import stats

from ebm_samplers.training import fit, grid_nll, load_checkpoint, toy_dataset
from energies.neural import MLPEnergy
from tests.helpers import run_torchrun

SETTINGS = dict(method="pcd", n_iterations=200, batch_size=128, n_steps=10, buffer_size=2000)


def _torchrun(args: list[str], cwd: Path):
    return run_torchrun(args, cwd, timeout=300)


def _toy():
    generator = torch.Generator().manual_seed(0)
    dataset = toy_dataset("8gaussians")
    return dataset.sample(5000, generator), dataset.sample(2000, generator)


SCRIPT = """
import sys
import torch
import torch.distributed as dist
from ebm_samplers import ReplayBuffer
from ebm_samplers.training import fit, toy_dataset
from ebm_samplers.training.distributed import DataParallelRun

generator = torch.Generator().manual_seed(0)
train = toy_dataset("8gaussians").sample(5000, generator)
settings = dict(method="pcd", n_iterations=200, batch_size=128, n_steps=10, buffer_size=2000)
result = fit(train, seed=0, checkpoint=sys.argv[1], buffer_mixing_every=50, **settings)
# resume scatters each rank's buffer back and continues
settings["n_iterations"] = 210
fit(train, seed=0, checkpoint=sys.argv[2], resume=sys.argv[1], buffer_mixing_every=50, **settings)

# mixing: each rank's buffer holds its rank number; rank r receives half its rows from rank r-1
rank = dist.get_rank()
buffer = ReplayBuffer(10, (2,))
buffer.push(torch.full((10, 2), float(rank)), torch.zeros(10))
run = DataParallelRun(rank, 2, 0, buffer_mixing_every=1, buffer_mixing_fraction=0.5)
run._mix_buffers(buffer, torch.Generator().manual_seed(rank))
values = buffer.state_dict()["samples"][:, 0]
assert int((values == 1 - rank).sum()) == 5 and int((values == rank).sum()) == 5, values
if rank == 0:
    torch.save(result.energy.state_dict(), sys.argv[3])
from ebm_samplers.distributed import settle
settle()  # as a script that destroys the group itself should
dist.destroy_process_group()
"""


# ~25 s (two ranks train 200 PCD iterations and one process the same); the torchrun command test below keeps
# distributed training in the default run
@pytest.mark.slow
def test_two_rank_pcd_keeps_per_rank_buffers_and_matches_single_process_quality(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT))
    first, resumed, weights = tmp_path / "first.pt", tmp_path / "resumed.pt", tmp_path / "energy.pt"
    _torchrun([str(script), str(first), str(resumed), str(weights)], cwd=tmp_path)

    saved = load_checkpoint(first)
    assert saved["world_size"] == 2 and len(saved["ranks"]) == 2 and saved["iteration"] == 200
    buffers = [part["method_state"]["buffer"] for part in saved["ranks"]]
    assert all(buffer["size"] == 2000 for buffer in buffers)
    assert not torch.equal(buffers[0]["samples"], buffers[1]["samples"])  # independent per-rank chains
    assert load_checkpoint(resumed)["iteration"] == 210
    assert len(list(tmp_path.glob(".*.tmp"))) == 0
    train, test = _toy()
    with pytest.raises(ValueError, match="written by 2 ranks"):
        fit(train, seed=0, resume=first, **SETTINGS)

    energy = MLPEnergy(2, generator=torch.Generator())
    energy.load_state_dict(torch.load(weights, weights_only=True))
    distributed_nll = grid_nll(energy, test, resolution=200).nll
    initial_nll = grid_nll(MLPEnergy(2, generator=torch.Generator().manual_seed(0)), test, resolution=200).nll
    single = torch.tensor(
        [grid_nll(fit(train, seed=seed, **SETTINGS).energy, test, resolution=200).nll for seed in range(5)]
    )
    n = len(single)
    half_width = float(stats.t.ppf(0.9995, n - 1) * single.std() * (1 + 1 / n) ** 0.5)
    print(f"2-rank NLL {distributed_nll:.3f}; single {single.tolist()}; +- {half_width:.3f}; init {initial_nll:.3f}")
    assert abs(distributed_nll - float(single.mean())) < half_width
    assert initial_nll - distributed_nll > 0.5 * (initial_nll - float(single.mean()))


def test_train_command_under_torchrun_writes_one_result(tmp_path):
    out = tmp_path / "run"
    arguments = "--dataset 8gaussians --method pcd --iterations 40 --batch-size 64 --train-size 2000"
    arguments += " --test-size 500 --grid-resolution 100 --sample-steps 20 --no-plot --option buffer_size=500"
    result = _torchrun(["-m", "ebm_samplers", "train", *arguments.split(), "--out", str(out)], cwd=tmp_path)
    assert result.stdout.count("wrote ") == 1, result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"]
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["world_size"] == 2 and saved["iteration"] == 40


def test_mixing_options_are_checked():
    train, _ = _toy()
    with pytest.raises(ValueError, match="under torchrun only"):
        fit(train, seed=0, buffer_mixing_every=10, **{**SETTINGS, "n_iterations": 1})
