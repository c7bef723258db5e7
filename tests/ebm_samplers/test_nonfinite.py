"""on_nonfinite = "raise" | "reject" | "reset": exact failure reports, MH-exact rejection, restarts, no NaN out."""

import math

import pytest
import torch

import ebm_samplers
from ebm_samplers.checkpoint import read_checkpoint
from energies import as_energy
from tests.deterministic import Drift, cusp_at_301
from tests.helpers import assert_matches


def wall_at_300(x):
    """0.5 x^2 below 300.5 and +inf from there on."""
    x = x[:, 0]
    return torch.where(x < 300.5, 0.5 * x**2, torch.full_like(x, math.inf))


def nan_outside(x, radius=1.5):
    """Standard normal energy on the cube [-radius, radius]^d and NaN outside it."""
    inside = (x.abs() <= radius).all(-1)
    return torch.where(inside, 0.5 * (x**2).sum(-1), torch.full_like(x[:, 0], math.nan))


INIT = torch.tensor([[0.0], [5.0], [2.0]])  # chain 1 reaches the wall first (step 295), chain 0 last (step 300)


def test_raise_names_the_earliest_chain_step_and_value_even_when_checked_later():
    # the host checks every 256 steps, at step 511 here; the report must still be exact
    expected = r"3 chain\(s\); first: chain 1 at step 295 \(the new state: energy inf\)"
    with pytest.raises(FloatingPointError, match=expected):
        ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=1000, seed=0)
    with pytest.raises(FloatingPointError, match=r"chain 1 at step 195 \(the new state: energy inf\)"):
        ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=1000, warmup=100, seed=0)
    with pytest.raises(FloatingPointError, match=r"chain 1 at warm-up step 295"):
        ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=10, warmup=400, seed=0)


def test_raise_reports_a_finite_energy_with_a_non_finite_gradient():
    with pytest.raises(FloatingPointError, match=r"chain 1 at step 295 \(the new state: energy 0 with a non-finite"):
        ebm_samplers.sample(cusp_at_301, Drift(), init=INIT, n_steps=400, seed=0)


def test_raise_reports_a_rejected_mala_proposal_and_its_value():
    with pytest.raises(FloatingPointError, match=r"\(a proposal: energy nan\)"):
        ebm_samplers.sample(nan_outside, "mala", init=torch.zeros(4, 1), n_steps=300, seed=0, step_size=1.0)


def test_a_failed_run_never_checkpoints_the_failed_state(tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(FloatingPointError, match="chain 1 at step 295"):
        ebm_samplers.sample(
            wall_at_300, Drift(), init=INIT, n_steps=1000, seed=0, checkpoint=path, checkpoint_every=200
        )
    saved = read_checkpoint(path)
    assert saved["step"] == 200
    assert torch.isfinite(saved["state"]["energy"]).all()


def test_a_failed_run_never_streams_non_finite_draws(tmp_path):
    with pytest.raises(FloatingPointError, match="chain 1 at step 295"):
        ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=1000, seed=0, stream=tmp_path, stream_every=100)
    with pytest.warns(UserWarning, match="holds 200 of 1000 draws"):
        partial = ebm_samplers.Trace.load(tmp_path)
    assert torch.isfinite(partial.stats["potential_energy"]).all()
    with pytest.raises(FloatingPointError, match="chain 1 at step 295"):  # also when only moments are kept
        ebm_samplers.sample(
            wall_at_300, Drift(), init=INIT, n_steps=1000, seed=0, stream=tmp_path, stream_every=100, keep="moments"
        )
    assert len(list(tmp_path.glob("chunk-*.nc"))) == 2


def test_reject_keeps_the_previous_state_of_an_unadjusted_kernel():
    trace = ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=320, seed=0, on_nonfinite="reject")
    x = trace.draws[:, :, 0]
    # chain 1 walks 6, 7, ..., 300 (draw 294) and then every move to 301 is rejected
    assert torch.equal(x[1, :295], torch.arange(6.0, 301.0))
    assert torch.equal(x[1, 295:], torch.full((25,), 300.0))
    assert torch.equal(trace.stats["nonfinite"][1], torch.arange(320) >= 295)
    assert not trace.stats["accepted"][1, 295:].any() and trace.stats["accepted"][1, :295].all()
    assert (trace.stats["acceptance_rate"][1, 295:] == 0).all()
    assert trace.attrs["nonfinite_per_chain"] == [20, 25, 22]
    assert trace.attrs["nonfinite_total"] == int(trace.stats["nonfinite"].sum()) == 67
    assert trace.attrs["on_nonfinite"] == "reject"


def test_reject_is_exact_mh_for_mala_on_a_truncated_normal():
    # NaN outside [-a, a] means zero density there: rejecting those proposals is the MH step itself, so
    # MALA samples N(0, 1) truncated to [-a, a], variance 1 - 2 a phi(a) / (2 Phi(a) - 1).
    a = 1.5
    phi = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(a / math.sqrt(2)))
    truth = 1 - 2 * a * phi / (2 * big_phi - 1)
    trace = ebm_samplers.sample(
        nan_outside,
        "mala",
        init=torch.zeros(200, 1),
        n_steps=600,
        warmup=100,
        seed=7,
        step_size=1.0,
        on_nonfinite="reject",
    )
    assert 0.05 < trace.stats["nonfinite"].double().mean() < 0.5  # the wall is hit often: the test has power
    assert torch.isfinite(trace.draws).all() and (trace.draws.abs() <= a).all()
    assert_matches(trace.draws[..., 0].double().square().mean(1), truth, "truncated normal variance")


def test_reset_restarts_failing_chains_from_their_initial_points_keeping_their_step_size():
    trace = ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=600, seed=0, on_nonfinite="reset")
    x = trace.draws[:, :, 0]
    # chain 1: 6 .. 300, fails at draw 295 and restarts at 5, then climbs again and fails at 295 + 296
    assert x[1, 295] == 5.0 and torch.equal(x[1, 296:591], torch.arange(6.0, 301.0)) and x[1, 591] == 5.0
    assert trace.attrs["nonfinite_per_chain"] == [1, 2, 2]  # chain 0 at draw 300; chain 2 at 298 and 597
    assert torch.equal(trace.stats["step_size"], torch.ones(3, 600))


def test_reset_uses_the_users_reset_points_and_checks_them():
    def to_minus_ten(n, generator):
        return torch.full((n, 1), -10.0)

    trace = ebm_samplers.sample(
        wall_at_300, Drift(), init=INIT, n_steps=320, seed=0, on_nonfinite="reset", reset=to_minus_ten
    )
    assert trace.draws[1, 295, 0] == -10.0 and trace.draws[0, 300, 0] == -10.0
    with pytest.raises(ValueError, match=r"reset\(n, generator\) must return a tensor of shape \(3, 1\); got \(3, 2\)"):
        ebm_samplers.sample(
            wall_at_300, Drift(), init=INIT, n_steps=320, on_nonfinite="reset", reset=lambda n, g: torch.zeros(n, 2)
        )
    with pytest.raises(FloatingPointError, match="not finite at the reset points"):
        beyond_the_wall = lambda n, generator: torch.full((n, 1), 400.0)  # noqa: E731
        ebm_samplers.sample(wall_at_300, Drift(), init=INIT, n_steps=320, on_nonfinite="reset", reset=beyond_the_wall)


def test_reset_of_drawn_initial_points_draws_new_ones():
    def nan_beyond_four(x):
        return nan_outside(x, radius=4.0)

    energy = as_energy(nan_beyond_four, event_shape=(1,))
    # ULA at h = 1.5 on N(0, 1) has stationary sd 2 (see test_langevin_kernels), so |x| > 4 happens often
    trace = ebm_samplers.sample(energy, "ula", n_chains=50, n_steps=200, seed=1, step_size=1.5, on_nonfinite="reset")
    failed = trace.stats["nonfinite"]
    assert failed.sum() > 10
    restarted = trace.draws[..., 0][failed]
    assert len(set(restarted.tolist())) == len(restarted)  # fresh N(0, 1) draws, not one fixed point


@pytest.mark.parametrize("policy", ["reject", "reset"])
@pytest.mark.parametrize("sampler", ["ula", "mala"])
def test_no_nan_ever_reaches_a_returned_trace(policy, sampler):
    trace = ebm_samplers.sample(
        nan_outside, sampler, init=torch.zeros(16, 2), n_steps=300, seed=3, step_size=1.5, on_nonfinite=policy
    )
    assert trace.stats["nonfinite"].any()
    assert torch.isfinite(trace.draws).all()
    for name, values in trace.stats.items():
        assert not values.is_floating_point() or torch.isfinite(values).all(), name
    assert trace.attrs["nonfinite_total"] == int(trace.stats["nonfinite"].sum())


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match="on_nonfinite must be one of 'raise', 'reject', 'reset'; got 'ignore'"):
        ebm_samplers.sample(nan_outside, "mala", init=torch.zeros(2, 1), n_steps=2, on_nonfinite="ignore")
    with pytest.raises(TypeError, match="reset must be a callable"):
        ebm_samplers.sample(nan_outside, "mala", init=torch.zeros(2, 1), n_steps=2, on_nonfinite="reset", reset=3)
    with pytest.raises(ValueError, match=r"reset= is used only with on_nonfinite='reset'; got on_nonfinite='raise'"):
        ebm_samplers.sample(
            nan_outside, "mala", init=torch.zeros(2, 1), n_steps=2, reset=lambda n, g: -torch.ones(n, 1)
        )


def test_nonfinite_check_is_exact_on_special_values():
    """The zero-product check equals the isfinite definition, incl. values whose plain sum would overflow."""
    from ebm_samplers.kernels.base import nonfinite

    special = torch.tensor([0.0, -0.0, 1.0, -3e38, 3e38, 1e-45, math.inf, -math.inf, math.nan])
    pairs = torch.cartesian_prod(special, special, special)  # (729, 3): energy, two gradient entries
    for dtype in (torch.float32, torch.float64):
        energy, grad = pairs[:, 0].to(dtype), pairs[:, 1:].to(dtype)
        expected = ~(torch.isfinite(energy) & torch.isfinite(grad).all(-1))
        assert torch.equal(nonfinite(energy, grad), expected)
    # event axes beyond one: (n, 2, 2)
    grad = torch.full((3, 2, 2), 3e38)
    grad[1, 1, 0] = -math.inf
    assert nonfinite(torch.zeros(3), grad).tolist() == [False, True, False]
