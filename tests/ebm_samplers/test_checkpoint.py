"""Checkpoint and resume: bit-identical continuation on CPU, argument checks, safe loading, crash safety."""

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ebm_samplers
from ebm_samplers import Trace
from ebm_samplers.checkpoint import FORMAT, read_checkpoint
from energies import Energy, GaussianMixture

ROOT = Path(__file__).resolve().parents[2]


class Interrupted(Exception):
    pass


class QuarticWell(Energy):
    """E(x) = |x|^2 / 2 + |x|^4 / 10; `fail_after` makes the run die after that many evaluations."""

    event_shape = torch.Size([2])

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.fail_after = fail_after
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise Interrupted
        r2 = (x**2).sum(-1)
        return 0.5 * r2 + 0.1 * r2**2


def _assert_same_trace(resumed: Trace, full: Trace) -> None:
    assert torch.equal(resumed.draws, full.draws)
    assert set(resumed.stats) == set(full.stats)
    for name, values in full.stats.items():  # bit-identical, NaN where NaN (an energy error of a diverging proposal)
        torch.testing.assert_close(resumed.stats[name], values, rtol=0, atol=0, equal_nan=True, msg=name)
    assert resumed.attrs == full.attrs


RUN = dict(n_chains=5, n_steps=240, warmup=60, thin=2, seed=4, step_size=0.3)


# mala and hmc adapt their step size (hmc also its metric) in warm-up: the adaptation state is resumed too.
# Energy evaluations per transition: one, except hmc's fixed 3 leapfrog steps.
SAMPLERS = {"mala": ({}, 1), "ula": ({}, 1), "hmc": ({"n_leapfrog": 3}, 3)}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("interrupt_at", [30, 170])  # during warm-up, and after draws were kept
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, sampler, interrupt_at):
    params, calls_per_step = SAMPLERS[sampler]
    run = {**RUN, **params}
    full = ebm_samplers.sample(QuarticWell(), sampler, **run)
    path = tmp_path / "run.ckpt"
    # check_energy and init spend 5 evaluations, then calls_per_step per transition
    with pytest.raises(Interrupted):
        failing = QuarticWell(fail_after=5 + calls_per_step * interrupt_at)
        ebm_samplers.sample(failing, sampler, checkpoint=path, checkpoint_every=25, **run)
    assert read_checkpoint(path)["step"] == interrupt_at // 25 * 25
    _assert_same_trace(ebm_samplers.sample(QuarticWell(), sampler, checkpoint=path, checkpoint_every=25, **run), full)
    # the finished checkpoint resumes to the same result without sampling again
    energy = QuarticWell()
    _assert_same_trace(ebm_samplers.sample(energy, sampler, checkpoint=path, checkpoint_every=25, **run), full)
    assert energy.calls == 5


class Cliff(QuarticWell):
    """The quartic well with NaN energy beyond |x_i| = 4.5: ULA at step 1 falls off it often, N(0, I) starts rarely."""

    def forward(self, x):
        value = super().forward(x)
        return torch.where((x.abs() <= 4.5).all(-1), value, torch.full_like(value, float("nan")))


@pytest.mark.parametrize("policy", ["reject", "reset"])
def test_resume_is_bit_identical_under_the_nonfinite_policies(tmp_path, policy):
    run = {**RUN, "step_size": 1.0, "on_nonfinite": policy}
    full = ebm_samplers.sample(Cliff(), "ula", **run)
    assert full.attrs["nonfinite_total"] > 20  # resets draw fresh points from the generator: that is resumed too
    path = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        ebm_samplers.sample(Cliff(fail_after=5 + 170), "ula", checkpoint=path, checkpoint_every=25, **run)
    _assert_same_trace(ebm_samplers.sample(Cliff(), "ula", checkpoint=path, checkpoint_every=25, **run), full)


def test_resume_works_for_moments_and_streams_too(tmp_path):
    full = ebm_samplers.sample(QuarticWell(), "mala", keep="moments", **RUN)
    path, folder = tmp_path / "run.ckpt", tmp_path / "stream"
    options = dict(checkpoint=path, checkpoint_every=80, stream=folder, stream_every=40, keep="moments")
    with pytest.raises(Interrupted):
        ebm_samplers.sample(QuarticWell(fail_after=5 + 150), "mala", **options, **RUN)
    resumed = ebm_samplers.sample(QuarticWell(), "mala", **options, **RUN)
    assert resumed.count == full.count == 120
    assert torch.equal(resumed.mean, full.mean) and torch.equal(resumed.variance, full.variance)
    for name, values in full.stats_mean.items():
        assert torch.equal(resumed.stats_mean[name], values), name
    streamed = Trace.load(folder)
    draws = ebm_samplers.sample(QuarticWell(), "mala", **RUN)
    assert torch.equal(streamed.draws, draws.draws) and streamed.attrs["complete"]


def test_seed_none_resumes_with_the_stored_seed(tmp_path):
    path = tmp_path / "run.ckpt"
    run = {**RUN, "seed": None}
    with pytest.raises(Interrupted):
        ebm_samplers.sample(QuarticWell(fail_after=5 + 100), "mala", checkpoint=path, checkpoint_every=50, **run)
    seed = read_checkpoint(path)["run"]["seed"]
    resumed = ebm_samplers.sample(QuarticWell(), "mala", checkpoint=path, checkpoint_every=50, **run)
    assert resumed.attrs["seed"] == seed
    _assert_same_trace(resumed, ebm_samplers.sample(QuarticWell(), "mala", **{**RUN, "seed": seed}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": 5}, "seed: checkpoint has 4, this call 5"),
        ({"n_steps": 300}, "n_steps: checkpoint has 240, this call 300"),
        ({"step_size": 0.2}, "sampler_params"),
        ({"init": torch.ones(5, 2)}, "init"),
        ({"on_nonfinite": "reject"}, "on_nonfinite"),
        ({"keep": "moments"}, "keep"),
    ],
)
def test_resuming_with_other_arguments_is_refused(tmp_path, change, message):
    path = tmp_path / "run.ckpt"
    run = {**RUN, "n_chains": None, "init": torch.zeros(5, 2)}
    ebm_samplers.sample(QuarticWell(), "mala", checkpoint=path, **run)
    with pytest.raises(ValueError, match=f"belongs to a different run.*{message}"):
        ebm_samplers.sample(QuarticWell(), "mala", checkpoint=path, **{**run, **change})


def test_another_energy_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    ebm_samplers.sample(GaussianMixture(), "mala", checkpoint=path, **RUN)
    shifted = GaussianMixture(means=[[-2.0, -2.0], [2.0, 2.5]])  # same name, other parameters
    with pytest.raises(ValueError, match="energy_parameters"):
        ebm_samplers.sample(shifted, "mala", checkpoint=path, **RUN)


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": FORMAT, "version": 1, "payload": Interrupted("not a tensor")}, path)
    with pytest.raises(ValueError, match=r"holds tests\.ebm_samplers\.test_checkpoint\.Interrupted.*never unpickled"):
        read_checkpoint(path)
    (tmp_path / "garbage.ckpt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        ebm_samplers.sample(QuarticWell(), "mala", checkpoint=tmp_path / "garbage.ckpt", **RUN)
    (tmp_path / "notes.ckpt").write_text("import torch  # a script saved under the wrong name\n")
    with pytest.raises(ValueError, match=r"notes.ckpt: it is not a file written by torch.save; delete it"):
        read_checkpoint(tmp_path / "notes.ckpt")
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="is not an ebm-samplers sample\\(\\) checkpoint"):
        read_checkpoint(tmp_path / "other.ckpt")


def test_checkpoint_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1; got 0"):
        ebm_samplers.sample(QuarticWell(), "mala", checkpoint=tmp_path / "c", checkpoint_every=0, **RUN)
    with pytest.raises(ValueError, match="is a folder"):
        ebm_samplers.sample(QuarticWell(), "mala", checkpoint=tmp_path, **RUN)


# --- crashes in a real subprocess -----------------------------------------------------------------

TARGET = """
import os, time, torch

def slow_well(x):
    time.sleep(float(os.environ.get("SLOW_WELL_DELAY", "0")))
    r2 = (x**2).sum(-1)
    return 0.5 * r2 + 0.1 * r2**2
"""

CHILD = """
import sys, torch
sys.path.insert(0, {folder!r})
{prelude}
import ebm_samplers
from target import slow_well
ebm_samplers.sample(slow_well, "mala", init=torch.zeros(6, 2), n_steps=1000, warmup=100, seed=9, step_size=0.3,
                    checkpoint={checkpoint!r}, checkpoint_every=100, stream={stream!r}, stream_every=100)
"""

SIGKILL_ON_SECOND_CHECKPOINT_RENAME = """
import os, signal
_replace, _renames = os.replace, []
def _dying_replace(source, target):
    if str(target).endswith("run.ckpt"):
        _renames.append(target)
        if len(_renames) == 2:  # the temporary file of the 2nd checkpoint is written and fsynced: die now
            os.kill(os.getpid(), signal.SIGKILL)
    return _replace(source, target)
os.replace = _dying_replace
"""


def _start_child(tmp_path: Path, prelude: str = "") -> subprocess.Popen:
    (tmp_path / "target.py").write_text(TARGET)
    script = CHILD.format(
        folder=str(tmp_path), prelude=prelude, checkpoint=str(tmp_path / "run.ckpt"), stream=str(tmp_path / "stream")
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_WELL_DELAY": "0.006"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, stderr=subprocess.PIPE)


def slow_well(x):
    """The child's energy without the sleep: same name and values, so a run here resumes the child's."""
    r2 = (x**2).sum(-1)
    return 0.5 * r2 + 0.1 * r2**2


CHILD_RUN = dict(init=torch.zeros(6, 2), n_steps=1000, warmup=100, seed=9, step_size=0.3)


@functools.cache
def _uninterrupted() -> Trace:
    return ebm_samplers.sample(slow_well, "mala", **CHILD_RUN)


def _resume(tmp_path: Path) -> Trace:
    options = dict(checkpoint=tmp_path / "run.ckpt", checkpoint_every=100, stream=tmp_path / "stream", stream_every=100)
    resumed = ebm_samplers.sample(slow_well, "mala", **CHILD_RUN, **options)
    assert resumed.attrs["complete"] and resumed.attrs["n_draws_complete"] == 1000
    for name in ("complete", "n_draws_complete", "n_draws_expected"):  # what a streamed trace adds
        resumed.attrs.pop(name)
    return resumed


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_draws(tmp_path):
    child = _start_child(tmp_path)
    checkpoint = tmp_path / "run.ckpt"
    deadline = time.monotonic() + 120
    # kill it once a checkpoint and a few stream chunks exist (at ~step 400; the run needs ~4 s more to finish)
    while child.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists() and len(list((tmp_path / "stream").glob("chunk-*.nc"))) >= 3:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    steps_done = read_checkpoint(checkpoint)["step"]
    assert 100 <= steps_done < 1100  # killed mid-run, after at least one checkpoint

    with pytest.warns(UserWarning, match="the run did not finish"):
        partial = Trace.load(tmp_path / "stream")  # readable up to the last complete chunk
    n = partial.attrs["n_draws_complete"]
    assert 0 < n == partial.n_draws < 1000 and not partial.attrs["complete"]

    full, resumed = _uninterrupted(), _resume(tmp_path)
    assert torch.equal(partial.draws, full.draws[:, :n])
    for name, values in partial.stats.items():
        assert torch.equal(values, full.stats[name][:, :n]), name
    _assert_same_trace(resumed, full)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint_intact(tmp_path):
    child = _start_child(tmp_path, prelude=SIGKILL_ON_SECOND_CHECKPOINT_RENAME)
    child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    leftovers = list(tmp_path.glob(".run.ckpt.*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the new one was written, never renamed
    assert read_checkpoint(tmp_path / "run.ckpt")["step"] == 100  # the previous one, intact
    _assert_same_trace(_resume(tmp_path), _uninterrupted())
