"""`ebm-samplers train`: writes checkpoint, metrics and pictures, and resumes."""

import json

import pytest

from ebm_samplers.cli import main


def test_train_writes_metrics_checkpoint_and_pictures(tmp_path, capsys):
    args = ["train", "--dataset", "rings", "--method", "nce", "--iterations", "20", "--train-size", "2000"]
    args += ["--test-size", "1000", "--sample-steps", "10", "--grid-resolution", "100", "--out", str(tmp_path)]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "nce" and metrics["iterations"] == 20
    assert metrics["data_entropy"] is not None and metrics["test_nll"] > metrics["data_entropy"] - 0.05
    assert metrics["quadrature"]["resolution"] == 100 and "mmd2_model_vs_test" in metrics
    assert 0 < metrics["ksd_test_data"]["p_value"] <= 1 and metrics["ksd_sampler_samples"]["n"] == 1000
    for name in ("checkpoint.pt", "density.png", "samples.png", "loss.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert main([*args, "--iterations", "25", "--resume", "--no-plot"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["iterations"] == 25
    captured = capsys.readouterr()
    assert "test_nll" in captured.out
    assert "%|" not in captured.err  # stderr is not a terminal here: no progress bar redrawn into the log


def test_train_on_digits_uses_fit_defaults_and_writes_image_metrics(tmp_path):
    args = ["train", "--dataset", "digits", "--iterations", "2", "--batch-size", "16", "--out", str(tmp_path)]
    assert main([*args, "--ais-chains", "8", "--ais-temperatures", "3", "--option", "n_steps=2"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["class_coverage_nearest_test_digit"]["n_samples"] == 32
    assert metrics["test_nll_ais"]["ais_chains"] == 8 and "ksd_test_data" in metrics
    assert (tmp_path / "samples.png").stat().st_size > 1000


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--method", "mle", "--out", str(tmp_path)]) == 2
    assert "unknown training method 'mle'" in capsys.readouterr().err
    assert main(["train", "--option", "nonsense", "--out", str(tmp_path)]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["train", "--dataset", "digit", "--out", str(tmp_path / "not_created")]) == 2
    assert "unknown data set 'digit'; --dataset is one of 8gaussians, " in capsys.readouterr().err
    assert not (tmp_path / "not_created").exists()


def test_metrics_file_is_written_atomically_and_a_failed_write_leaves_nothing(tmp_path):
    from ebm_samplers.commands.train import _write_json

    with pytest.raises(TypeError):
        _write_json(tmp_path / "metrics.json", {"not json": object()})
    assert list(tmp_path.iterdir()) == []
    _write_json(tmp_path / "metrics.json", {"nll": 2.5})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"nll": 2.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
