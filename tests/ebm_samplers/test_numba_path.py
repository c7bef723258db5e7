"""The compiled numba path: selection, reproducibility, trace layout, thinning, failures and cost.

Its statistical correctness is tested by the shared moment tests (test_langevin_kernels.py, test_hmc.py), which
run on both paths.
"""

import numba
import numpy as np
import pytest
import torch

import ebm_samplers
from ebm_samplers.kernels.mala import MALA
from energies import Gaussian, NumbaEnergy
from energies.numba_targets import default_mixture, diagonal_gaussian
from tests.helpers import assert_matches

SAMPLERS = ("ula", "mala", "hmc")


@pytest.fixture(scope="module")
def mixture():
    return default_mixture()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_trace_layout_as_the_torch_path(mixture, sampler):
    run = dict(n_chains=6, warmup=0, n_steps=20, thin=2, seed=0, step_size=0.1)
    compiled = ebm_samplers.sample(mixture, sampler, **run)
    reference = ebm_samplers.sample(mixture, sampler, backend="torch", **run)
    assert compiled.attrs["backend"] == "numba" and "backend" not in reference.attrs
    assert compiled.draws.shape == reference.draws.shape and compiled.draws.dtype == reference.draws.dtype
    assert set(compiled.stats) == set(reference.stats)
    for name, values in reference.stats.items():
        assert compiled.stats[name].dtype == values.dtype, name
    assert not torch.equal(compiled.draws, reference.draws)  # different generators, same law
    assert torch.isfinite(compiled.draws).all()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_draws_whatever_the_thread_count(mixture, sampler):
    run = dict(n_chains=9, warmup=0, n_steps=30, seed=5, step_size=0.2)
    first = ebm_samplers.sample(mixture, sampler, **run)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = ebm_samplers.sample(mixture, sampler, **run)
    finally:
        numba.set_num_threads(threads)
    other_seed = ebm_samplers.sample(mixture, sampler, **{**run, "seed": 6})
    assert torch.equal(first.draws, single.draws)
    assert not torch.equal(first.draws, other_seed.draws)


def test_thinning_keeps_every_thin_th_step(mixture):
    run = dict(n_chains=3, warmup=0, n_steps=12, seed=5, step_size=0.1)
    full = ebm_samplers.sample(mixture, "mala", **run)
    thinned = ebm_samplers.sample(mixture, "mala", thin=4, **run)
    assert torch.equal(thinned.draws, full.draws[:, 3::4])
    assert torch.equal(thinned.stats["accepted"], full.stats["accepted"][:, 3::4])


def test_float64_chains_get_float64_draws_of_the_same_trajectory(mixture):
    # float32 chains have their draws written in float32 by the loop; float64 chains by a float64 version of it.
    # Same seed, same start and a step size exact in both dtypes: the same trajectory, rounded or not.
    init = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    run = dict(warmup=0, n_steps=12, thin=3, seed=4, step_size=0.125)
    single = ebm_samplers.sample(mixture, "hmc", init=init, **run)
    double = ebm_samplers.sample(mixture, "hmc", init=init.double(), **run)
    assert single.draws.dtype == torch.float32 and double.draws.dtype == torch.float64
    assert torch.equal(double.draws.float(), single.draws)
    assert not torch.equal(double.draws, double.draws.float().double())  # float64 draws are not rounded ones


def test_warmup_without_adaptation_runs_compiled_and_continues_the_same_chains(mixture):
    run = dict(n_chains=4, seed=3, step_size=0.1, adapt_step_size=False, adapt_mass_matrix=False)
    long = ebm_samplers.sample(mixture, "mala", n_steps=30, **run)
    warm = ebm_samplers.sample(mixture, "mala", n_steps=20, warmup=10, **run)
    assert torch.equal(warm.draws, long.draws[:, 10:])  # warm-up is the first 10 of the same transitions


def test_numba_ula_matches_the_exact_biased_variance_of_a_stiff_coordinate():
    # per coordinate, ULA on N(0, v) is an AR(1) with stationary variance v / (1 - h / (2 v))
    variances = np.array([0.05, 1.0])
    h = 0.05
    trace = ebm_samplers.sample(
        diagonal_gaussian(np.zeros(2), variances),
        "ula",
        n_chains=400,
        n_steps=400,
        warmup=100,
        seed=8,
        step_size=h,
        adapt_mass_matrix=False,  # the identity metric: its exact variance below
    )
    per_chain = trace.draws.double().square().mean(dim=1)
    for i, v in enumerate(variances):
        assert_matches(per_chain[:, i], v / (1 - h / (2 * v)), f"ULA variance of coordinate {i}")


def test_selection_and_its_errors(mixture):
    with pytest.raises(ValueError, match="backend"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, backend="jax")
    with pytest.raises(ValueError, match="NumbaEnergy"):
        ebm_samplers.sample(Gaussian([0.0]), "mala", n_chains=2, warmup=0, n_steps=2, backend="numba")

    class MyMALA(MALA):  # a user subclass may change step(), so it keeps the torch path
        pass

    trace = ebm_samplers.sample(mixture, MyMALA(step_size=0.1), n_chains=2, warmup=0, n_steps=3, seed=0)
    assert "backend" not in trace.attrs


def test_a_nan_energy_fails_the_run_with_the_chain_and_step():
    @numba.njit
    def energy_fn(x):
        return 0.5 * x[0] * x[0] if x[0] < 3.0 else np.nan

    @numba.njit
    def grad_fn(x, grad_out):
        grad_out[0] = x[0]
        return energy_fn(x)

    energy = NumbaEnergy(energy_fn, grad_fn, 1, name="broken")
    with pytest.raises(FloatingPointError, match=r"broken .* chain"):
        ebm_samplers.sample(energy, "ula", init=torch.zeros(50, 1), warmup=0, n_steps=2000, seed=0, step_size=0.5)


def test_compiled_loops_are_cached_under_a_digest_of_the_helpers_compiled_into_them(monkeypatch):
    """numba's cache sees only a loop's own file; a loop compiled with older helpers must never be loaded."""
    from ebm_samplers._numba import _loop, load_loop

    digest = _loop.helpers_digest()
    for name in ("ula", "mala", "hmc"):
        assert load_loop(name).py_func.__qualname__.endswith(f"_{digest}")
    monkeypatch.setattr(_loop, "HELPER_FILES", ("_moves.py",))
    assert _loop.helpers_digest() != digest


def _run_loop(name, energy, init, step_size, seeds, inverse_mass, n_steps=40, thin=3, warmup=4):
    """Call the numba loop directly with explicit per-chain seeds; returns its outputs."""
    from ebm_samplers._numba import load_loop

    n, keep = init.shape[0], n_steps // thin
    outputs = [np.empty((n, keep, init.shape[1]), dtype=np.float32), np.empty((n, keep)), np.empty((n, keep))]
    outputs += [np.zeros((n, keep), dtype=bool), np.zeros((n, keep), dtype=bool), np.empty(n, dtype=np.int64)]
    arguments = (energy.grad_fn, init, step_size, seeds, warmup, n_steps, thin, *outputs)
    if name == "hmc":  # a jittered path length, so the chains of a block run different numbers of leapfrog steps
        outputs += [np.empty((n, keep), dtype=np.int64), np.empty((n, keep)), np.empty((n, keep))]
        arguments += (inverse_mass, 2, 7, 1000.0, *outputs[6:])
    else:  # a diagonal metric per chain
        arguments += (inverse_mass, np.sqrt(inverse_mass))
    load_loop(name)(*arguments)
    return outputs


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_chains_draws_do_not_depend_on_the_block_it_runs_in(mixture, sampler):
    # 301 chains run in blocks of 4 (the last one short); 6 of them alone run one chain a block
    rng = np.random.default_rng(0)
    n = 301
    init = rng.normal(size=(n, 2)) * 2.0
    step_size = rng.uniform(0.05, 0.3, size=n)
    seeds = rng.integers(0, 2**62, size=n)
    inverse_mass = rng.uniform(0.5, 2.0, size=(n, 2))
    together = _run_loop(sampler, mixture, init, step_size, seeds, inverse_mass)
    subset = np.array([0, 1, 2, 3, 4, n - 1])
    alone = _run_loop(sampler, mixture, init[subset].copy(), step_size[subset].copy(), seeds[subset].copy(),
                      inverse_mass[subset].copy())  # fmt: skip
    for all_chains, some_chains in zip(together, alone, strict=True):
        np.testing.assert_array_equal(all_chains[subset], some_chains)
