"""`ebm-samplers diagnose`: any ArviZ netCDF file, this toolkit's traces, and one-line errors."""

import arviz as az
import numpy as np

from ebm_samplers.cli import main


def test_foreign_netcdf_with_several_variables_and_no_sample_stats(tmp_path, capsys):
    rng = np.random.default_rng(0)
    tree = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 400)), "theta": rng.normal(size=(4, 400, 3))}})
    tree.to_netcdf(tmp_path / "other.nc")
    assert main(["diagnose", str(tmp_path / "other.nc"), "--out", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "4 chains x 400 draws, 4 coordinates" in printed and "theta[2]" in printed
    assert "ok: no problems found" in printed
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"trace.png", "rank.png", "autocorr.png"}


def test_toolkit_trace_with_energy_gives_ksd_and_landscape(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sample", "--steps", "200", "--warmup", "20", "--chains", "4", "--no-plot", "--out", str(out)]) == 1
    capsys.readouterr()
    status = main(["diagnose", str(out / "trace.nc"), "--energy", "mixture", "--out", str(out / "diag")])
    printed = capsys.readouterr().out
    assert status in (0, 1) and ("problem(s)" in printed or "ok:" in printed)
    assert "kernel Stein discrepancy against GaussianMixture: KSD" in printed and "of 800 draws (one in" in printed
    assert "bootstrap p = " in printed and "95% of the bootstrap null lies below KSD" in printed
    assert "5 sets of" in printed and "exact draws from GaussianMixture give KSD" in printed  # it can sample
    assert (out / "diag" / "landscape.png").stat().st_size > 20_000


def test_bad_path_or_file_is_one_line_with_exit_status_two(tmp_path, capsys):
    (tmp_path / "text.nc").write_text("not netCDF")
    az.from_dict({"prior": {"a": np.zeros((1, 10))}}).to_netcdf(tmp_path / "prior_only.nc")
    cases = [
        (str(tmp_path / "missing.nc"), "no file at"),
        (str(tmp_path / "text.nc"), "is not a readable netCDF file (its content is not netCDF/HDF5)"),
        (str(tmp_path / "prior_only.nc"), "has no posterior group"),
    ]
    for path, message in cases:
        assert main(["diagnose", path, "--no-plots"]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and message in error[0], error
        assert not error[0].endswith(":)"), error  # xarray's first line alone stopped at 'see:'


def test_unknown_energy_fails_before_the_report(tmp_path, capsys):
    az.from_dict({"posterior": {"x": np.random.default_rng(0).normal(size=(4, 50, 2))}}).to_netcdf(tmp_path / "t.nc")
    assert main(["diagnose", str(tmp_path / "t.nc"), "--energy", "nope", "--no-plots"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == (
        "error: unknown energy 'nope'; use a built-in (banana, funnel, gaussian2d, mixture) or module:callable"
    )


def test_a_named_trace_is_diagnosed_by_name_and_its_ksd_uses_the_flat_event(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["sample", "--energy", "gaussian2d", "--names", "a, b", "--steps", "100", "--chains", "4", "--no-plot"]
    assert main([*args, "--out", str(out)]) == 1
    capsys.readouterr()
    main(["diagnose", str(out / "trace.nc"), "--energy", "gaussian2d", "--no-plots"])
    printed = capsys.readouterr().out
    assert "\na " in printed and "\nb " in printed  # rows named a and b
    assert "kernel Stein discrepancy against Gaussian: KSD" in printed
