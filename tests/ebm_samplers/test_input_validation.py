"""Bad input gets a clear ValueError/TypeError before any sampling; good input of any shape and dtype runs.

The property-based tests (hypothesis) draw initial points of many shapes, dtypes and values, and run
parameters of many types and values, and check that `sample` either returns a finite trace of the
right shape and dtype or refuses with a ValueError/TypeError, exactly when the input is invalid.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ebm_samplers
from energies import Gaussian, check_energy


def quadratic(x):
    return 0.5 * (x**2).reshape(x.shape[0], -1).sum(-1)


# derandomize: the same examples on every run, so a run passes or fails for the code, not for the draw
FAST = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float32, torch.float64, torch.int64, torch.int32, torch.bool, torch.complex64]


@st.composite
def initial_points(draw):
    n = draw(st.integers(0, 4))
    event = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    dtype = draw(st.sampled_from(DTYPES))
    special = draw(st.sampled_from([None, math.nan, math.inf, -math.inf]))
    values = draw(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=1))
    x = torch.full((n, *event), values[0]) + torch.arange(n * math.prod(event), dtype=torch.float32).reshape(n, *event)
    if special is not None and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = special
    return x.to(dtype) if dtype.is_floating_point or dtype.is_complex else x.nan_to_num().to(dtype)


@FAST
@given(init=initial_points(), sampler=st.sampled_from(["mala", "ula"]))
def test_any_initial_points_run_or_are_refused_clearly(init, sampler):
    valid = init.ndim >= 1 and init.shape[0] >= 1 and init.is_floating_point() and bool(torch.isfinite(init).all())
    if not valid:
        with pytest.raises((ValueError, TypeError), match=r"initial points|n_chains|floating"):
            ebm_samplers.sample(quadratic, sampler, init=init, warmup=0, n_steps=3, seed=0, step_size=0.01)
        return
    trace = ebm_samplers.sample(quadratic, sampler, init=init, warmup=0, n_steps=3, seed=0, step_size=0.01)
    assert trace.draws.shape == (init.shape[0], 3, *init.shape[1:]) and trace.draws.dtype == init.dtype
    assert torch.isfinite(trace.draws).all()


NUMBERS = st.one_of(
    st.integers(-3, 6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), st.text(max_size=2)
)


def _is_count(value, minimum):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@FAST
@given(step_size=NUMBERS, n_steps=NUMBERS, warmup=NUMBERS, thin=NUMBERS, checkpoint_every=NUMBERS)
@example(step_size=1, n_steps=1, warmup=None, thin=1, checkpoint_every=1)  # a valid run, always among the cases
@example(step_size=0.5, n_steps=4, warmup=0, thin=2, checkpoint_every=3)
def test_any_run_parameters_run_or_are_refused_clearly(step_size, n_steps, warmup, thin, checkpoint_every):
    valid_step = isinstance(step_size, (int, float)) and not isinstance(step_size, bool)
    valid_step = valid_step and math.isfinite(step_size) and step_size > 0
    # a step that rounds to 0 or overflows in float32 is refused too
    valid_step = valid_step and 0 < torch.tensor(float(step_size), dtype=torch.float32).item() < math.inf
    valid = (
        valid_step
        and _is_count(n_steps, 1)
        and (warmup is None or _is_count(warmup, 0))  # None: the default warm-up
        and _is_count(thin, 1)
        and _is_count(checkpoint_every, 1)
        and n_steps >= thin
    )
    kwargs = dict(init=torch.zeros(2, 1), n_steps=n_steps, warmup=warmup, thin=thin, seed=0)
    kwargs |= dict(step_size=step_size, checkpoint_every=checkpoint_every)
    if not valid:
        with pytest.raises((ValueError, TypeError), match=r"must be|at least"):
            ebm_samplers.sample(quadratic, "mala", **kwargs)
        return
    if step_size > 1:  # so large a step may well throw a chain to a non-finite energy: the default raises
        try:
            trace = ebm_samplers.sample(quadratic, "mala", **kwargs)
        except FloatingPointError as error:
            assert "first: chain" in str(error)
            return
    else:
        trace = ebm_samplers.sample(quadratic, "mala", **kwargs)
    assert trace.draws.shape == (2, n_steps // thin, 1)
    # the kernel's parameters by name: the step given, the metric settings at their defaults
    assert trace.attrs["sampler_params"] == {"step_size": step_size, "inverse_mass": None, "metric": None}


class Float64Net(torch.nn.Module):
    """A user energy whose parameters are float64: it cannot take float32 points."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1).double()

    def forward(self, x):
        return self.layer(x).squeeze(-1) + 0.5 * (x**2).sum(-1)


def test_dtype_mismatch_between_energy_and_init_is_named():
    with pytest.raises(TypeError, match=r"parameters are torch.float64 but the initial points are torch.float32"):
        ebm_samplers.sample(Float64Net(), "mala", init=torch.zeros(3, 2), warmup=0, n_steps=2)
    net = Float64Net()
    with pytest.raises(TypeError, match=r"parameters are torch.float64 but the initial points are torch.float32"):
        ebm_samplers.sample(
            lambda x: net(x), "mala", init=torch.zeros(3, 2), warmup=0, n_steps=2
        )  # a closure over it too
    trace = ebm_samplers.sample(Float64Net(), "mala", init=torch.zeros(3, 2, dtype=torch.float64), warmup=0, n_steps=2)
    assert trace.draws.dtype == torch.float64
    with pytest.raises(TypeError, match=r"returned torch.float64 on cpu for initial points of torch.float32"):
        ebm_samplers.sample(lambda x: (x.double() ** 2).sum(-1), "mala", init=torch.zeros(3, 2), warmup=0, n_steps=2)


def test_device_mismatch_between_energy_and_init_is_named():
    net = Float64Net().float().to("meta")  # a device other than the points' (CPU-only stand-in for cuda)
    with pytest.raises(TypeError, match=r"parameters are on meta but the initial points are on cpu"):
        ebm_samplers.sample(net, "mala", init=torch.zeros(3, 2), warmup=0, n_steps=2)


@pytest.mark.parametrize(
    "mixing",
    [
        lambda x: ((x - x.mean(0)) ** 2).sum(-1),  # batch statistics
        lambda x: (x**2).sum(-1) + 0.01 * (x**2).sum(),  # a sum over the batch broadcast back
        lambda x: (x**2).sum(-1) / x.shape[0],  # batch-size dependence
        lambda x: ((x + 1) ** 2).sum(-1) * (1 + torch.rand(x.shape[0])),  # randomness
    ],
)
def test_energies_that_mix_samples_are_refused(mixing):
    for init in (torch.zeros(4, 2), torch.randn(6, 2, generator=torch.Generator().manual_seed(0))):
        with pytest.raises(ValueError, match="is not per-sample"):
            ebm_samplers.sample(mixing, "mala", init=init, warmup=0, n_steps=2)


def test_an_energy_tied_to_one_batch_size_is_refused():
    per_chain_scale = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"failed on a batch of the first 3 initial points.*any number of points"):
        ebm_samplers.sample(
            lambda x: per_chain_scale * (x**2).sum(-1), "mala", init=torch.zeros(3, 2), warmup=0, n_steps=2
        )


def test_batchnorm_in_training_mode_is_refused_and_in_eval_mode_accepted():
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    init = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"not per-sample.*BatchNorm in training mode"):
        check_energy(lambda x: net(x).squeeze(-1), init)
    net.eval()
    check_energy(lambda x: net(x).squeeze(-1), init)


def test_other_bad_inputs_are_named():
    with pytest.raises(TypeError, match="must be callable"):
        ebm_samplers.sample(3, "mala", init=torch.zeros(2, 1), warmup=0, n_steps=2)
    with pytest.raises(TypeError, match=r"init must be a torch\.Tensor"):
        ebm_samplers.sample(quadratic, "mala", init=[[0.0]], warmup=0, n_steps=2)
    with pytest.raises(ValueError, match=r"expects points of shape \(n, 2\); got initial points of shape \(3, 3\)"):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", init=torch.zeros(3, 3), warmup=0, n_steps=2)
    with pytest.raises(ValueError, match="n_chains must be an integer >= 1; got 0"):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=0, warmup=0, n_steps=2)
    with pytest.raises(ValueError, match=r"points contain NaN or infinite values in 1 chain\(s\) \(first: chain 1\)"):
        ebm_samplers.sample(quadratic, "mala", init=torch.tensor([[0.0], [math.nan]]), warmup=0, n_steps=2)
    kernel = ebm_samplers.get_sampler("mala")
    kernel.step_size = -0.5  # changed after construction
    with pytest.raises(ValueError, match=r"mala step_size must be a finite number > 0; got -0\.5"):
        ebm_samplers.sample(quadratic, kernel, init=torch.zeros(2, 1), warmup=0, n_steps=2)


def test_bad_device_dtype_and_seed_are_named_before_torch_fails():
    mixture = Gaussian([0.0, 0.0])
    with pytest.raises(ValueError, match=r"device must be a torch device such as 'cpu'.*got 'gpu'"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, device="gpu")
    with pytest.raises(ValueError, match=r"device .cuda:99. is not usable on this machine"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, device="cuda:99")
    with pytest.raises(TypeError, match=r"dtype must be a floating torch.dtype.*got torch.int64"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"dtype must be a floating torch.dtype.*got 'float64'"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, dtype="float64")
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\); got 18446744073709551616"):
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, seed=2**64)
    assert (
        ebm_samplers.sample(mixture, "mala", n_chains=2, warmup=0, n_steps=2, seed=2**64 - 1).attrs["seed"] == 2**64 - 1
    )


def test_device_or_dtype_that_contradict_init_are_not_silently_ignored():
    init = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"dtype=torch.float64 describe the N\(0, I\) initial points.*init is torch"):
        ebm_samplers.sample(quadratic, "mala", init=init, warmup=0, n_steps=2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"device='meta'.*init is torch.float32 on cpu"):
        ebm_samplers.sample(quadratic, "mala", init=init, warmup=0, n_steps=2, device="meta")
    trace = ebm_samplers.sample(quadratic, "mala", init=init, warmup=0, n_steps=2, device="cpu", dtype=torch.float32)
    assert trace.draws.dtype == torch.float32


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without Apple's MPS backend")
def test_an_unusable_device_is_named_in_one_short_sentence():
    with pytest.raises(ValueError) as error:
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=2, warmup=0, n_steps=2, device="mps")
    assert str(error.value).startswith("device 'mps' is not usable on this machine (")
    assert len(str(error.value)) < 200 and "\n" not in str(error.value)  # torch's message runs to 2,000 characters


def test_a_misspelt_sample_argument_is_pointed_out():
    with pytest.raises(
        TypeError, match=r"has no parameter\(s\) n_chain.*\(did you mean sample\(\)'s n_chains= for n_chain=\?\)"
    ):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chain=4, warmup=0, n_steps=2)
    with pytest.raises(
        TypeError, match=r"did you mean sample\(\)'s n_steps= for num_steps=, sample\(\)'s seed= for seeds="
    ):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=4, warmup=0, n_steps=2, num_steps=2, seeds=0)
    # no far-fetched guess
    with pytest.raises(TypeError, match=r"its parameters are: step_size, inverse_mass, metric$"):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=4, warmup=0, n_steps=2, stepsize=0.1)


def test_progress_is_a_bool_or_none():
    with pytest.raises(TypeError, match=r"progress must be True, False or None .*got 'yes'"):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", n_chains=2, warmup=0, n_steps=2, progress="yes")
