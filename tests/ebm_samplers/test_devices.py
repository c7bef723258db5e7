"""The sampler, recording and training paths that matter on an accelerator, run on every device of `DEVICES`.

Each test takes the `device` fixture (tests/conftest.py): here it runs on cpu; on a machine with a GPU its cuda
case runs too (`benchmarks/gpu_check.sh`: `pytest -m cuda`). A run must evaluate its energy on the device of its
initial points only (`_OnlyOn` fails the run on any other), sample the target within Monte Carlo error, and
record, stream and train there; the trace it returns may live on the host. Small runs: each cpu case takes
about a second or less.
"""

import pytest
import torch

import ebm_samplers
from ebm_samplers import Trace
from ebm_samplers.training import fit, toy_dataset
from energies import Energy, Gaussian, GaussianMixture, MLPEnergy
from tests.helpers import assert_bivariate_gaussian_moments

MEAN, COVARIANCE = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])


class _OnlyOn(Energy):
    """`inner`, refusing points on any device but `device`: a run that moved its chains elsewhere fails."""

    def __init__(self, inner: Energy, device: torch.device):
        super().__init__()
        self.inner, self.device, self.event_shape = inner.to(device), device, inner.event_shape

    def _check(self, x: torch.Tensor) -> None:
        assert x.device.type == self.device.type, f"the energy was called on {x.device}, the run is on {self.device}"

    def forward(self, x):
        self._check(x)
        return self.inner(x)

    def energy_and_grad(self, x):
        self._check(x)
        return self.inner.energy_and_grad(x)


def test_the_device_check_fails_a_run_on_another_device():
    """The guard of every test below can fail: a cpu run of an energy that insists on another device."""
    with pytest.raises(AssertionError, match="the energy was called on cpu, the run is on meta"):
        ebm_samplers.sample(_OnlyOn(GaussianMixture(), torch.device("meta")), "mala", n_chains=4, n_steps=2)


def _on(device: torch.device, tensor: torch.Tensor) -> bool:
    return tensor.device.type == device.type


def _assert_on(device: torch.device, trace: Trace) -> None:
    """The trace's tensors on one device: the run's, or the host's (where a finished run may hand them)."""
    assert trace.draws.device.type in ("cpu", device.type), trace.draws.device
    for name, values in trace.stats.items():
        assert values.device == trace.draws.device, (
            f"stat {name} is on {values.device}, the draws on {trace.draws.device}"
        )


@pytest.mark.parametrize(
    "sampler, params",
    [
        ("mala", dict(step_size=0.5)),
        ("hmc", dict(step_size=0.4, n_leapfrog=4)),
        ("nuts", dict(step_size=0.4, max_tree_depth=4)),
        ("parallel_tempering", dict(n_temperatures=3, max_temperature=4.0, step_size=0.5)),
    ],
)
def test_exact_kernels_sample_a_correlated_gaussian_on_the_device(device, sampler, params):
    energy = _OnlyOn(Gaussian(MEAN, COVARIANCE), device)
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
    energy = _OnlyOn(Gaussian(MEAN, COVARIANCE), device)
    trace = ebm_samplers.sample(
        energy, sampler, n_chains=64, n_steps=300, warmup=100, seed=12, device=device, progress=False, **params
    )
    _assert_on(device, trace)
    assert torch.allclose(trace.draws.cpu().double().mean(dim=(0, 1)), MEAN.double(), atol=0.3)


def test_the_eager_path_gives_the_same_chains_from_the_same_seed_twice(device):
    """A run is reproducible on the device (its one generator lives there)."""
    init = torch.randn(32, 2, generator=torch.Generator().manual_seed(0)).to(device)
    runs = [
        ebm_samplers.sample(_OnlyOn(GaussianMixture(), device), "mala", init=init, n_steps=50, seed=5, progress=False)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].draws, runs[1].draws)


def test_the_compiled_step_computes_the_eager_step_on_the_device(device):
    """compile_step=True on the device: the same kept draws and accept decisions as the eager path, to rounding.
    The cpu case is `test_compiled_step.py`'s (compiling costs seconds): here only the cuda case runs."""
    if device.type == "cpu":
        pytest.skip("on cpu: tests/ebm_samplers/test_compiled_step.py")
    energy = _OnlyOn(GaussianMixture(), device)
    init = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)).to(device)
    run = dict(init=init, n_steps=40, warmup=2, thin=2, seed=4, adapt_step_size=False, step_size=0.3)
    eager = ebm_samplers.sample(energy, "mala", progress=False, **run)
    compiled = ebm_samplers.sample(energy, "mala", compile_step=True, progress=False, **run)
    _assert_on(device, compiled)
    assert torch.equal(compiled.stats["accepted"], eager.stats["accepted"])
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)


def test_thinned_streamed_and_moment_runs_record_the_same_draws_on_the_device(device, tmp_path):
    """One seed, three recorders: in memory, streamed to disk (read back on the cpu), running moments."""
    energy = _OnlyOn(GaussianMixture(), device)
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
    energy = _OnlyOn(GaussianMixture(), device)
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
        assert result.samples.device.type in ("cpu", device.type)
