"""`sample(..., compile_step=True)`: the torch.compile'd step computes the eager step and samples the target.

One compile per kernel (seconds on a small CPU, cached on disk by TorchInductor), so this file keeps
to one short run per kernel and one MALA run with warm-up.
"""

import pytest
import torch

import ebm_samplers
from energies import Gaussian, GaussianMixture, MLPEnergy
from energies.numba_targets import default_mixture
from tests.deterministic import CuspAt301, Drift, cusp_at_301
from tests.helpers import assert_bivariate_gaussian_moments


def test_compiled_mala_samples_a_correlated_gaussian_within_mcse_and_reports_its_compile_time():
    mean, covariance = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance), "mala", n_chains=200, n_steps=1000, warmup=300, seed=3, compile_step=True
    )
    assert trace.attrs["compile_seconds"] > 0
    assert abs(float(trace.stats["acceptance_rate"].mean()) - 0.574) < 0.05  # warm-up adapted through the step
    assert_bivariate_gaussian_moments(trace.draws.double(), mean, covariance)


@pytest.mark.parametrize(
    "sampler, params",
    [
        ("ula", dict(step_size=0.05)),
        ("mala", dict(step_size=0.3)),
        ("hmc", dict(step_size=0.3, n_leapfrog=(2, 4))),
        ("underdamped_langevin", dict(step_size=0.1)),  # no draw/advance split: its whole step is compiled
    ],
)
def test_compiled_step_computes_the_eager_step(sampler, params):
    """Same seed, same random numbers (drawn eagerly: outside the compiled graph, or at its graph breaks): a
    few transitions agree with eager ones up to rounding (fused arithmetic rounds differently), including
    accept decisions and hmc's per-chain leapfrog lengths."""
    energy, init = GaussianMixture(), torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    runs = [
        ebm_samplers.sample(energy, sampler, init=init, warmup=0, n_steps=5, seed=9, compile_step=compiled, **params)
        for compiled in (False, True)
    ]
    eager, compiled = runs
    assert set(compiled.stats) == set(eager.stats)
    for name in ("accepted", "n_leapfrog"):
        if name in eager.stats:
            assert torch.equal(eager.stats[name], compiled.stats[name]), name
    assert float(eager.stats["accepted"].float().mean()) > 0.5  # the comparison covers moves, not only rejections
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        compiled.stats["potential_energy"], eager.stats["potential_energy"], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "sampler, params, thin, checkpoint_every",
    [
        ("ula", dict(step_size=0.05), 1, 20),  # blocks of 16, all kept, except around the checkpoint at step 20
        # metric="diag": a dense metric's products round differently compiled than eager (another summation
        # order), and on this mixture such differences grow until an accept decision flips; elementwise
        # arithmetic rounds the same, so the diagonal run can be compared decision by decision
        ("mala", dict(step_size=0.3, metric="diag"), 3, None),  # blocks of 15 returning every third state
        ("mala", dict(step_size=0.3, metric="diag"), 20, None),  # blocks of 16 and 4 ending at kept steps
    ],
)
def test_compiled_blocks_of_transitions_compute_the_eager_chain(sampler, params, thin, checkpoint_every, tmp_path):
    """After warm-up, several transitions run in one compiled call, their random numbers drawn first: the kept
    draws, stats and accept decisions are the eager run's, to rounding."""
    energy, init = GaussianMixture(), torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    run = dict(init=init, n_steps=60, warmup=2, thin=thin, seed=4, adapt_step_size=False, **params)
    eager = ebm_samplers.sample(energy, sampler, **run)
    if checkpoint_every is not None:
        run |= dict(checkpoint=tmp_path / "run.pt", checkpoint_every=checkpoint_every)
    compiled = ebm_samplers.sample(energy, sampler, compile_step=True, **run)
    assert compiled.draws.shape == eager.draws.shape == (200, 60 // thin, 2)
    assert list(compiled.stats) == list(eager.stats)
    assert torch.equal(compiled.stats["accepted"], eager.stats["accepted"])
    if sampler == "mala":
        assert 0.2 < float(eager.stats["accepted"].float().mean()) < 0.95  # both moves and rejections compared
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)
    for name in ("potential_energy", "acceptance_rate", "step_size"):
        torch.testing.assert_close(compiled.stats[name], eager.stats[name], rtol=1e-5, atol=1e-5)
    assert not bool(compiled.stats["nonfinite"].any())


def test_blocks_hold_up_to_16_gradients_and_32768_coordinates_and_an_autograd_energy_8_in_a_small_step():
    from ebm_samplers import get_sampler
    from ebm_samplers._compiled_step import CompiledStep

    def longest(sampler, energy, coordinates, small=False, **params):
        return CompiledStep(get_sampler(sampler, **params), energy, coordinates, small=small).longest_block

    mixture = GaussianMixture()
    assert longest("ula", mixture, 1000 * 2) == 16
    assert longest("mala", mixture, 10_000 * 2) == 1  # too many chains: blocks fall out of cache
    assert longest("mala", mixture, 4_000 * 2) == 4
    assert longest("hmc", mixture, 2000, n_leapfrog=4) == 4
    assert longest("hmc", mixture, 2000) == 1  # up to 15 leapfrog steps
    assert longest("ula", lambda x: x.square().sum(-1), 2000) == 1  # autograd in a large step: one per call
    assert longest("ula", lambda x: x.square().sum(-1), 2000, small=True) == 8  # in a small one: blocks
    assert longest("hmc", lambda x: x.square().sum(-1), 2000, small=True, n_leapfrog=4) == 2
    assert longest("underdamped_langevin", mixture, 2000) == 1  # no draw/advance split


def test_a_small_step_compiles_for_one_thread_and_narrow_rows_without_vectors(monkeypatch):
    """`small=True` (a step the run found small, `energies._threads.is_small`) compiles the C++ for one thread;
    otherwise TorchInductor's default stays. Checked on what reaches torch.compile, without compiling."""
    from ebm_samplers import get_sampler
    from ebm_samplers._compiled_step import CompiledStep

    seen = []

    def compile_spy(function, options=None):
        seen.append(options)
        return function

    monkeypatch.setattr(torch, "compile", compile_spy)
    CompiledStep(get_sampler("mala"), GaussianMixture(), 2000, small=True)
    CompiledStep(get_sampler("underdamped_langevin"), GaussianMixture(), 2000, small=True)
    assert seen == [{"cpp.threads": 1}] * 3  # MALA's single step and block, the underdamped step
    seen.clear()
    CompiledStep(get_sampler("mala"), GaussianMixture(), 2000)
    assert seen == [None, None]
    seen.clear()
    CompiledStep(get_sampler("mala"), GaussianMixture(), 2000, small=True, scalar_loops=True)
    assert seen == [{"cpp.threads": 1, "cpp.simdlen": 1}] * 2  # no SIMD vectors (`narrow_rows`)


def test_blocks_are_planned_around_thinning():
    from ebm_samplers._compiled_step import plan_block

    # thin <= 8: the longest multiple of thin, every kept row returned; a start off the thinning grid or too
    # few transitions left: one step alone
    assert plan_block(0, 100, 1, 8) == (8, tuple(range(8)))
    assert plan_block(6, 100, 3, 8) == (6, (2, 5))
    assert plan_block(7, 100, 3, 8) == (1, ())
    assert plan_block(96, 4, 3, 8) == (1, ())
    # thin > 8: blocks end at kept steps (two lengths per run), returning their last row
    assert [plan_block(j, 100, 12, 8) for j in (0, 8, 12)] == [(8, (7,)), (4, (3,)), (8, (7,))]
    assert plan_block(10, 100, 12, 8) == (2, (1,))
    assert plan_block(11, 100, 12, 8) == (1, ())
    assert plan_block(0, 100, 1, 1) == (1, ())  # HMC's long trajectories: one transition per call


def test_an_autograd_gradient_is_traced_into_the_compiled_step():
    """A neural energy's gradient comes from torch.autograd.grad, which dynamo traces only with
    `trace_autograd_ops` (set around the compiled calls alone): the step must still compute the eager one, and
    the setting must not leak out of the run."""
    network = MLPEnergy(2, hidden=(16, 16), generator=torch.Generator().manual_seed(0))

    def energy(x):  # the network alone is nearly flat: a quadratic makes it proper and gives rejections
        return network(x) + 2.0 * x.square().sum(-1)

    init = torch.randn(100, 2, generator=torch.Generator().manual_seed(2))
    run = dict(init=init, warmup=0, n_steps=6, seed=5, step_size=0.4)
    eager = ebm_samplers.sample(energy, "mala", **run)
    torch._dynamo.utils.counters.clear()
    compiled = ebm_samplers.sample(energy, "mala", compile_step=True, **run)
    assert not torch._dynamo.utils.counters["graph_break"]  # the whole advance, gradient included, is one graph
    assert torch.equal(compiled.stats["accepted"], eager.stats["accepted"])
    assert 0.2 < float(eager.stats["accepted"].float().mean()) < 0.95
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)
    assert torch._dynamo.config.trace_autograd_ops is False


def test_runs_keep_compiling_past_dynamos_default_recompile_limit():
    """Dynamo keeps a few graphs per function (8 by default, 1 here) and then silently runs it eagerly: a
    process that samples several kernels, energies or dtypes would lose compile_step without notice."""
    energy = Gaussian(torch.zeros(3))
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(recompile_limit=1):
        for dtype in (torch.float32, torch.float64):
            init = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
            ebm_samplers.sample(energy.to(dtype), "ula", init=init, warmup=0, n_steps=3, seed=0, compile_step=True)
    frames = torch._dynamo.utils.counters["frames"]
    assert frames["total"] >= 1 and frames["ok"] == frames["total"]  # every graph asked for was compiled


def test_compile_step_is_checked_and_is_for_the_torch_path():
    with pytest.raises(TypeError, match="compile_step must be True or False"):
        ebm_samplers.sample(GaussianMixture(), "mala", n_chains=4, warmup=0, n_steps=2, compile_step="yes")
    with pytest.raises(ValueError, match="numba loops"):
        ebm_samplers.sample(default_mixture(), "mala", n_chains=4, warmup=0, n_steps=2, compile_step=True)


@pytest.mark.parametrize(
    "energy, warmup, named",
    [
        (cusp_at_301, 0, "step 295"),  # autograd's gradient in a small step: blocks of 8 transitions
        # an analytic gradient: compiled blocks after warm-up, so step 295 falls in them at different rows
        (CuspAt301(), 0, "step 295"),
        (CuspAt301(), 1, "step 294"),
        (CuspAt301(), 2, "step 293"),
        (CuspAt301(), 300, "warm-up step 295"),  # a single step in warm-up
    ],
)
def test_the_compiled_step_checks_new_states_for_the_run_loop(energy, warmup, named):
    """The finiteness check of new states moves into the compiled graph; a finite energy with a non-finite
    gradient (sqrt|x - 301| at 301) must still stop the run at the exact chain and step."""
    init = torch.tensor([[0.0], [5.0], [2.0]])  # chain 1 reaches the cusp first, at step 295
    with pytest.raises(FloatingPointError, match=rf"chain 1 at {named} \(the new state: energy 0 with a non-finite"):
        ebm_samplers.sample(energy, Drift(), init=init, n_steps=400, warmup=warmup, seed=0, compile_step=True)
