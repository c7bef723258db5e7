"""NUTS against Stan's recursive tree building (exactly), against exact moments (MCSE tolerances), and its edges.

Moment tolerances: |estimate - truth| < Z MCSE, with the MCSE of the mean from the project's bulk ESS
(`diagnostics.convergence_figures`, pooled over chains); a variance is checked as the mean of the squared
deviation from the known mean, with that series' MCSE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics import convergence_figures
from ebm_samplers.kernels._kinetic import sample_momentum
from energies import Funnel, Gaussian, energy_and_grad
from tests.helpers import assert_matches

#: ESS-based MCSEs are themselves estimates; 4 MCSE keeps a false alarm rare while catching a real bias.
Z = 4.0

MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
COVARIANCE = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)


def assert_moments(draws: torch.Tensor, mean: torch.Tensor, variances: torch.Tensor, what: str) -> None:
    """Every coordinate's mean and variance of `draws` (chain, draw, d) within Z MCSE of the truth."""
    draws = draws.double()
    mean, variances = mean.double(), variances.double()
    series = torch.cat([draws, (draws - mean).square()], dim=-1).numpy()
    figures = convergence_figures(np.ascontiguousarray(series))
    truth = torch.cat([mean, variances]).numpy()
    z = np.abs(figures["mean"] - truth) / figures["mcse_mean"]
    assert (z < Z).all(), f"{what}: estimates {figures['mean']} vs truth {truth}, z = {z}"


# ---- the tree, exactly as Stan builds it


def _stan_tree(energy, kernel, state, chain, momentum, forward, extra_checks=True):
    """Stan's recursive multinomial NUTS (base_nuts.hpp, 2.26+) for one chain, written independently of the
    kernel: (tree_depth, n_leapfrog, diverging, accept_stat). `forward[j]` is the direction of doubling j."""
    m, eps = state.inverse_mass[chain], float(state.step_size[chain])

    def hamiltonian(z):
        return float(z[3]) + 0.5 * float((z[1] * z[1] * m).sum())

    def evolve(z, signed):
        x, p, g, _ = z
        p = p - 0.5 * signed * g
        x = x + signed * m * p
        value, g = energy_and_grad(energy, x[None])
        return x, p - 0.5 * signed * g[0], g[0], value[0]

    def criterion(sharp_minus, sharp_plus, rho):
        return float(sharp_plus @ rho) > 0 and float(sharp_minus @ rho) > 0

    z0 = (state.position[chain], momentum, state.grad[chain], state.energy[chain])
    h0 = hamiltonian(z0)
    tally = {"n": 0, "metro": 0.0, "divergent": False, "z": z0}

    def build(depth, sign):  # (valid, rho, p_beg, p#_beg, p_end, p#_end); moves tally["z"] along
        if depth == 0:
            tally["z"] = evolve(tally["z"], sign * eps)
            tally["n"] += 1
            h = hamiltonian(tally["z"])
            h = math.inf if math.isnan(h) or h == -math.inf else h
            tally["divergent"] |= h - h0 > kernel.divergence_threshold
            tally["metro"] += 1.0 if h0 - h > 0 else math.exp(h0 - h)
            p = tally["z"][1]
            return not tally["divergent"], p, p, m * p, p, m * p
        valid, rho_init, p_beg, s_beg, p_init_end, s_init_end = build(depth - 1, sign)
        if not valid:
            return (False,) + (None,) * 5
        valid, rho_final, p_final_beg, s_final_beg, p_end, s_end = build(depth - 1, sign)
        if not valid:
            return (False,) + (None,) * 5
        ok = criterion(s_beg, s_end, rho_init + rho_final)
        if extra_checks:
            ok = ok and criterion(s_beg, s_final_beg, rho_init + p_final_beg)
            ok = ok and criterion(s_init_end, s_end, rho_final + p_init_end)
        return ok, rho_init + rho_final, p_beg, s_beg, p_end, s_end

    z_fwd = z_bck = z0
    p_fwd_fwd = p_bck_bck = momentum
    s_fwd_fwd = s_bck_bck = m * momentum
    rho, depth = momentum, 0
    while depth < kernel.max_tree_depth:
        if forward[depth]:
            tally["z"] = z_fwd
            rho_bck, p_bck_fwd, s_bck_fwd = rho, p_fwd_fwd, s_fwd_fwd
            valid, rho_fwd, p_fwd_bck, s_fwd_bck, p_fwd_fwd, s_fwd_fwd = build(depth, 1.0)
            z_fwd = tally["z"]
        else:
            tally["z"] = z_bck
            rho_fwd, p_fwd_bck, s_fwd_bck = rho, p_bck_bck, s_bck_bck
            valid, rho_bck, p_bck_fwd, s_bck_fwd, p_bck_bck, s_bck_bck = build(depth, -1.0)
            z_bck = tally["z"]
        if not valid:
            break
        depth += 1
        rho = rho_bck + rho_fwd
        ok = criterion(s_bck_bck, s_fwd_fwd, rho)
        if extra_checks:
            ok = ok and criterion(s_bck_bck, s_fwd_bck, rho_bck + p_fwd_bck)
            ok = ok and criterion(s_bck_fwd, s_fwd_fwd, rho_fwd + p_bck_fwd)
        if not ok:
            break
    return depth, tally["n"], tally["divergent"], tally["metro"] / tally["n"]


@pytest.mark.parametrize(
    ("step_size", "max_tree_depth", "stack_limit"),
    [(0.05, 10, None), (0.05, 10, 0), (0.25, 10, None), (0.005, 4, None)],
)
def test_every_chain_builds_the_tree_stan_builds(step_size, max_tree_depth, stack_limit, monkeypatch):
    # trees of 1 to 127 states, divergent ones (0.25 is too large for the 0.1-scale coordinate) and capped ones;
    # the kernel draws the momentum, then per doubling a block of uniforms whose first row is the direction.
    # stack_limit=0: the U-turn checks of large batches (one product per end, not stacked)
    if stack_limit is not None:
        monkeypatch.setattr("ebm_samplers.kernels.nuts._STACK_LIMIT", stack_limit)
    scales = torch.tensor([0.1, 0.3, 0.7, 1.0, 2.0], dtype=torch.float64)
    target = Gaussian(torch.zeros(5, dtype=torch.float64), scales.square())
    kernel = ebm_samplers.get_sampler("nuts", step_size=step_size, max_tree_depth=max_tree_depth)
    state = kernel.init(
        torch.randn(200, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * scales, target
    )
    _, info = kernel.step(state, target, torch.Generator().manual_seed(7))

    generator = torch.Generator().manual_seed(7)
    momentum = sample_momentum(state.inverse_mass, generator)
    directions = [
        torch.rand(((1 << j) + 2, 200), generator=generator, dtype=torch.float64)[0] < 0.5
        for j in range(max_tree_depth)
    ]
    trees, plain = [], []
    for chain in range(200):
        forward = [bool(d[chain]) for d in directions]
        trees.append(_stan_tree(target, kernel, state, chain, momentum[chain], forward))
        plain.append(_stan_tree(target, kernel, state, chain, momentum[chain], forward, extra_checks=False)[1])
    depth, n_leapfrog, diverging, accept_stat = zip(*trees, strict=True)
    assert info["tree_depth"].tolist() == list(depth)
    assert info["n_leapfrog"].tolist() == list(n_leapfrog)
    assert info["diverging"].tolist() == list(diverging)
    torch.testing.assert_close(info["acceptance_rate"], torch.tensor(accept_stat, dtype=torch.float64))
    # the batch ran whole doublings until its last tree ended: 2^k - 1 steps, at least the longest tree
    batch = int(info["n_leapfrog_batch"][0])
    assert bool((info["n_leapfrog_batch"] == batch).all()) and (batch + 1) & batch == 0
    assert max(n_leapfrog) <= batch < 2 * max(n_leapfrog) + 1
    if step_size == 0.05:  # the comparison has teeth: without Stan's extra checks some trees differ
        assert list(plain) != list(n_leapfrog)
    if step_size == 0.25:
        assert any(diverging) and not all(diverging)


# ---- the distribution


def test_one_transition_from_the_target_stays_at_the_target():
    # Independent exact draws in, one transition each: the output must still be exact, whatever the tree. A step
    # of 0.9 makes large energy errors, so the weights and the biased top-level draw matter. The kept (x, p)
    # is distributed as exp(-H), so the kept kinetic energy H - E averages d/2.
    target = Gaussian(MEAN, COVARIANCE)
    generator = torch.Generator().manual_seed(11)
    kernel = ebm_samplers.get_sampler("nuts", step_size=0.9)
    state = kernel.init(target.sample(20_000, generator), target)
    new, info = kernel.step(state, target, generator)
    x = new.position
    assert 0.2 < float(info["accepted"].double().mean()) < 0.95
    groups = lambda values: values.reshape(100, -1).mean(-1)  # noqa: E731  (independent draws: plain MCSE)
    for i in range(2):
        assert_matches(groups(x[:, i]), float(MEAN[i]), f"mean[{i}]")
        assert_matches(groups((x[:, i] - MEAN[i]).square()), float(COVARIANCE[i, i]), f"variance[{i}]")
    assert_matches(groups((x[:, 0] - MEAN[0]) * (x[:, 1] - MEAN[1])), float(COVARIANCE[0, 1]), "covariance")
    assert_matches(groups(info["hamiltonian"] - new.energy), 1.0, "kinetic energy of the kept state")


def test_nuts_matches_a_correlated_gaussian_after_warmup():
    trace = ebm_samplers.sample(Gaussian(MEAN, COVARIANCE), "nuts", n_chains=16, n_steps=400, warmup=200, seed=41)
    assert_moments(trace.draws, MEAN, torch.diagonal(COVARIANCE), "correlated 2-D Gaussian")
    assert not bool(trace.stats["diverging"].any())
    # target 0.8; each chain's own step-size recursion lands above it (see test_adaptation), as Stan's does
    assert 0.75 < float(trace.stats["acceptance_rate"].double().mean()) < 0.95


def test_nuts_matches_an_ill_conditioned_gaussian():
    # scales over two orders of magnitude: the identity metric of early warm-up needs long trees (capped at 2^6 - 1
    # steps to keep the test short), the adapted diagonal metric short ones
    variances = torch.logspace(-3, 1, 6, dtype=torch.float64)
    target = Gaussian(torch.zeros(6, dtype=torch.float64), variances)
    init = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * variances.sqrt()
    trace = ebm_samplers.sample(target, "nuts", init=init, n_steps=300, warmup=300, seed=42, max_tree_depth=6)
    assert_moments(trace.draws, torch.zeros(6), variances, "ill-conditioned Gaussian")
    ratio = torch.tensor(trace.attrs["final_inverse_mass"], dtype=torch.float64) / variances
    assert bool(((ratio > 0.5) & (ratio < 2)).all()), ratio


def test_one_chain_and_many_chains_in_lockstep_sample_the_same_distribution():
    # the same target run as 1 chain and as 64 chains: both match the truth, and each other within their MCSE
    target = Gaussian(MEAN, COVARIANCE)
    init = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    single = ebm_samplers.sample(target, "nuts", init=init, n_steps=1200, warmup=150, seed=43)
    many = ebm_samplers.sample(target, "nuts", init=init.expand(64, 2), n_steps=60, warmup=150, seed=44)
    estimates = []
    for trace in (single, many):
        assert_moments(trace.draws, MEAN, torch.diagonal(COVARIANCE), f"{trace.draws.shape[0]} chain(s)")
        figures = convergence_figures(np.ascontiguousarray(trace.draws.double().numpy()))
        estimates.append((figures["mean"], figures["mcse_mean"]))
    (a, sa), (b, sb) = estimates
    assert (np.abs(a - b) < Z * np.sqrt(sa**2 + sb**2)).all(), estimates


# ---- the tree's edges


def test_max_tree_depth_caps_the_trajectory():
    target = Gaussian(MEAN, COVARIANCE)
    init = torch.zeros(32, 2, dtype=torch.float64)
    one = ebm_samplers.sample(target, "nuts", init=init, warmup=0, n_steps=20, seed=45, max_tree_depth=1)
    assert bool((one.stats["n_leapfrog"] == 1).all()) and bool((one.stats["tree_depth"] == 1).all())
    # steps far too small to turn: every tree runs to the cap, 2^3 - 1 states
    capped = ebm_samplers.sample(
        target, "nuts", init=init, warmup=0, n_steps=20, seed=46, max_tree_depth=3, step_size=1e-3
    )
    assert bool((capped.stats["n_leapfrog"] == 7).all()) and bool((capped.stats["tree_depth"] == 3).all())
    assert bool((capped.stats["n_leapfrog_batch"] == 7).all())


def test_an_infinite_energy_outside_a_box_is_a_divergence_not_a_failure():
    # N(0, 1) in each coordinate restricted to |x_i| < 1: +inf outside is zero density, a legitimate value
    def boxed(x):
        inside = (x.abs() < 1).all(-1)
        return torch.where(inside, 0.5 * x.square().sum(-1), torch.full_like(x[:, 0], math.inf))

    init = torch.zeros(16, 2, dtype=torch.float64)
    trace = ebm_samplers.sample(boxed, "nuts", init=init, n_steps=200, warmup=100, seed=47)
    assert bool((trace.draws.abs() < 1).all())
    assert bool(trace.stats["diverging"].any())
    # the truncated normal's variance: 1 - 2 phi(1) / (Phi(1) - Phi(-1))
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    variance = 1 - 2 * phi / math.erf(1 / math.sqrt(2))
    assert_moments(trace.draws, torch.zeros(2), torch.full((2,), variance), "Gaussian in a box")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_tree_depth": 0}, "max_tree_depth must be an int >= 1"),
        ({"max_tree_depth": 2.5}, "max_tree_depth must be an int >= 1"),
        ({"max_tree_depth": True}, "max_tree_depth must be an int >= 1"),
        ({"step_size": -0.1}, "step_size must be a finite number > 0"),
        ({"step_size": 0.0}, "step_size must be a finite number > 0"),
        ({"divergence_threshold": -1.0}, "divergence_threshold must be a finite number > 0"),
        ({"metric": "full"}, "metric must be 'diag' or 'dense'.*; got 'full'"),
    ],
)
def test_bad_parameters_are_refused_naming_what_is_accepted(params, message):
    with pytest.raises(ValueError, match=message):
        ebm_samplers.get_sampler("nuts", **params)


def test_nuts_is_not_compiled_and_has_no_numba_loop():
    from ebm_samplers._numba import supports

    kernel = ebm_samplers.get_sampler("nuts")
    assert not supports(kernel)
    with pytest.raises(ValueError, match="compile_step=True cannot compile the nuts step"):
        ebm_samplers.sample(
            Gaussian(MEAN, COVARIANCE), "nuts", n_chains=2, warmup=0, n_steps=3, seed=0, compile_step=True
        )


def test_sample_with_nuts_end_to_end_feeds_arviz():
    target = Gaussian(MEAN.float(), COVARIANCE.float())
    trace = ebm_samplers.sample(target, "nuts", n_chains=4, n_steps=100, warmup=100, seed=48)
    assert trace.attrs["adapted_step_size"] and trace.attrs["adapted_mass_matrix"]
    stats = trace.stats
    for name in ("acceptance_rate", "accepted", "diverging", "tree_depth", "n_leapfrog", "hamiltonian"):
        assert stats[name].shape == (4, 100), name
    assert bool((stats["n_leapfrog"] >= 1).all()) and bool((stats["n_leapfrog"] <= 2 ** stats["tree_depth"] * 2).all())
    potential = stats["potential_energy"] if "potential_energy" in stats else stats["energy"]
    torch.testing.assert_close(potential, target(trace.draws.reshape(-1, 2)).reshape(4, 100))
    assert bool((stats["hamiltonian"] >= potential).all())  # H = E + K with K >= 0
    sample_stats = trace.to_arviz()["sample_stats"]
    for name in ("diverging", "tree_depth", "n_leapfrog"):
        assert name in sample_stats.data_vars, name
    if "potential_energy" in stats:  # the run loop exports the Hamiltonian as ArviZ's `energy`
        np.testing.assert_allclose(sample_stats["energy"].values, stats["hamiltonian"].numpy())


class _Interrupted(Exception):
    pass


def test_a_resumed_nuts_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    # the state and the warm-up adaptation (step size and metric) resume exactly, whatever the trees' lengths
    calls = {"n": 0, "limit": None}

    def quartic(x):
        calls["n"] += 1
        if calls["limit"] is not None and calls["n"] > calls["limit"]:
            raise _Interrupted
        r2 = (x**2).sum(-1)
        return 0.5 * r2 + 0.1 * r2**2

    run = dict(init=torch.zeros(5, 2), n_steps=80, warmup=40, thin=2, seed=4, step_size=0.3)
    full = ebm_samplers.sample(quartic, "nuts", **run)
    path = tmp_path / "run.ckpt"
    calls.update(n=0, limit=calls["n"] // 2)  # dies around the middle of the run
    with pytest.raises(_Interrupted):
        ebm_samplers.sample(quartic, "nuts", checkpoint=path, checkpoint_every=25, **run)
    calls["limit"] = None
    resumed = ebm_samplers.sample(quartic, "nuts", checkpoint=path, checkpoint_every=25, **run)
    assert torch.equal(resumed.draws, full.draws)
    for name, values in full.stats.items():
        assert torch.equal(resumed.stats[name], values), name


# ---- long statistical tests


@pytest.mark.slow
def test_nuts_on_a_100d_ill_conditioned_rotated_gaussian():
    generator = torch.Generator().manual_seed(5)
    rotation, _ = torch.linalg.qr(torch.randn(100, 100, generator=generator, dtype=torch.float64))
    eigenvalues = torch.logspace(-2, 2, 100, dtype=torch.float64)
    covariance = (rotation * eigenvalues) @ rotation.T
    target = Gaussian(torch.zeros(100, dtype=torch.float64), covariance)
    init = torch.randn(8, 100, generator=generator, dtype=torch.float64)
    trace = ebm_samplers.sample(target, "nuts", init=init, n_steps=1500, warmup=1000, seed=49)
    assert_moments(trace.draws, torch.zeros(100), torch.diagonal(covariance), "100-d rotated Gaussian")
    figures = convergence_figures(np.ascontiguousarray(trace.draws.double().numpy()))
    assert figures["r_hat"].max() < 1.1 and figures["ess_bulk"].min() > 100


@pytest.mark.slow
def test_nuts_flags_divergences_in_neals_funnel():
    trace = ebm_samplers.sample(Funnel(10), "nuts", n_chains=8, n_steps=1500, warmup=1000, seed=50)
    assert int(trace.stats["diverging"].sum()) > 0
    assert bool(torch.isfinite(trace.draws).all())
