"""Converged and the monitor that stops a run when every coordinate meets the thresholds."""

import math

import arviz as az
import numpy as np
import pytest
import torch

from diagnostics import diagnose
from diagnostics.convergence import convergence_figures
from ebm_samplers.stopping import Converged, ConvergenceMonitor, check_until, truncated
from ebm_samplers.trace import Trace


def _feed(monitor: ConvergenceMonitor, draws: torch.Tensor, seconds_per_draw: float = 1.0) -> int:
    """What the run loop does: after each kept draw, check when due; return the draws kept at the stop.
    Sampling is taken to cost `seconds_per_draw` (by default far more than a check: the budget never binds)."""
    for n_kept in range(1, draws.shape[1] + 1):
        if monitor.due(n_kept, n_kept * seconds_per_draw) and monitor.check(draws, n_kept):
            return n_kept
    monitor.final_check(draws, draws.shape[1])
    return draws.shape[1]


def test_stops_at_the_first_check_that_meets_every_threshold():
    draws = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 5000, 3)))
    until = Converged()
    monitor = ConvergenceMonitor(until, n_chains=4)
    stopped = _feed(monitor, draws)
    assert stopped < 1000  # 4 chains of independent draws: about 4 effective draws per kept draw
    figures = convergence_figures(draws[:, :stopped].numpy())
    assert until.met(figures)
    attrs = monitor.attrs()
    assert attrs["converged"] and attrs["converged_at_draw"] == stopped and "shortfall" not in attrs
    assert {k: attrs["until"][k] for k in ("r_hat", "ess_bulk", "ess_tail", "check_every", "growth")} == {
        "r_hat": 1.01,
        "ess_bulk": 400.0,
        "ess_tail": 400.0,
        "check_every": 100,
        "growth": 1.25,
    }
    assert set(attrs["until"]) == {"r_hat", "ess_bulk", "ess_tail", "check_every", "growth", "budget", "check_draws"}


def test_a_run_that_never_converges_reports_its_shortfall_and_checks_geometrically():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 20_000, 2)) + np.array([0.0, 0.0, 5.0, 5.0])[:, None, None]  # two modes
    monitor = ConvergenceMonitor(Converged(), n_chains=4)
    assert _feed(monitor, torch.from_numpy(draws)) == 20_000
    attrs = monitor.attrs()
    assert not attrs["converged"]
    # the first check after 100 draws, then at least 1.25x more each time: about log(200)/log(1.25) checks
    assert attrs["convergence_checks"] <= math.ceil(math.log(20_000 / 100) / math.log(1.25)) + 2
    shortfall = attrs["shortfall"]
    assert shortfall["worst"]["r_hat"] > 1.5 and shortfall["coordinates_missing"]["r_hat"] == 2
    # diagnose names the shortfall of a capped run
    tree = az.from_dict({"posterior": {"x": draws[:, :500]}}, attrs={"posterior": {k: v for k, v in attrs.items()}})
    (problem,) = [p for p in diagnose(tree).problems if p.kind == "not_converged"]
    assert "reached max_steps before meeting until=Converged(R-hat <= 1.01" in problem.message
    assert f"largest R-hat {shortfall['worst']['r_hat']:.3f}" in problem.message


def test_checks_keep_to_the_time_budget():
    draws = torch.from_numpy(np.random.default_rng(3).normal(size=(4, 20_000, 2)))
    never = Converged(r_hat=1 + 1e-12)
    free = ConvergenceMonitor(never, n_chains=4)
    _feed(free, draws)
    # sampling as cheap as 10 ns per kept draw: 5% of it pays for nothing after the first check
    cheap = ConvergenceMonitor(never, n_chains=4)
    _feed(cheap, draws, seconds_per_draw=1e-8)
    assert cheap.checks == 1 < free.checks
    assert free.attrs()["convergence_checks"] == free.checks


def test_shortfall_survives_a_saved_trace(tmp_path):
    draws = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 300, 1)))
    monitor = ConvergenceMonitor(Converged(ess_bulk=100_000.0), n_chains=4)
    _feed(monitor, draws)
    trace = Trace(draws=draws, attrs=monitor.attrs())
    problems = diagnose(Trace.load(trace.save(tmp_path / "t.nc"))).kinds()
    assert "not_converged" in problems


def test_truncated_keeps_the_first_draws_of_every_field():
    trace = Trace(
        draws=torch.arange(24.0).reshape(2, 6, 2),
        stats={"a": torch.ones(2, 6)},
        derived={"s": torch.zeros(2, 6, 3)},
    )
    short = truncated(trace, 4)
    assert short.draws.shape == (2, 4, 2) and short.stats["a"].shape == (2, 4) and short.derived["s"].shape == (2, 4, 3)
    assert torch.equal(short.draws, trace.draws[:, :4])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"r_hat": 1.0}, "r_hat must be a number > 1"),
        ({"ess_bulk": 0}, "ess_bulk must be a number > 0"),
        ({"ess_tail": float("nan")}, "ess_tail must be a number > 0"),
        ({"check_every": 2}, "check_every must be an integer >= 4"),
        ({"growth": 1.0}, "growth must be a number > 1"),
    ],
)
def test_bad_thresholds_are_one_line_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        Converged(**arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"until": Converged(), "max_steps": 100, "warmup": 0, "adapts": True},
            "with warmup=0 on a kernel that adapts",
        ),
        ({"until": Converged(), "max_steps": None}, "needs max_steps, an integer >= 1"),
        ({"until": Converged(), "max_steps": 100, "n_steps": 50}, "give max_steps"),
        ({"max_steps": 100}, "max_steps caps a run that stops when converged"),
        ({}, "n_steps must be given"),
        ({"until": Converged(), "max_steps": 100, "keep": "moments"}, "use keep=.draws., no stream"),
    ],
)
def test_until_arguments_are_checked(arguments, message):
    full = {"until": None, "max_steps": None, "n_steps": None, "warmup": 100, "adapts": True, "keep": "draws"}
    full |= {"stream": None, "checkpoint": None, **arguments}
    with pytest.raises(ValueError, match=message):
        check_until(full.pop("until"), full.pop("max_steps"), full.pop("n_steps"), **full)
    with pytest.raises(TypeError, match=r"until must be an ebm_samplers\.Converged"):
        check_until({"r_hat": 1.01}, 10, None, warmup=10, adapts=True, keep="draws", stream=None, checkpoint=None)
    assert (
        check_until(Converged(), 500, None, warmup=0, adapts=False, keep="draws", stream=None, checkpoint=None) == 500
    )


def test_min_draws_agrees_with_the_diagnostics():
    from diagnostics.convergence import MIN_DRAWS
    from ebm_samplers import stopping

    assert stopping.MIN_DRAWS == MIN_DRAWS


def test_sample_until_converged_stops_early_and_meets_the_thresholds():
    import ebm_samplers
    from diagnostics import summary
    from energies import Gaussian

    until = Converged()
    trace = ebm_samplers.sample(
        Gaussian([0.0, 0.0], [1.0, 4.0]), "mala", n_chains=4, warmup=300, until=until, max_steps=20_000, seed=0
    )
    assert trace.attrs["converged"] and trace.n_draws == trace.attrs["converged_at_draw"] < 20_000
    assert trace.attrs["n_steps"] == trace.n_draws and trace.stats["potential_energy"].shape == (4, trace.n_draws)
    table = summary(trace)
    assert (table["r_hat"] <= 1.01).all() and (table["ess_bulk"] >= 400).all() and (table["ess_tail"] >= 400).all()

    capped = ebm_samplers.sample(
        Gaussian([0.0, 0.0], [1.0, 4.0]), "mala", n_chains=4, warmup=300, until=until, max_steps=150, seed=0
    )
    assert not capped.attrs["converged"] and capped.n_draws == 150 and "shortfall" in capped.attrs
    assert "not_converged" in diagnose(capped).kinds()


def test_sample_until_refuses_what_it_cannot_do():
    import ebm_samplers
    from energies import Gaussian

    target = Gaussian([0.0, 0.0])
    with pytest.raises(ValueError, match="with warmup=0 on a kernel that adapts"):
        ebm_samplers.sample(target, "mala", n_chains=4, warmup=0, until=Converged(), max_steps=100)
    with pytest.raises(ValueError, match="give max_steps"):
        ebm_samplers.sample(target, "mala", n_chains=4, warmup=10, until=Converged(), n_steps=100)
    with pytest.raises(ValueError, match="n_steps must be given"):
        ebm_samplers.sample(target, "mala", n_chains=4)
