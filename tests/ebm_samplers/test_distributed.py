"""Chains sharded over torchrun ranks (gloo, CPU) give exactly the draws of the single-process reference."""

import textwrap
from pathlib import Path

import pytest
import torch

from ebm_samplers import Trace
from ebm_samplers.distributed import sample_sharded, shard_bounds, shard_seed
from energies import Gaussian, GaussianMixture
from tests.helpers import run_torchrun


def _torchrun(args: list[str], cwd: Path, status: int = 0):
    return run_torchrun(args, cwd, timeout=240, status=status)


def test_shards_cover_the_chains_in_order():
    bounds = [shard_bounds(10, 3, r) for r in range(3)]
    assert bounds == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(ValueError, match="at least one chain per rank"):
        shard_bounds(1, 2, 0)
    assert len({shard_seed(0, r) for r in range(8)}) == 8


def test_single_process_reference_is_deterministic_and_independent_of_init_placement():
    kwargs = dict(n_chains=5, warmup=0, n_steps=30, seed=3, step_size=0.2)
    first = sample_sharded(GaussianMixture(), "mala", n_shards=2, **kwargs)
    second = sample_sharded(GaussianMixture(), "mala", n_shards=2, **kwargs)
    assert first.draws.shape == (5, 30, 2)
    assert torch.equal(first.draws, second.draws)
    assert first.attrs["n_shards"] == 2 and first.attrs["seed"] == 3
    init = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    sharded = sample_sharded(Gaussian([0.0, 0.0]), "ula", n_shards=2, init=init, n_steps=5, seed=1, step_size=0.1)
    from ebm_samplers import sample

    # shard 1 alone, run as a plain single-process sample with its derived seed, reproduces chains 2..3
    alone = sample(
        Gaussian([0.0, 0.0]), "ula", init=init[2:], warmup=0, n_steps=5, seed=shard_seed(1, 1), step_size=0.1
    )
    assert torch.equal(sharded.draws[2:], alone.draws)


def test_sample_under_torchrun_matches_the_single_process_reference(tmp_path):
    script = tmp_path / "run_sample.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import torch.distributed as dist
            import ebm_samplers
            from energies import GaussianMixture

            trace = ebm_samplers.sample(GaussianMixture(), "mala", n_chains=5, n_steps=40, warmup=10, seed=7,
                                        step_size=0.2)
            if dist.get_rank() == 0:
                trace.save(sys.argv[1])
            else:
                assert trace.n_chains == 2, trace.n_chains  # rank 1's own shard: chains 3..4
            dist.destroy_process_group()
            """
        )
    )
    _torchrun([str(script), str(tmp_path / "trace.nc")], cwd=tmp_path)
    distributed = Trace.load(tmp_path / "trace.nc")
    reference = sample_sharded(
        GaussianMixture(), "mala", n_shards=2, n_chains=5, n_steps=40, warmup=10, seed=7, step_size=0.2
    )
    assert torch.equal(distributed.draws, reference.draws)
    for name, values in reference.stats.items():
        assert torch.equal(distributed.stats[name], values), name
    assert distributed.attrs["shard_seeds"] == reference.attrs["shard_seeds"]


def test_the_command_line_works_under_torchrun_unchanged(tmp_path):
    result = _torchrun(
        [
            "-m",
            "ebm_samplers",
            "sample",
            "--chains",
            "4",
            "--steps",
            "50",
            "--warmup",
            "10",
            "--no-plot",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        status=1,  # 50 draws on two modes: rank 0's diagnosis finds problems and exits 1, as `diagnose` does
    )
    assert result.stdout.count("mala on GaussianMixture: 4 chains x 50 draws") == 1  # rank 0 reports once
    trace = Trace.load(tmp_path / "out" / "trace.nc")
    reference = sample_sharded(GaussianMixture(), "mala", n_shards=2, n_chains=4, n_steps=50, warmup=10, seed=0)
    assert torch.equal(trace.draws, reference.draws)


def test_moments_and_per_shard_checkpoints_join_in_shard_order(tmp_path):
    kwargs = dict(n_chains=5, warmup=0, n_steps=40, seed=3, step_size=0.2)
    moments = sample_sharded(GaussianMixture(), "mala", n_shards=2, keep="moments", **kwargs)
    trace = sample_sharded(GaussianMixture(), "mala", n_shards=2, **kwargs)
    assert moments.mean.shape == (5, 2)
    torch.testing.assert_close(moments.mean, trace.draws.double().mean(1).to(moments.mean.dtype))
    checkpointed = sample_sharded(GaussianMixture(), "mala", n_shards=2, checkpoint=tmp_path / "run.ckpt", **kwargs)
    assert torch.equal(checkpointed.draws, trace.draws)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt.shard0-of-2", "run.ckpt.shard1-of-2"]
