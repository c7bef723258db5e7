"""The command line: the main job on the default, user energies, and one-line errors."""

import subprocess
import sys
import textwrap

import pytest
import torch

from ebm_samplers import Trace
from ebm_samplers.cli import main


def test_sample_on_the_default_writes_trace_and_plots_and_exits_1_on_problems(tmp_path, capsys):
    # 100 draws of MALA on two well-separated modes: diagnose finds problems, so the status is 1 (as diagnose's)
    assert main(["sample", "--steps", "100", "--warmup", "20", "--chains", "4", "--out", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "mala on GaussianMixture: 4 chains x 100 draws" in printed
    assert "r_hat" in printed and "ess_bulk" in printed and "95%" in printed
    assert "problem(s); do not trust these estimates yet:" in printed and "- r_hat:" in printed
    for name in ("trace.png", "rank.png", "autocorr.png"):  # the same figures as `diagnose` writes
        assert (tmp_path / name).stat().st_size > 10_000, name
    trace = Trace.load(tmp_path / "trace.nc")
    assert trace.draws.shape == (4, 100, 2)


def test_steps_count_transitions_and_thin_keeps_every_thin_th_as_the_help_says(tmp_path, capsys):
    args = ["sample", "--steps", "40", "--thin", "4", "--warmup", "0", "--chains", "4", "--no-plot"]
    assert main([*args, "--out", str(tmp_path)]) == 1  # 10 draws: too few for the ESS thresholds
    assert Trace.load(tmp_path / "trace.nc").n_draws == 10
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "every THIN-th is kept" in " ".join(capsys.readouterr().out.split())


def test_user_energy_from_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_target.py").write_text(
        textwrap.dedent(
            """
            def banana(x):
                return 0.5 * x[:, 0] ** 2 + 0.5 * (x[:, 1] - x[:, 0] ** 2) ** 2
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    args = [
        "sample",
        "--energy",
        "my_target:banana",
        "--dim",
        "2",
        "--steps",
        "50",
        "--warmup",
        "0",
        "--chains",
        "4",
        "--no-plot",
        "--out",
        "out",
    ]
    assert main(args) == 1  # 50 draws: too few for the ESS thresholds
    assert "on banana" in capsys.readouterr().out


def test_a_registered_user_kernel_without_an_acceptance_stat_runs(tmp_path, capsys):
    from ebm_samplers import Kernel, State, register_sampler
    from ebm_samplers.kernels import per_chain
    from energies import energy_and_grad

    class NoisyDescent(Kernel):  # records nothing: Info entries are optional
        step_size = 0.1

        def step(self, state, energy, generator):
            noise = torch.randn(state.position.shape, generator=generator, dtype=state.position.dtype)
            h = per_chain(state.step_size, state.position)
            position = state.position - h * state.grad + (2 * h).sqrt() * noise
            value, grad = energy_and_grad(energy, position)
            return State(position=position, energy=value, grad=grad, step_size=state.step_size), {}

    register_sampler("test_cli_no_stats", overwrite=True)(NoisyDescent)
    args = ["sample", "--sampler", "test_cli_no_stats", "--steps", "20", "--warmup", "0", "--no-plot"]
    assert main([*args, "--out", str(tmp_path)]) == 1  # 20 draws: too few for the ESS thresholds
    assert "8 chains x 20 draws, mean acceptance not recorded" in capsys.readouterr().out


def test_checkpointed_cli_run_resumes_to_the_same_trace(tmp_path, capsys):
    args = ["sample", "--steps", "60", "--warmup", "10", "--chains", "3", "--no-plot", "--on-nonfinite", "reject"]
    args += ["--checkpoint", str(tmp_path / "run.ckpt"), "--checkpoint-every", "25"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1  # 3 chains x 60 draws: problems found
    assert main([*args, "--out", str(tmp_path / "b")]) == 1  # resumes the finished checkpoint
    first, second = Trace.load(tmp_path / "a" / "trace.nc"), Trace.load(tmp_path / "b" / "trace.nc")
    assert torch.equal(first.draws, second.draws) and first.attrs["on_nonfinite"] == "reject"
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert "belongs to a different run (init: other values; seed: checkpoint has 0, this call 1)" in error


def test_user_mistakes_are_one_line_with_exit_status_two(tmp_path, capsys):
    cases = [
        (["sample", "--energy", "nope"], "unknown energy 'nope'"),
        (["sample", "--sampler", "nope"], "unknown sampler 'nope'"),
        (["sample", "--step-size", "-1"], "step_size must be a finite number > 0"),
        (["sample", "--chains", "0"], "n_chains must be an integer >= 1"),
        (["sample", "--energy", "no_such_module:f"], "No module named 'no_such_module'"),
        (["sample", "--energy", "math:sqrt"], "does not declare its event_shape; give --event-shape"),
        (["sample", "--event-shape", "2,x"], "--event-shape needs positive integers separated by commas"),
        (["sample", "--option", "step_size"], "--option needs NAME=VALUE"),
        (["sample", "--option", "nonsense=1"], "nonsense"),
        (["sample", "--names", "a, b, c"], "names (a, b, c) cover 3 numbers but the event (2,) has 2"),
        (["sample", "--step-size", "0.1", "--option", "step_size=0.2"], "give the step size once"),
        (["sample", "--steps", "6", "--thin", "2"], "keeps 3 draws per chain; the convergence table needs at least 4"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and message in error[0], error


def test_console_entry_point_lists_samplers():
    result = subprocess.run(
        [sys.executable, "-m", "ebm_samplers", "samplers"], capture_output=True, text=True, check=True
    )
    assert "mala" in result.stdout and "ula" in result.stdout


def test_a_reader_that_closes_the_pipe_early_gets_no_error_message():
    # `ebm-samplers samplers | head -0`: the pipe is closed before the command writes (it first imports torch)
    process = subprocess.Popen(
        [sys.executable, "-m", "ebm_samplers", "samplers"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()
    error = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert error == "", error


def test_healthy_run_exits_0(tmp_path, capsys):
    # HMC on a 2-D Gaussian: bulk ESS about 7500 and tail ESS about 3000 of 4000 draws, far above the 400 needed
    args = ["sample", "--energy", "gaussian2d", "--sampler", "hmc", "--steps", "1000", "--warmup", "300", "--no-plot"]
    assert main([*args, "--chains", "4", "--out", str(tmp_path)]) == 0
    assert "ok: no problems found" in capsys.readouterr().out


def test_sampler_options_dtype_names_and_multidimensional_events(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_model.py").write_text(
        textwrap.dedent(
            """
            import torch

            def quadratic(x):
                return 0.5 * (x**2).sum(dim=(1, 2))

            class Model(torch.nn.Module):  # event_shape as a class attribute of a plain nn.Module
                event_shape = (3,)

                def forward(self, x):
                    return 0.5 * (x**2).sum(-1)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    args = ["sample", "--energy", "my_model:quadratic", "--event-shape", "2,3", "--sampler", "hmc"]
    args += ["--option", "n_leapfrog=3", "--dtype", "float64", "--names", "a[2], b[4]", "--steps", "20"]
    assert main([*args, "--warmup", "0", "--chains", "4", "--no-plot", "--out", "a"]) == 1
    trace = Trace.load(tmp_path / "a" / "trace.nc")
    assert trace.draws.shape == (4, 20, 2, 3) and trace.draws.dtype == torch.float64
    assert trace.attrs["sampler_params"]["n_leapfrog"] == 3
    assert list(trace.to_arviz()["posterior"].data_vars) == ["a", "b"]
    args = ["sample", "--energy", "my_model:Model", "--steps", "20", "--warmup", "0", "--chains", "4"]
    assert main([*args, "--coordinates", "x[2],x[0]", "--out", "b"]) == 1
    assert "note: the plots show" not in capsys.readouterr().out  # chosen coordinates: no note
    assert Trace.load(tmp_path / "b" / "trace.nc").draws.shape == (4, 20, 3)


def test_until_converged_on_the_command_line(tmp_path, capsys):
    args = ["sample", "--energy", "gaussian2d", "--sampler", "hmc", "--until-converged", "--steps", "20000"]
    assert main([*args, "--chains", "4", "--warmup", "300", "--no-plot", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "converged after" in printed and "ok: no problems found" in printed
    assert Trace.load(tmp_path / "trace.nc").n_draws < 20000
