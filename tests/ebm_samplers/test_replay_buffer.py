"""ReplayBuffer: exact draw/push semantics, reservoir inclusion probabilities and checkpoint round trips."""

import math

import pytest
import torch

from ebm_samplers import ReplayBuffer
from tests.helpers import assert_matches


def _marked_init(n: int, generator: torch.Generator) -> torch.Tensor:
    """Stub init distribution: row i is -(i + 1), so a fresh row tells where it came from."""
    return -(torch.arange(n, dtype=torch.get_default_dtype()) + 1.0)[:, None]


def _filled(capacity: int, **kwargs) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, (1,), init_distribution=_marked_init, **kwargs)
    buffer.push(torch.arange(1.0, capacity + 1.0)[:, None])  # stored entries are 1, ..., capacity
    return buffer


def test_draw_takes_each_row_from_the_init_distribution_exactly_when_its_coin_says_so():
    buffer = _filled(50, reinit_probability=0.3)
    generator = torch.Generator().manual_seed(0)
    replay = torch.Generator().manual_seed(0)
    x, reinitialised = buffer.draw(200, generator)
    # the first random numbers of a draw are its per-row reinitialisation coins, then the stored indices
    coins = torch.rand(200, generator=replay, dtype=torch.float64)
    index = torch.randint(0, 50, (200,), generator=replay)
    assert torch.equal(reinitialised, coins < 0.3)
    rows = torch.arange(200)
    assert torch.equal(x[reinitialised, 0], -(rows[reinitialised] + 1.0))  # the stub's row i, untouched
    assert torch.equal(x[~reinitialised, 0], index[~reinitialised] + 1.0)  # the stored entry picked
    assert 0 < int(reinitialised.sum()) < 200


def test_reinitialised_count_is_binomial():
    n, p, repeats = 100, 0.05, 2000
    buffer = _filled(20, reinit_probability=p)
    generator = torch.Generator().manual_seed(1)
    counts = torch.stack([buffer.draw(n, generator)[1].sum() for _ in range(repeats)]).double()
    assert_matches(counts, n * p, "mean number of reinitialised rows")
    # Binomial variance n p (1 - p): each (count - np)^2 is an unbiased per-draw estimate of it
    assert_matches((counts - n * p) ** 2, n * p * (1 - p), "variance of the number of reinitialised rows")
    assert buffer.statistics()["reinitialised_fraction"] == pytest.approx(float(counts.sum()) / (n * repeats))


def test_an_empty_buffer_draws_every_row_fresh_and_the_default_init_is_uniform_on_the_cube():
    buffer = ReplayBuffer(10, (3,), reinit_probability=0.0)
    x, reinitialised = buffer.draw(5000, torch.Generator().manual_seed(2))
    assert reinitialised.all()
    assert x.shape == (5000, 3) and x.min() >= -1 and x.max() <= 1
    assert_matches(x[:, 0].double(), 0.0, "mean of Uniform[-1, 1]")
    assert_matches(x[:, 0].double() ** 2, 1.0 / 3.0, "second moment of Uniform[-1, 1]")


def test_fifo_overwrites_the_oldest_entries_first():
    buffer = ReplayBuffer(5, (1,), mode="fifo")
    buffer.push(torch.tensor([[0.0], [1.0], [2.0]]))
    buffer.push(torch.tensor([[3.0], [4.0], [5.0], [6.0]]), energy=torch.tensor([3.0, 4.0, 5.0, 6.0]))
    state = buffer.state_dict()
    # ring buffer: samples 5 and 6 went to slots 0 and 1, replacing the oldest (0 and 1)
    assert state["samples"][:, 0].tolist() == [5.0, 6.0, 2.0, 3.0, 4.0]
    assert state["written_at"].tolist() == [2, 2, 1, 2, 2]
    assert len(buffer) == 5
    stats = buffer.statistics()
    assert stats["max_age"] == 1.0 and stats["mean_age"] == pytest.approx(0.2)
    assert stats["mean_energy"] == pytest.approx(4.5) and stats["energy_known_fraction"] == pytest.approx(0.8)
    # a batch larger than the capacity keeps its last `capacity` rows, as if pushed one by one
    buffer.push(torch.arange(10.0, 18.0)[:, None])
    assert sorted(buffer.state_dict()["samples"][:, 0].tolist()) == [13.0, 14.0, 15.0, 16.0, 17.0]


def test_reservoir_keeps_every_pushed_sample_with_probability_capacity_over_seen():
    capacity, batch, n_batches, repeats = 10, 7, 15, 1500
    seen = batch * n_batches
    generator = torch.Generator().manual_seed(3)
    included = torch.zeros(repeats, seen)
    for r in range(repeats):
        buffer = ReplayBuffer(capacity, (1,), mode="reservoir")
        for b in range(n_batches):
            buffer.push(torch.arange(b * batch, (b + 1) * batch, dtype=torch.float32)[:, None], generator=generator)
        stored = buffer.state_dict()["samples"][:, 0].long()
        assert len(buffer) == capacity and stored.unique().numel() == capacity
        included[r, stored] = 1.0
    p = capacity / seen
    # the first ones (placed while filling), some in the middle, and the last batch
    for first in (0, 49, seen - batch):
        group = included[:, first : first + batch].mean(1)
        assert_matches(group, p, f"inclusion probability of samples {first}..{first + batch - 1}")
    # every single sample, with a Bonferroni bound over all of them (binomial MCSE per sample)
    mcse = math.sqrt(p * (1 - p) / repeats)
    z = ((included.mean(0) - p).abs() / mcse).max()
    assert z < 3.29 + math.sqrt(2 * math.log(seen)), z


def test_state_dict_round_trip_is_exact_through_torch_save_with_weights_only(tmp_path):
    def make():
        return ReplayBuffer(8, (2,), reinit_probability=0.2, mode="reservoir", dtype=torch.float64)

    buffer = make()
    generator = torch.Generator().manual_seed(4)
    for _ in range(5):
        x, _ = buffer.draw(3, generator)
        buffer.push(x + 1.0, energy=x.sum(1), generator=generator)
    path = tmp_path / "buffer.pt"
    torch.save(buffer.state_dict(), path)
    restored = make()
    restored.load_state_dict(torch.load(path, weights_only=True))

    original, loaded = buffer.state_dict(), restored.state_dict()
    assert original.keys() == loaded.keys()
    for key, value in original.items():
        assert torch.equal(value, loaded[key]) if isinstance(value, torch.Tensor) else value == loaded[key], key
    assert buffer.statistics() == pytest.approx(restored.statistics(), nan_ok=True)
    # the restored buffer continues exactly like the original
    state = generator.get_state()
    a = buffer.draw(6, generator)
    generator.set_state(state)
    b = restored.draw(6, generator)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_load_state_dict_rejects_a_buffer_with_other_settings():
    state = ReplayBuffer(8, (2,)).state_dict()
    with pytest.raises(ValueError, match="capacity=8"):
        ReplayBuffer(9, (2,)).load_state_dict(state)
    with pytest.raises(ValueError, match="mode"):
        ReplayBuffer(8, (2,), mode="reservoir").load_state_dict(state)
    with pytest.raises(TypeError, match="dtype"):
        ReplayBuffer(8, (2,), dtype=torch.float64).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"capacity": 0}, ValueError, "capacity"),
        ({"reinit_probability": 1.5}, ValueError, "reinit_probability"),
        ({"mode": "lifo"}, ValueError, "mode"),
        ({"init_distribution": 3}, TypeError, "init_distribution"),
    ],
)
def test_bad_settings_are_rejected(kwargs, error, match):
    settings = {"capacity": 4, "event_shape": (2,), **kwargs}
    with pytest.raises(error, match=match):
        ReplayBuffer(settings.pop("capacity"), settings.pop("event_shape"), **settings)


def test_bad_pushes_and_init_outputs_are_rejected():
    buffer = ReplayBuffer(4, (2,), mode="reservoir")
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        buffer.push(torch.zeros(3, 3), generator=torch.Generator())
    with pytest.raises(ValueError, match="energy"):
        buffer.push(torch.zeros(3, 2), energy=torch.zeros(2), generator=torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        buffer.push(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"2 sample\(s\) contain NaN or infinite values \(first: row 1\)"):
        buffer.push(torch.tensor([[0.0, 0.0], [math.nan, 0.0], [0.0, math.inf]]), generator=torch.Generator())
    assert buffer.statistics()["size"] == 0  # nothing of a refused push is stored
    wrong = ReplayBuffer(4, (2,), init_distribution=lambda n, g: torch.zeros(n, 3))
    with pytest.raises(ValueError, match="init_distribution"):
        wrong.draw(2, torch.Generator())
