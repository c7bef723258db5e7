"""The sampler, recording and training paths that matter on an accelerator, run on every device of `DEVICES`.

Each test takes the `device` fixture (tests/conftest.py): here it runs on cpu; on a machine with a GPU its cuda
case runs too (`benchmarks/gpu_check.sh`: `pytest -m cuda`). A run must keep its chains, draws and stats on
the device of its initial points, sample the target within Monte Carlo error, and record, stream and train
there. Small runs: each cpu case takes well under a second, except HMC's (a few leapfrog steps per draw).
"""

import pytest
import torch

import ebm_samplers
from ebm_samplers import Trace
from ebm_samplers.training import fit, toy_dataset
from energies import Gaussian, GaussianMixture, MLPEnergy
from tests.helpers import assert_bivariate_gaussian_moments

MEAN, COVARIANCE = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])


def _on(device: torch.device, tensor: torch.Tensor) -> bool:
    return tensor.device.type == device.type


def _assert_on(device: torch.device, trace: Trace) -> None:
    assert _on(device, trace.draws), trace.draws.device
    for name, values in trace.stats.items():
        assert _on(device, values), f"stat {name} is on {values.device}"


@pytest.mark.parametrize(
    "sampler, params",
    [
        ("mala", dict(step_size=0.5)),
        ("hmc", dict(step_size=0.4, n_leapfrog=4)),
        ("parallel_tempering", dict(n_temperatures=3, max_temperature=4.0, step_size=0.5)),
    ],
)
def test_exact_kernels_sample_a_correlated_gaussian_on_the_device(device, sampler, params):
    energy = Gaussian(MEAN, COVARIANCE).to(device)
    trace = ebm_samplers.sample(
        energy, sampler, n_chains=64, n_steps=400, warmup=150, seed=11, device=device, progress=False, **params
    )
    _assert_on(device, trace)
    assert_bivariate_gaussian_moments(trace.draws.cpu(), MEAN, COVARIANCE)


@pytest.mark.parametrize(
    "sampler, params", [("ula", dict(step_size=0.05)), ("underdamped_langevin", dict(step_size=0.1))]
)
def test_unadjusted_kernels_run_on_the_device_and_stay_near_the_target(device, sampler, params):
    """Biased by their discretisation, so only a loose check: the pooled mean within 0.3 of the target's (the
    chains start from N(0, I), 1.4 away)."""
    energy = Gaussian(MEAN, COVARIANCE).to(device)
    trace = ebm_samplers.sample(
        energy, sampler, n_chains=64, n_steps=300, warmup=100, seed=12, device=device, progress=False, **params
    )
    _assert_on(device, trace)
    assert torch.allclose(trace.draws.cpu().double().mean(dim=(0, 1)), MEAN.double(), atol=0.3)


def test_the_eager_path_gives_the_same_chains_from_the_same_seed_twice(device):
    """A run is reproducible on the device (its one generator lives there)."""
    init = torch.randn(32, 2, generator=torch.Generator().manual_seed(0)).to(device)
    runs = [
        ebm_samplers.sample(GaussianMixture().to(device), "mala", init=init, n_steps=50, seed=5, progress=False)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].draws, runs[1].draws)


def test_the_compiled_step_computes_the_eager_step_on_the_device(device):
    """compile_step=True on the device: the same kept draws and accept decisions as the eager path, to rounding.
    The cpu case is `test_compiled_step.py`'s (compiling costs seconds): here only the cuda case runs."""
    if device.type == "cpu":
        pytest.skip("on cpu: tests/ebm_samplers/test_compiled_step.py")
    energy = GaussianMixture().to(device)
    init = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)).to(device)
    run = dict(init=init, n_steps=40, warmup=2, thin=2, seed=4, adapt_step_size=False, step_size=0.3)
    eager = ebm_samplers.sample(energy, "mala", progress=False, **run)
    compiled = ebm_samplers.sample(energy, "mala", compile_step=True, progress=False, **run)
    _assert_on(device, compiled)
    assert torch.equal(compiled.stats["accepted"], eager.stats["accepted"])
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)


def test_thinned_streamed_and_moment_runs_record_the_same_draws_on_the_device(device, tmp_path):
    """One seed, three recorders: in memory, streamed to disk (read back on the cpu), running moments."""
    energy = GaussianMixture().to(device)
    run = dict(n_chains=16, n_steps=120, warmup=10, thin=3, seed=2, device=device, step_size=0.3, progress=False)
    in_memory = ebm_samplers.sample(energy, "mala", **run)
    _assert_on(device, in_memory)
    assert in_memory.draws.shape == (16, 40, 2)
    streamed = ebm_samplers.sample(energy, "mala", stream=tmp_path / "stream", stream_every=16, **run)
    assert torch.equal(streamed.draws.cpu(), in_memory.draws.cpu())
    assert torch.equal(Trace.load(tmp_path / "stream").draws.cpu(), in_memory.draws.cpu())
    moments = ebm_samplers.sample(energy, "mala", keep="moments", **run)
    draws = in_memory.draws.cpu().double()
    torch.testing.assert_close(moments.mean.cpu().double(), draws.mean(dim=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moments.variance.cpu().double(), draws.var(dim=1), rtol=1e-4, atol=1e-5)


def test_a_checkpointed_run_resumes_to_the_uninterrupted_chain_on_the_device(device, tmp_path):
    energy = GaussianMixture().to(device)
    run = dict(n_chains=8, warmup=0, seed=6, device=device, step_size=0.3, progress=False)
    whole = ebm_samplers.sample(energy, "mala", n_steps=60, **run)
    path = tmp_path / "run.pt"
    ebm_samplers.sample(energy, "mala", n_steps=60, checkpoint=path, checkpoint_every=20, **run)
    resumed = ebm_samplers.sample(energy, "mala", n_steps=60, checkpoint=path, checkpoint_every=20, **run)
    assert torch.equal(resumed.draws.cpu(), whole.draws.cpu())


@pytest.mark.parametrize("method, options", [("pcd", dict(n_steps=3)), ("dsm", {})])
def test_a_short_fit_trains_on_the_device(device, method, options):
    data = toy_dataset("8gaussians").sample(512, torch.Generator().manual_seed(0)).to(device)
    energy = MLPEnergy(2, (16, 16), generator=torch.Generator().manual_seed(0)).to(device)
    result = fit(data, method, energy=energy, n_iterations=8, batch_size=64, seed=1, progress=False, **options)
    assert all(_on(device, parameter) for parameter in result.energy.parameters())
    losses = torch.tensor(result.history["loss"])
    assert losses.shape == (8,) and bool(torch.isfinite(losses).all())
    if result.samples is not None:
        assert _on(device, result.samples)
