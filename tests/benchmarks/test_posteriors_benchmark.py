"""Smoke test of benchmarks/posteriors.py: `--quick` on two small targets with one sampler writes a table and
a JSON with the pass/fail figures, and a failing sampler is a failed row, not a crashed benchmark."""

import json

import numpy as np

from energies.posteriors import PANEL
from tests.benchmark_modules import load_benchmark


def test_quick_run_writes_json_and_table(tmp_path):
    benchmark = load_benchmark("posteriors")
    args = ["--quick", "--targets", "banana,regression_correlated", "--samplers", "mala", "--out-dir", str(tmp_path)]
    results = benchmark.main(args)
    saved = json.loads((tmp_path / "posteriors.json").read_text())
    assert saved["quick"] is True and set(saved["runs"]) == {"banana", "regression_correlated"}
    for runs in saved["runs"].values():
        run = runs["mala"]
        assert isinstance(run["passed"], bool)
        assert run["grads_batch"] > 250  # 100 warm-up + 150 draws, at least one gradient each
        assert {"max_z", "sd_ratio_min", "min_ess_bulk", "max_rhat", "diagnose_ok"} <= set(run)
    table = (tmp_path / "posteriors.md").read_text()
    assert "| banana (2) |" in table and "| regression_correlated (2) |" in table
    assert results["runs"]["banana"]["mala"] == saved["runs"]["banana"]["mala"]


def test_judge_fails_each_criterion_on_its_own():
    benchmark = load_benchmark("posteriors")
    truth = PANEL["banana"]().truth()
    rng = np.random.default_rng(0)
    good = truth.mean + truth.sd * rng.normal(size=(8, 500, 2))
    assert benchmark.judge(good, truth)["passed"]
    assert benchmark.judge(good + 0.5 * truth.sd, truth)["failed_checks"] == ["z"]
    assert benchmark.judge(truth.mean + 0.7 * (good - truth.mean), truth)["failed_checks"] == ["sd_ratio"]
    sticky = np.repeat(good[:, :10], 50, axis=1)  # 80 distinct values, each repeated 50 times: ESS about 80
    assert "ess" in benchmark.judge(sticky, truth)["failed_checks"]
    shifted = good.copy()
    shifted[0] += 3 * truth.sd  # one chain elsewhere
    assert "rhat" in benchmark.judge(shifted, truth)["failed_checks"]
