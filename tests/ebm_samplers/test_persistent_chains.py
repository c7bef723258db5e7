"""Persistent chains in a user's own training loop (issue 18): `PersistentChains`, the buffer's public views,
lineage, honest non-finite reports, the energy contract check, the `sgld` training kernel and bad input."""

import math

import pytest
import torch

import ebm_samplers
from diagnostics.plots import plot_replay_buffer
from ebm_samplers import PersistentChains, ReplayBuffer
from tests.helpers import assert_matches


def quartic_well(x):
    """-(x^4): unbounded below, so ULA with a large step runs off to infinity (the issue's repro)."""
    return -(x**4).sum(-1)


def test_issue_repro_ula_blowing_up_is_reported_nonfinite_and_not_stored():
    # issue 18: positions came back [inf, inf] with info["nonfinite"] all False (ULA records no such key)
    kernel = ebm_samplers.get_sampler("persistent", inner="ula", n_inner_steps=20, step_size=0.1)
    state = kernel.init(torch.zeros(8, 2), quartic_well)
    state, info = kernel.step(state, quartic_well, torch.Generator().manual_seed(0))
    broken = ~torch.isfinite(state.position).all(1) | ~torch.isfinite(state.energy)
    assert broken.any()
    assert torch.equal(info["nonfinite"], broken)
    assert len(kernel.buffer) == int((~broken).sum())


def test_sample_raises_by_default_and_reject_or_reset_flag_the_failed_chains():
    with pytest.raises(FloatingPointError, match=r"NaN or infinite in \d+ of 8 persistent chain"):
        PersistentChains(ReplayBuffer(64, (2,)), "ula", 20, step_size=0.1).sample(quartic_well, 8)

    buffer = ReplayBuffer(64, (2,), reinit_probability=1.0)
    rejected = PersistentChains(buffer, "ula", 20, step_size=0.1, on_nonfinite="reject").sample(quartic_well, 8)
    assert rejected.nonfinite.any() and torch.isfinite(rejected.samples).all()
    # a rejected chain returns its start point, a fresh uniform draw on [-1, 1]^2, with lineage 0
    failed = rejected.nonfinite
    assert (rejected.samples[failed].abs() <= 1).all() and (rejected.lineage[failed] == 0).all()
    assert (rejected.lineage[~failed] == 20).all()
    assert len(buffer) == int((~failed).sum())  # failed chains are never stored

    reset = PersistentChains(ReplayBuffer(64, (2,)), "ula", 20, step_size=0.1, on_nonfinite="reset")
    negatives = reset.sample(quartic_well, 8)
    assert negatives.nonfinite.any() and torch.isfinite(negatives.samples).all()
    assert (negatives.lineage[negatives.nonfinite] == 0).all()


def test_negatives_report_cost_lineage_and_the_buffer_exposes_its_contents():
    buffer = ReplayBuffer(8, (2,), reinit_probability=0.0)
    chains = PersistentChains(buffer, "ula", 5, step_size=0.01)
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    first = chains.sample(energy, 8)
    assert first.reinitialised.all() and (first.lineage == 5).all()  # an empty buffer starts every chain fresh
    assert first.gradient_evaluations == 8 * (5 + 1)
    second = chains.sample(energy, 8)
    assert not second.reinitialised.any() and (second.lineage == 10).all()  # stored chains continue
    assert len(buffer) == 8 and (buffer.lineage == 10).all()
    assert buffer.samples.shape == (8, 2) and buffer.energy.shape == (8,)
    assert torch.allclose(buffer.energy.sort().values, energy(buffer.samples).sort().values)
    view = buffer.samples
    view.fill_(7.0)  # a copy: writing to it leaves the buffer unchanged
    assert not (buffer.samples == 7.0).any()
    stats = buffer.statistics()
    assert stats["mean_lineage"] == 10.0 and stats["max_lineage"] == 10.0


def test_chains_restored_before_first_use_continue_exactly(tmp_path):
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    original = PersistentChains(ReplayBuffer(32, (2,)), "mala", 3, step_size=0.3, seed=1)
    for _ in range(3):
        original.sample(energy, 16)
    torch.save(original.state_dict(), tmp_path / "chains.pt")
    restored = PersistentChains(ReplayBuffer(32, (2,)), "mala", 3, step_size=0.3)
    restored.load_state_dict(torch.load(tmp_path / "chains.pt", weights_only=True))  # before any sample()
    assert torch.equal(original.sample(energy, 16).samples, restored.sample(energy, 16).samples)


def test_a_data_range_buffer_starts_fresh_chains_uniformly_on_the_data_box():
    data = torch.stack([torch.linspace(-4.0, 4.0, 50), torch.linspace(0.0, 1.0, 50)], 1)
    buffer = ReplayBuffer.for_data(data, 100, margin=0.1)
    assert buffer.event_shape == (2,) and len(buffer) == 0
    fresh = buffer.draw_fresh(4000, torch.Generator().manual_seed(0))
    low, high = fresh.amin(0), fresh.amax(0)
    assert torch.allclose(low, torch.tensor([-4.8, -0.1]), atol=0.01)
    assert torch.allclose(high, torch.tensor([4.8, 1.1]), atol=0.01)
    box = ReplayBuffer(10, (2,), init_range=(torch.tensor([0.0, 10.0]), torch.tensor([1.0, 20.0])))
    points = box.draw_fresh(500, torch.Generator().manual_seed(0))
    assert (points[:, 0] >= 0).all() and (points[:, 0] <= 1).all() and (points[:, 1] >= 10).all()


def test_persistent_mala_chains_in_a_loop_sample_a_fixed_gaussian():
    # a fixed energy, reinit 0, 30 calls of 5 MALA steps from the uniform box: every later call's negatives are
    # draws from N(0, I) (one row of each call is one chain); compared with the truth within the MCSE
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    means, squares = [], []
    for seed in range(10):
        chains = PersistentChains(ReplayBuffer(64, (1,), reinit_probability=0.0), "mala", 5, step_size=0.8, seed=seed)
        draws = torch.stack([chains.sample(energy, 64).samples[:, 0] for _ in range(30)])[10:]
        means.append(draws.double().mean())
        squares.append(draws.double().square().mean())
    assert_matches(torch.stack(means), 0.0, "mean")
    assert_matches(torch.stack(squares), 1.0, "second moment")


def test_an_energy_that_is_not_per_sample_is_refused_as_sample_refuses_it():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    energy = lambda x: model(x).squeeze(-1)  # noqa: E731
    with pytest.raises(ValueError, match="not per-sample") as from_sample:
        ebm_samplers.sample(energy, "ula", init=torch.randn(8, 2), n_steps=1)
    chains = PersistentChains(ReplayBuffer(16, (2,)), "ula", 2)
    with pytest.raises(ValueError, match="not per-sample") as from_chains:
        chains.sample(energy, 8)
    assert str(from_chains.value).split(":")[0] == str(from_sample.value).split(":")[0]
    kernel = ebm_samplers.get_sampler("persistent", capacity=16)
    with pytest.raises(ValueError, match="not per-sample"):
        kernel.init(torch.randn(8, 2), energy)
    model.eval()  # batch statistics frozen: per-sample again
    assert torch.isfinite(chains.sample(energy, 8).samples).all()


def test_sgld_without_knobs_is_ula_and_its_knobs_do_what_they_say():
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    start = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    runs = {}
    for name in ("ula", "sgld"):
        kernel = ebm_samplers.get_sampler(name, step_size=0.05)
        state, generator = kernel.init(start, energy), torch.Generator().manual_seed(1)
        for _ in range(5):
            state, _ = kernel.step(state, energy, generator)
        runs[name] = state.position
    assert torch.allclose(runs["ula"], runs["sgld"], atol=1e-6)

    steep = lambda x: 1e3 * (x**2).sum(-1)  # noqa: E731
    clipped = ebm_samplers.get_sampler("sgld", step_size=1.0, noise_scale=0.0, gradient_clip=0.01)
    state = clipped.init(start, steep)
    moved, _ = clipped.step(state, steep, torch.Generator())
    assert torch.allclose((moved.position - start).abs(), torch.full_like(start, 0.01))  # h * clip exactly

    boxed = ebm_samplers.get_sampler("sgld", step_size=1.0, noise_scale=5.0, clamp=(-1.0, 1.0))
    state, generator = boxed.init(start.clamp(-1, 1), energy), torch.Generator().manual_seed(2)
    for _ in range(3):
        state, _ = boxed.step(state, energy, generator)
        assert state.position.abs().max() <= 1.0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ReplayBuffer(0, (2,)), "capacity must be an integer >= 1; got 0"),
        (lambda: ReplayBuffer(4, (2,), reinit_probability=-0.1), r"reinit_probability must be a number in \[0, 1\]"),
        (lambda: ReplayBuffer(4, (2,), reinit_probability=1.5), r"reinit_probability must be a number in \[0, 1\]"),
        (lambda: ReplayBuffer(4, (2,), init_range=(1.0, 1.0)), "low < high"),
        (lambda: ReplayBuffer(4, (2,), init_range=(torch.zeros(3), 1.0)), "broadcastable to the event shape"),
        (lambda: ebm_samplers.get_sampler("sgld", clamp=(1.0, -1.0)), "clamp must be a pair of finite numbers low"),
        (lambda: ebm_samplers.get_sampler("sgld", clamp=(0.0, 0.0)), "low < high"),
        (lambda: ebm_samplers.get_sampler("sgld", noise_scale=-1.0), "noise_scale"),
        (lambda: PersistentChains(ReplayBuffer(4, (2,)), on_nonfinite="ignore"), "on_nonfinite must be one of"),
        (lambda: ReplayBuffer.for_data(torch.zeros(5), 4), r"shape \(n, \*event\)"),
    ],
)
def test_bad_settings_get_one_line_errors(build, match):
    with pytest.raises(ValueError, match=match) as error:
        build()
    assert "\n" not in str(error.value)


def test_a_data_batch_of_the_wrong_event_shape_is_refused():
    chains = PersistentChains(ReplayBuffer(4, (2,)), "ula", 1)
    with pytest.raises(ValueError, match=r"data batch has shape \(5, 3\); the buffer holds samples of shape \(2,\)"):
        chains.sample(lambda x: (x**2).sum(-1), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="n >= 1"):
        chains.sample(lambda x: (x**2).sum(-1), 0)


def test_plot_replay_buffer_takes_the_buffer_itself(tmp_path):
    chains = PersistentChains(ReplayBuffer(64, (2,)), "ula", 3)
    chains.sample(lambda x: 0.5 * (x**2).sum(-1), 32)
    path = plot_replay_buffer(chains.buffer, tmp_path / "buffer.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_version_1_buffer_state_loads_with_lineage_zero():
    buffer = ReplayBuffer(4, (2,))
    buffer.push(torch.ones(3, 2), lineage=torch.tensor([5, 6, 7]))
    state = buffer.state_dict()
    state["version"] = 1
    del state["lineage"]
    restored = ReplayBuffer(4, (2,))
    restored.load_state_dict(state)
    assert len(restored) == 3 and (restored.lineage == 0).all() and math.isclose(restored.samples.sum(), 6.0)


def test_the_persistent_kernel_builds_its_buffer_at_once_when_given_the_event_shape():
    saved = ReplayBuffer(16, (2,))
    saved.push(torch.ones(5, 2), lineage=torch.full((5,), 40))
    kernel = ebm_samplers.get_sampler("persistent", capacity=16, event_shape=(2,), reinit_probability=0.0)
    kernel.buffer.load_state_dict(saved.state_dict())  # restored before init / the first step
    state = kernel.init(torch.zeros(4, 2), lambda x: 0.5 * (x**2).sum(-1))
    _, info = kernel.step(state, lambda x: 0.5 * (x**2).sum(-1), torch.Generator().manual_seed(0))
    assert (info["lineage"] == 40 + kernel.n_inner_steps).all()  # every chain continued a restored one


def _two_modes(x):
    """0.2 N(-3, 0.2^2) + 0.8 N(3, 0.2^2) in the first coordinate: MALA alone never crosses (~110 nats of barrier)."""
    left = torch.log(torch.tensor(0.2)) - 0.5 * ((x[:, 0] + 3) / 0.2) ** 2
    right = torch.log(torch.tensor(0.8)) - 0.5 * ((x[:, 0] - 3) / 0.2) ** 2
    return -torch.logaddexp(left, right)


def _light_mode_heavy_reference():
    """100 reference points, 3/4 of them at the light mode -3."""
    reference = torch.cat([torch.full((75, 1), -3.0), torch.full((25, 1), 3.0)])
    return reference + 0.2 * torch.randn(100, 1, generator=torch.Generator().manual_seed(0))


def _heavy_mode_shares(make_kernel, start):
    """Per seed 0..7: the mean share of chains in the heavy mode over steps 20..119 of a kernel from `make_kernel()`
    started at `start`."""
    shares = []
    for seed in range(8):
        kernel = make_kernel()
        generator = torch.Generator().manual_seed(seed)
        state = kernel.init(start, _two_modes)
        kept = []
        for step in range(120):
            state, _ = kernel.step(state, _two_modes, generator)
            if step >= 20:
                kept.append((state.position[:, 0] > 0).double().mean())
        shares.append(torch.stack(kept).mean())
    return torch.stack(shares)


def test_data_jumps_give_separated_modes_the_model_weights_not_the_reference_weights():
    # the reference puts 3/4 of its points at the light mode, so a jump that ignored q(x) / q(x') would settle at
    # 0.8 * 0.25 / (0.8 * 0.25 + 0.2 * 0.75) = 0.57 on the heavy mode, and one that never jumped at 0
    reference = _light_mode_heavy_reference()
    shares = _heavy_mode_shares(
        lambda: ebm_samplers.get_sampler("data_jump", reference=reference, bandwidth=0.2, step_size=0.02),
        torch.full((64, 1), -3.0),  # every chain starts in the light mode
    )
    assert_matches(shares, 0.8, "share of the heavy mode")
    with pytest.raises(ValueError, match=r"reference must be a tensor of points \(N, \*event\)"):
        ebm_samplers.get_sampler("data_jump", reference=torch.zeros(3))


def test_a_persistent_jump_gives_separated_modes_the_model_weights():
    # the same target through the persistent call: 5 MALA steps that never cross, then one jump per call
    from ebm_samplers.kernels.data_jump import ModeJump

    reference = _light_mode_heavy_reference()
    settings = dict(inner="mala", n_inner_steps=5, step_size=0.02, capacity=64, reinit_probability=0.0)
    in_light_mode = lambda n, generator: torch.full((n, 1), -3.0)  # noqa: E731
    shares = _heavy_mode_shares(
        lambda: ebm_samplers.get_sampler(
            "persistent", init_distribution=in_light_mode, jump=ModeJump(reference, 0.2), **settings
        ),
        torch.zeros(64, 1),  # the positions are ignored: every chain starts from the buffer, in the light mode
    )
    assert_matches(shares, 0.8, "share of the heavy mode")
    with pytest.raises(TypeError, match="persistent jump must be a ModeJump or None; got float"):
        ebm_samplers.get_sampler("persistent", jump=0.2)


def test_negatives_report_the_jumps_and_count_their_energy_evaluations():
    from ebm_samplers.kernels.data_jump import ModeJump

    in_light_mode = lambda n, generator: torch.full((n, 1), -3.0)  # noqa: E731
    buffer = ReplayBuffer(64, (1,), init_distribution=in_light_mode, reinit_probability=0.0)
    chains = PersistentChains(buffer, "mala", 5, step_size=0.02, jump=ModeJump(_light_mode_heavy_reference(), 0.2))
    negatives = [chains.sample(_two_modes, 64) for _ in range(10)]
    assert all(n.gradient_evaluations == 64 * (1 + 5 + 1) for n in negatives)  # init, 5 MALA steps, one jump
    accepted = torch.stack([n.jump_accepted for n in negatives])
    assert accepted.dtype == torch.bool and accepted.shape == (10, 64)
    # the first call starts every chain fresh in the light mode, and MALA never crosses: a chain that ends it in the
    # heavy mode (0.8 of the mass) got there by an accepted jump, and some do
    crossed = negatives[0].samples[:, 0] > 0
    assert crossed.any() and bool((negatives[0].jump_accepted | ~crossed).all())
    assert negatives[-1].jump_accepted.any()
    plain = PersistentChains(ReplayBuffer(8, (2,)), "ula", 5, step_size=0.01).sample(quartic_well, 8)
    assert plain.jump_accepted is None and plain.gradient_evaluations == 8 * (5 + 1)


def test_the_held_out_bandwidth_follows_the_data_scale():
    from ebm_samplers.kernels.data_jump import held_out_bandwidth

    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2000, 2, generator=generator)
    narrow = held_out_bandwidth(points[:1000], points[1000:])
    wide = held_out_bandwidth(10 * points[:1000], 10 * points[1000:])
    # one grid step is a factor 10^(3/24) = 1.33: the choice scales with the data up to one step
    assert 10 / 1.34 <= wide / narrow <= 10 * 1.34
    # Silverman's rule for a 2-D standard normal and 1,000 points: n^(-1/6) = 0.32; likelihood cross-validation
    # lands near it (a factor 2 either way)
    assert 0.16 <= narrow <= 0.64
    with pytest.raises(ValueError, match="not all equal"):
        held_out_bandwidth(torch.zeros(5, 2), torch.zeros(5, 2))
