"""fit(): PCD really runs the registered sampler, resume is bit-identical, bad data fails clearly."""

import dataclasses

import pytest
import torch
from torch import nn

import ebm_samplers
from ebm_samplers.kernels import ULA
from ebm_samplers.training import fit, load_checkpoint, toy_dataset
from energies import MLPEnergy, NoiseConditionalEnergy


@pytest.fixture(scope="module")
def data():
    return toy_dataset("8gaussians").sample(2000, torch.Generator().manual_seed(0))


def small_energy(seed=0, dim=2):
    return MLPEnergy(dim, (16, 16), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def adam_steps(monkeypatch):
    """The step size of every Adam update `fit` makes, in order."""
    seen = []

    class Recording(torch.optim.Adam):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    return seen


@dataclasses.dataclass
class CountingULA(ULA):
    """ULA that counts its transitions and the chains it moved (a user kernel plugged into PCD)."""

    calls: int = 0
    chains: int = 0

    def step(self, state, energy, generator):
        self.calls += 1
        self.chains += state.position.shape[0]
        return super().step(state, energy, generator)


def test_pcd_runs_the_registered_user_kernel(data):
    ebm_samplers.register_sampler("counting_ula_for_pcd_test", overwrite=True)(CountingULA)
    kernel = CountingULA(step_size=0.02)
    result = fit(data, "pcd", energy=small_energy(), n_iterations=7, batch_size=32, sampler=kernel, n_steps=3)
    assert kernel.calls == 7 * 3 and kernel.chains == 7 * 3 * 32
    assert result.samples.shape == (32, 2)
    # by registered name: fit builds the kernel through get_sampler("persistent", inner=name, ...)
    before = CountingULA.step.__code__  # the name resolves to the same class
    result = fit(data, "pcd", energy=small_energy(), n_iterations=2, batch_size=8, sampler="counting_ula_for_pcd_test")
    assert CountingULA.step.__code__ is before and result.history["buffer_size"] == [8.0, 16.0]


def test_short_run_and_cd_use_the_sampler_given(data):
    for method in ("short_run", "cd"):
        kernel = CountingULA(step_size=0.02)
        fit(data, method, energy=small_energy(), n_iterations=3, batch_size=16, sampler=kernel, n_steps=4)
        assert kernel.calls == 12 and kernel.chains == 12 * 16


@pytest.mark.parametrize("method", ["pcd", "nce", "ssm"])
def test_resume_continues_bit_identically(method, data, tmp_path):
    # a constant step: the checkpointed run is a 4-iteration run, and a schedule that cools down towards the end of
    # each run (pcd's default) would shrink its last steps, which the 10-iteration run takes at full size
    options = {"n_steps": 3, "buffer_size": 100, "learning_rate_schedule": "constant"} if method == "pcd" else {}
    whole = fit(data, method, energy=small_energy(), n_iterations=10, batch_size=32, seed=3, **options)
    path = tmp_path / "run.pt"
    fit(data, method, energy=small_energy(), n_iterations=4, batch_size=32, seed=3, checkpoint=path, **options)
    assert load_checkpoint(path)["iteration"] == 4  # loads with torch.load(weights_only=True)
    resumed = fit(
        data, method, energy=small_energy(seed=99), n_iterations=10, batch_size=32, seed=3, resume=path, **options
    )
    assert resumed.history == whole.history
    for (name, a), (_, b) in zip(whole.energy.state_dict().items(), resumed.energy.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    if method == "pcd":
        assert torch.equal(whole.samples, resumed.samples)


def test_checkpoint_is_written_atomically_and_periodically(data, tmp_path):
    path = tmp_path / "deep" / "run.pt"
    fit(data, "dsm", energy=small_energy(), n_iterations=6, batch_size=16, checkpoint=path, checkpoint_every=2)
    assert load_checkpoint(path)["iteration"] == 6
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]  # no temporary files left behind


def test_checkpoint_rename_is_made_durable_by_syncing_its_folder(data, tmp_path, monkeypatch):
    import ebm_samplers._atomic

    synced = []
    monkeypatch.setattr(ebm_samplers._atomic, "fsync_directory", synced.append)
    fit(data, "dsm", energy=small_energy(), n_iterations=2, batch_size=16, checkpoint=tmp_path / "run.pt")
    assert synced and all(folder == tmp_path for folder in synced)


def test_resume_with_another_method_is_refused(data, tmp_path):
    path = tmp_path / "run.pt"
    fit(data, "dsm", energy=small_energy(), n_iterations=2, batch_size=16, checkpoint=path)
    with pytest.raises(ValueError, match="written by method 'dsm'"):
        fit(data, "ssm", energy=small_energy(), n_iterations=4, resume=path)


def test_resume_from_a_file_that_is_not_a_checkpoint_is_a_clear_error(data, tmp_path):
    (tmp_path / "notes.pt").write_text("import torch  # a script saved under the wrong name\n")
    with pytest.raises(ValueError, match=r"cannot read training checkpoint .*notes.pt: it is not a file written by"):
        fit(data, "dsm", energy=small_energy(), n_iterations=2, batch_size=16, resume=tmp_path / "notes.pt")


def test_a_user_module_works(data):
    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(0.1))

        def forward(self, x):
            return self.scale * x.square().sum(1)

    # Hyvarinen's objective for E = s ||x||^2 is 2 s^2 mean||x||^2 - 2 s d: minimised at s = d / (2 mean||x||^2)
    result = fit(data, "sm", energy=Quadratic(), n_iterations=400, batch_size=len(data), learning_rate=1e-2)
    optimum = 2 / (2 * float(data.square().sum(1).mean()))
    assert result.energy.scale.item() == pytest.approx(optimum, abs=2e-3)


def test_dsm_multiscale_gives_a_noise_conditional_energy_for_annealed_langevin(data):
    result = fit(data, "dsm_multiscale", n_iterations=3, batch_size=16)
    assert isinstance(result.energy, NoiseConditionalEnergy)
    assert result.extras["sigmas"][0] == pytest.approx(2.0) and result.extras["sigmas"][-1] == pytest.approx(0.05)
    trace = ebm_samplers.sample(
        result.energy, "annealed_langevin", init=torch.zeros(4, 2), warmup=0, n_steps=1, seed=0, steps_per_level=2
    )
    assert torch.isfinite(trace.draws).all()


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.tensor([[0.0, 1.0], [float("nan"), 2.0], [1.0, float("nan")]]), ValueError, "2 row.*NaN.*first: row 1"),
        (torch.zeros(0, 2), ValueError, "empty"),
        (torch.zeros(5), ValueError, r"shape \(n_samples, \*event\)"),
        (torch.zeros(5, 3), ValueError, r"expects samples of shape \(2,\)"),
        (torch.zeros(5, 2, dtype=torch.long), TypeError, "floating"),
        ([[0.0, 1.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_data_is_a_clear_error(bad, error, message):
    with pytest.raises(error, match=message):
        fit(bad, "ssm", energy=small_energy(), n_iterations=1)


def test_wrong_dimension_for_a_user_module_is_a_clear_error():
    network = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"cannot evaluate data of shape \(n, 2\)"):
        fit(torch.zeros(5, 2), "ssm", energy=network, n_iterations=1)


def test_bad_options_are_clear_errors(data):
    with pytest.raises(KeyError, match="unknown training method 'mle'"):
        fit(data, "mle")
    with pytest.raises(TypeError, match=r"has no option.*n_step.*its options are"):
        fit(data, "cd", n_step=3)
    with pytest.raises(ValueError, match="draws no model samples"):
        fit(data, "dsm", sampler="mala")
    with pytest.raises(ValueError, match="needs target="):
        fit(data, "exact_sm", n_iterations=1)
    for method in ("cd", "short_run", "pcd"):  # 0 steps would contrast the data with itself, not with the model
        for n_steps in (0, -1, "10", 2.5):
            with pytest.raises(ValueError, match=rf"{method} n_steps \(sampler transitions per update\) must be"):
                fit(data, method, n_steps=n_steps, n_iterations=1)


def test_pcd_on_8x8_digits_uses_the_conv_energy_and_keeps_image_shape():
    from ebm_samplers.training import load_digits
    from energies import ConvEnergy

    train, _ = load_digits(generator=torch.Generator().manual_seed(0))
    result = fit(train[:200], "pcd", n_iterations=2, batch_size=8, n_steps=2, buffer_size=50)
    assert isinstance(result.energy, ConvEnergy) and result.samples.shape == (8, 1, 8, 8)


def test_pcd_defaults_follow_the_data_dimension(data):
    from ebm_samplers.training.pcd import HIGH_DIMENSION_SETTINGS, LOW_DIMENSION_SETTINGS

    low = fit(data, "pcd", energy=small_energy(), n_iterations=1, batch_size=4)
    assert low.options["step_size"] == LOW_DIMENSION_SETTINGS["step_size"]
    assert low.options["buffer_size"] == LOW_DIMENSION_SETTINGS["buffer_size"]
    wide = torch.randn(50, 17, generator=torch.Generator().manual_seed(0))
    high = fit(wide, "pcd", energy=small_energy(dim=17), n_iterations=1, batch_size=4, alpha=0.5)
    assert high.options["step_size"] == HIGH_DIMENSION_SETTINGS["step_size"] and high.options["alpha"] == 0.5
    assert high.extras["replay_buffer"].shape == (4, 17)
    # the history reports how often the jumps between modes are accepted, where there are jumps (2-D defaults)
    assert len(low.history["jump_acceptance_rate"]) == 1 and 0.0 <= low.history["jump_acceptance_rate"][0] <= 1.0
    assert "jump_acceptance_rate" not in high.history


def test_digits_pcd_with_default_settings_lowers_its_loss_and_moves_noise_towards_the_digits():
    """`fit(digits, "pcd")` picks the high-dimension settings by itself; a few iterations (a smaller buffer, so
    chains are revisited) lower the loss and bring the chains closer to held-out digits (MMD^2) than the uniform
    noise they start from. Not the full training (README: the digits benchmark)."""
    from ebm_samplers.training import load_digits, mmd

    train, test = load_digits(generator=torch.Generator().manual_seed(0))
    result = fit(train, "pcd", n_iterations=6, batch_size=64, buffer_size=64)
    loss = result.history["loss"]
    assert result.n_iterations == 6 and loss[-1] < loss[0]
    # the buffer's start distribution: uniform over the data's box [-1, 1] widened by 10 % per side
    start = torch.rand(result.samples.shape, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2
    assert mmd(result.samples, test[:300]) < 0.75 * mmd(start, test[:300])


def test_the_learning_rate_schedule_is_followed_and_checked(data, adam_steps):
    from ebm_samplers.training.fit import _scheduled

    assert _scheduled(0.1, "constant", 7, 10) == 0.1
    assert [round(_scheduled(2.0, "cosine", i, 4), 6) for i in range(4)] == [2.0, round(1 + 0.5**0.5, 6), 1.0, 0.292893]
    # constant for the first two thirds, then the half cosine over the last third
    assert [round(_scheduled(2.0, "cooldown", i, 9), 6) for i in range(9)] == [2.0] * 7 + [1.5, 0.5]
    fit(
        data,
        "nce",
        energy=small_energy(),
        n_iterations=4,
        batch_size=8,
        learning_rate=2.0,
        learning_rate_schedule="cosine",
    )
    assert adam_steps == [pytest.approx(_scheduled(2.0, "cosine", i, 4)) for i in range(4)]
    with pytest.raises(
        ValueError, match="learning_rate_schedule must be one of 'constant', 'cosine', 'cooldown'; got 'step'"
    ):
        fit(data, "nce", n_iterations=1, learning_rate_schedule="step")


def test_pcd_default_schedule_follows_the_data_dimension(data, adam_steps):
    """PCD cools Adam's step down over the last third of the run on low-dimensional samples (the 2-D toy sets) and
    keeps it constant on larger ones (measured on the digits); a schedule given explicitly wins."""
    from ebm_samplers.training.pcd import HIGH_DIMENSION_SETTINGS, LOW_DIMENSION_SETTINGS

    options = dict(n_iterations=6, batch_size=4, n_steps=1, buffer_size=8)
    fit(data, "pcd", energy=small_energy(), **options)
    low_rate = LOW_DIMENSION_SETTINGS["learning_rate"]
    assert adam_steps == [pytest.approx(low_rate)] * 5 + [pytest.approx(low_rate / 2)]  # the cool-down: iterations 4, 5
    adam_steps.clear()
    fit(data, "pcd", energy=small_energy(), learning_rate_schedule="constant", **options)
    assert adam_steps == [pytest.approx(low_rate)] * 6
    adam_steps.clear()
    wide = torch.randn(50, 17, generator=torch.Generator().manual_seed(0))
    fit(wide, "pcd", energy=small_energy(dim=17), **options)
    assert adam_steps == [pytest.approx(HIGH_DIMENSION_SETTINGS["learning_rate"])] * 6


def test_pcd_restart_from_data_is_checked(data):
    with pytest.raises(ValueError, match=r"pcd restart_from_data must be a number in \[0, 1\]; got 1.5"):
        fit(data, "pcd", energy=small_energy(), n_iterations=1, batch_size=4, restart_from_data=1.5)


def test_pcd_fresh_starts_are_training_points_in_the_share_restart_from_data(data):
    from ebm_samplers.training._method import build_method

    for share, expected in ((1.0, 1.0), (0.0, 0.0), (0.5, 0.5)):
        method = build_method("pcd", {"restart_from_data": share})
        method.resolve_defaults(data)
        method.setup(small_energy(), data, torch.Generator().manual_seed(0))
        starts = method.buffer.draw_fresh(4000, torch.Generator().manual_seed(1))
        is_data = (starts[:, None, :] == data[None]).all(-1).any(-1).double()
        # a binomial share: 4,000 draws give a standard error of at most 0.008
        assert abs(float(is_data.mean()) - expected) < 0.04


def test_pcd_jumps_between_modes_on_low_dimensional_data_by_default(data):
    # the thin rings: chains that cannot cross between modes leave the modes' weights unlearned; a jump from a
    # kernel density of training points moves them (docs/training/pcd_defaults.md has the measurements)
    from ebm_samplers.kernels.data_jump import ModeJump
    from ebm_samplers.training._method import build_method

    method = build_method("pcd", {})
    method.resolve_defaults(data)
    method.setup(small_energy(), data, torch.Generator().manual_seed(0))
    assert isinstance(method._kernel.jump, ModeJump) and method._kernel.jump.bandwidth > 0
    assert method._kernel.jump.reference.shape == (min(1000, len(data)), *data.shape[1:])
    wide = torch.randn(50, 17, generator=torch.Generator().manual_seed(0))
    method = build_method("pcd", {})
    method.resolve_defaults(wide)
    method.setup(small_energy(dim=17), wide, torch.Generator().manual_seed(0))
    assert method._kernel.jump is None  # a kernel density in 17-D and more proposes nothing a model accepts
    method = build_method("pcd", {"data_jumps": False})
    method.resolve_defaults(data)
    method.setup(small_energy(), data, torch.Generator().manual_seed(0))
    assert method._kernel.jump is None
    with pytest.raises(TypeError, match="pcd data_jumps must be True or False; got 'yes'"):
        fit(data, "pcd", energy=small_energy(), n_iterations=1, batch_size=4, data_jumps="yes")
