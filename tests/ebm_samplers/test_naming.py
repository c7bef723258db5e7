"""Named variables, coordinates and derived quantities: sample(names=..., transform=...), Trace, netCDF."""

import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics import summary
from ebm_samplers import Trace

SCHOOLS = [
    "Choate",
    "Deerfield",
    "Phillips Andover",
    "Phillips Exeter",
    "Hotchkiss",
    "Lawrenceville",
    "St. Paul's",
    "Mt. Hermon",
]


def _energy(x):
    return 0.5 * (x**2).sum(-1)


@pytest.fixture(scope="module")
def named():
    return ebm_samplers.sample(
        _energy,
        "mala",
        init=torch.zeros(4, 10),
        n_steps=40,
        seed=0,
        step_size=0.5,
        names="mu, log_tau, theta[8]",
        dims={"theta": ["school"]},
        coords={"school": SCHOOLS},
        transform=lambda x: {"tau": x[:, 1].exp(), "theta_sum": x[:, 2:].sum(-1, keepdim=True)},
    )


def test_posterior_holds_named_variables_of_their_own_shapes(named):
    posterior = named.to_arviz()["posterior"]
    assert list(posterior.data_vars) == ["mu", "log_tau", "theta", "tau", "theta_sum"]
    assert posterior["theta"].dims == ("chain", "draw", "school")
    assert list(posterior["school"].values) == SCHOOLS
    np.testing.assert_array_equal(posterior["mu"].values, named.draws[:, :, 0].numpy())
    np.testing.assert_array_equal(posterior["theta"].values, named.draws[:, :, 2:].numpy())
    # derived quantities are the transform of each kept draw; the sampler's draws stay unconstrained
    torch.testing.assert_close(named.derived["tau"], named.draws[:, :, 1].exp())
    assert named.derived["theta_sum"].shape == (4, 40, 1)
    table = summary(named)
    assert ["mu", "log_tau", "theta[Choate]"] == list(table.index[:3])
    assert "tau" in table.index and "theta_sum[0]" in table.index


def test_names_survive_netcdf_unchanged(named, tmp_path):
    back = Trace.load(named.save(tmp_path / "trace.nc"))
    assert torch.equal(back.draws, named.draws)
    assert set(back.derived) == {"tau", "theta_sum"}
    assert all(torch.equal(back.derived[k], v) for k, v in named.derived.items())
    assert back.attrs == named.attrs
    assert back.to_arviz()["posterior"].to_dataset().equals(named.to_arviz()["posterior"].to_dataset())


def test_names_on_an_existing_trace_and_in_to_arviz(named):
    plain = Trace(draws=named.draws, stats=named.stats)
    tree = plain.to_arviz(names=["a", "b[3, 3]"], dims={"b": ["row", "column"]})
    assert tree["posterior"]["b"].dims == ("chain", "draw", "row", "column")
    np.testing.assert_array_equal(tree["posterior"]["b"].values, named.draws[:, :, 1:].reshape(4, 40, 3, 3).numpy())
    renamed = plain.with_names({"first": (), "rest": (9,)}, transform=lambda x: {"r": x.norm(dim=-1)})
    assert list(renamed.to_arviz()["posterior"].data_vars) == ["first", "rest", "r"]
    assert "x" in plain.to_arviz()["posterior"]  # with_names returns a new trace


def test_a_multidimensional_event_is_split_in_c_order():
    draws = torch.arange(2 * 3 * 2 * 3, dtype=torch.float64).reshape(2, 3, 2, 3)
    trace = Trace(draws=draws).with_names("a[2], b[4]")
    posterior = trace.to_arviz()["posterior"]
    np.testing.assert_array_equal(posterior["a"].values, draws.reshape(2, 3, 6)[:, :, :2].numpy())
    np.testing.assert_array_equal(posterior["b"].values, draws.reshape(2, 3, 6)[:, :, 2:].numpy())


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"names": "mu, tau, theta[7]"},
            ValueError,
            r"names \(mu, tau, theta\[7\]\) cover 9 numbers but the event \(10,\) has 10",
        ),
        ({"names": "mu, mu, theta[8]"}, ValueError, "lists 'mu' twice"),
        ({"names": "mu, 2x[9]"}, ValueError, "is not NAME or NAME"),
        (
            {"names": "x[10]", "dims": {"x": ["a", "b"]}},
            ValueError,
            r"dims\['x'\] has 2 names for a variable of shape \(10,\)",
        ),
        ({"names": "x[10]", "dims": {"x": ["a"]}, "coords": {"a": [1, 2]}}, ValueError, r"coords\['a'\] has 2 labels"),
        ({"transform": lambda x: {"s": x.sum()}}, ValueError, r"'s' has shape \(\) for 4 points; expected one row"),
        ({"transform": lambda x: {"s": x[:2, 0]}}, ValueError, r"'s' has shape \(2,\) for 4 points; expected one row"),
        ({"transform": lambda x: x.exp()}, TypeError, "transform must return a dict"),
        ({"transform": lambda x: {"x": x}}, ValueError, "has the name of a sampled variable"),
        ({"transform": "exp"}, TypeError, "transform must be a callable"),
    ],
)
def test_bad_names_and_transforms_fail_before_sampling_in_one_line(arguments, error, message):
    calls = []

    def energy(x):
        calls.append(len(x))
        return _energy(x)

    with pytest.raises(error, match=message) as caught:
        ebm_samplers.sample(energy, "mala", init=torch.zeros(4, 10), n_steps=10_000_000, seed=0, **arguments)
    assert "\n" not in str(caught.value)


def test_names_with_keep_moments_are_refused():
    with pytest.raises(ValueError, match="keep='moments' keeps none"):
        ebm_samplers.sample(_energy, "mala", init=torch.zeros(4, 3), n_steps=10, keep="moments", names="a[3]")


@pytest.mark.parametrize("energy", [lambda x: 0.5 * x[:, 0] ** 2 + x[:, 1:].pow(2).sum(-1), lambda x: _energy(x)])
def test_a_1d_init_for_a_multidimensional_energy_says_how_it_was_read(energy):
    with pytest.raises(ValueError, match=r"init of shape \(10,\) is read as 10 chains of scalar events") as caught:
        ebm_samplers.sample(energy, "mala", init=torch.zeros(10), n_steps=10)
    assert "init[None]" in str(caught.value)


def test_a_1d_init_for_a_scalar_energy_is_fine():
    trace = ebm_samplers.sample(lambda x: 0.5 * x**2, "mala", init=torch.zeros(4), n_steps=10, seed=0)
    assert trace.draws.shape == (4, 10)
