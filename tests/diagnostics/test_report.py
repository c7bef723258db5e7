"""diagnose(): passes a healthy run, and names stuck chains, mode splits, few chains, divergences, low E-BFMI."""

import arviz as az
import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics import diagnose, summary
from energies import Gaussian, GaussianMixture


def test_healthy_mala_run_passes():
    trace = ebm_samplers.sample(
        Gaussian([0.0, 0.0]), "mala", n_chains=4, n_steps=1500, warmup=200, seed=0, step_size=1.0
    )
    report = diagnose(trace)
    assert report.ok, str(report)
    assert list(report.table.index) == ["x[0]", "x[1]"]
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "acf1"} <= set(report.table.columns)
    assert "acceptance" in report.chains and "bfmi" not in report.chains  # a MALA energy is not a Hamiltonian
    assert "ok: no problems found" in str(report)


def test_chains_in_different_modes_are_named():
    mixture = GaussianMixture()
    init = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [-2.0, -2.0], [-2.0, -2.0], [2.0, 2.0], [-2.0, -2.0]])
    trace = ebm_samplers.sample(mixture, "mala", init=init, warmup=0, n_steps=1000, seed=0, step_size=0.3)
    report = diagnose(trace)
    assert not report.ok
    (split,) = [p for p in report.problems if p.kind == "mode_split"]
    assert split.chains == (1, 4)
    assert "chains 1 and 4 sit in a different region from the others" in split.message
    assert "parallel_tempering" in split.message
    assert "stuck_chain" not in report.kinds()


def test_stuck_chain_and_low_acceptance_from_sample_stats():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(5, 1000, 2))
    draws[3] = 0.7  # never moved
    accepted = np.ones((5, 1000), dtype=bool)
    accepted[3] = False
    accepted[1] = rng.uniform(size=1000) < 0.02
    report = diagnose(draws, sample_stats={"accepted": accepted})
    assert {"stuck_chain", "low_acceptance"} <= report.kinds()
    stuck = next(p for p in report.problems if p.kind == "stuck_chain")
    assert stuck.chains == (3,) and "chain 3 is stuck (acceptance 0)" in stuck.message
    assert next(p for p in report.problems if p.kind == "low_acceptance").chains == (1,)
    assert "mode_split" not in report.kinds()  # a stuck chain is reported as stuck, not as a mode


def test_few_chains_and_few_draws():
    report = diagnose(np.random.default_rng(1).normal(size=(2, 60, 1)))
    assert {"few_chains", "low_ess_bulk", "low_ess_tail"} <= report.kinds()
    assert "too few draws for reliable tail ESS" in str(report)


def test_divergences_and_bfmi_only_with_a_hamiltonian_energy():
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(4, 1000, 1))
    diverging = np.zeros((4, 1000), dtype=bool)
    diverging[2, [10, 500]] = True
    smooth_energy = np.cumsum(rng.normal(size=(4, 1000)), axis=1) * 0.05  # random walk: E-BFMI far below 0.3
    report = diagnose(draws, sample_stats={"diverging": diverging, "energy": smooth_energy})
    assert {"divergences", "low_bfmi"} <= report.kinds()
    assert "2 of 4000 transitions diverged (per chain 2: 2)" in str(report)
    # the Hamiltonian under a trace's name counts too; a potential energy never does
    report = diagnose(draws, sample_stats={"hamiltonian": smooth_energy})
    assert report.kinds() == {"low_bfmi"}
    report = diagnose(draws, sample_stats={"potential_energy": smooth_energy})
    assert "bfmi" not in report.chains and report.ok


def test_datatree_from_another_library_with_several_variables():
    rng = np.random.default_rng(3)
    tree = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 500)), "theta": rng.normal(size=(4, 500, 3))}})
    report = diagnose(tree)
    assert list(report.table.index) == ["mu", "theta[0]", "theta[1]", "theta[2]"]
    assert report.ok, str(report)


def test_many_coordinates_print_the_worst_first():
    draws = np.random.default_rng(4).normal(size=(4, 200, 30))
    draws[:2, :, 7] += 3.0
    text = str(diagnose(draws))
    assert "the 20 coordinates with the largest R-hat of 30" in text
    assert text.index("x[7]") < text.index("x[0] ")


def test_a_chain_that_crossed_once_does_not_hide_the_mode_split():
    """Chain 4 switches modes once: its mean lies between the modes, but the split is still named."""
    rng = np.random.default_rng(5)
    draws = rng.normal(scale=0.7, size=(6, 2000, 2))
    draws[:2] -= 2.0
    draws[2:] += 2.0
    draws[4, :700] -= 4.0  # chain 4 starts in the lower mode and crosses at draw 700
    report = diagnose(draws)
    (split,) = [p for p in report.problems if p.kind == "mode_split"]
    assert split.chains == (0, 1), split.message


def test_sample_stats_that_are_not_a_dict_are_explained():
    import pytest

    with pytest.raises(TypeError, match=r"sample_stats must be a dict of \(chain, draw\) arrays by name; got list"):
        diagnose(np.zeros((4, 20, 1)), sample_stats=[np.ones((4, 20))])


def test_a_stuck_chain_without_acceptance_stats_is_named_by_its_constant_draws():
    draws = np.random.default_rng(0).normal(size=(4, 100, 1))
    draws[2] = 0.5
    stuck = [p for p in diagnose(draws).problems if p.kind == "stuck_chain"]
    assert len(stuck) == 1 and stuck[0].chains == (2,)
    assert "chain 2 is stuck (draws constant)" in stuck[0].message and "acceptance" not in stuck[0].message


def test_an_undefined_r_hat_is_called_undefined_not_a_largest_nan():
    draws = np.random.default_rng(1).normal(size=(4, 100, 2))
    draws[:, :, 1] = 3.0  # a coordinate that never moves in any chain: R-hat is NaN
    (problem,) = [p for p in diagnose(draws).problems if p.kind == "r_hat"]
    assert "R-hat above 1.01 or undefined on 1 of 2 coordinates (undefined at x[1])" in problem.message
    assert "nan" not in problem.message


def test_a_mode_split_with_an_undefined_r_hat_names_the_largest_defined_one():
    rng = np.random.default_rng(0)
    draws = np.empty((4, 200, 2))
    draws[:, :, 0] = rng.normal(size=(4, 200)) + np.array([-3.0, -3.0, 3.0, 3.0])[:, None]  # two modes
    draws[:, :, 1] = np.array([0.0, 1.0, 2.0, 3.0])[:, None]  # constant within each chain: R-hat undefined
    (problem,) = [p for p in diagnose(draws).problems if p.kind == "mode_split"]
    r_hat = summary(draws)["r_hat"]
    assert f"R-hat up to {r_hat.iloc[0]:.3f} at x[0], undefined at x[1])" in problem.message
    assert "nan" not in problem.message


def test_an_r_hat_just_above_the_threshold_is_not_printed_as_the_threshold():
    import pandas as pd

    from diagnostics.report import _rhat_extent

    assert _rhat_extent(pd.Series([1.0104, 1.003], index=["mu", "tau"])) == "up to 1.0104 at mu"
    assert _rhat_extent(pd.Series([1.2345], index=["mu"])) == "up to 1.234 at mu"


def test_nonfinite_values_the_run_handled_are_reported():
    import arviz as az

    draws = np.random.default_rng(5).normal(size=(4, 500, 1))
    attrs = {"on_nonfinite": "reject", "nonfinite_total": 3, "nonfinite_per_chain": "json:[0, 2, 1, 0]"}
    tree = az.from_dict({"posterior": {"x": draws}}, attrs={"posterior": attrs})
    (problem,) = [p for p in diagnose(tree).problems if p.kind == "nonfinite"]
    assert "3 non-finite energies or gradients were met (per chain 1: 2, 2: 1)" in problem.message
    assert problem.chains == (1, 2)
    attrs["nonfinite_total"] = 0
    clean = az.from_dict({"posterior": {"x": draws}}, attrs={"posterior": attrs})
    assert "nonfinite" not in diagnose(clean).kinds()


@pytest.mark.parametrize(("adapted", "attribute"), [(True, "json:true"), (False, "json:false"), (False, None)])
def test_low_bfmi_advice_depends_on_whether_a_mass_matrix_was_adapted(adapted, attribute):
    import arviz as az

    rng = np.random.default_rng(6)
    draws = rng.normal(size=(4, 500, 1))
    energy = np.cumsum(rng.normal(size=(4, 500)) * 0.05, axis=1)  # a random walk: E-BFMI far below 0.3
    stats = {"energy": energy, "diverging": np.zeros((4, 500), dtype=bool)}
    attrs = {"posterior": {} if attribute is None else {"adapted_mass_matrix": attribute}}  # as Trace.save writes it
    tree = az.from_dict({"posterior": {"x": draws}, "sample_stats": stats}, attrs=attrs)
    (problem,) = [p for p in diagnose(tree).problems if p.kind == "low_bfmi"]
    assert ("already adapted a mass matrix" in problem.message) == adapted
    assert ("adapt a mass matrix during warm-up" in problem.message) == (not adapted)


def test_trees_at_the_maximum_depth_are_an_efficiency_note_that_names_a_collapsed_step(tmp_path):
    # a wide target and a step 100x too small, no warm-up: every tree stops at depth 3, not at a U-turn
    trace = ebm_samplers.sample(
        Gaussian([0.0, 0.0], [25.0, 25.0]),
        "nuts",
        n_chains=4,
        n_steps=200,
        warmup=0,
        seed=0,
        step_size=0.05,
        max_tree_depth=3,
    )
    report = diagnose(trace)
    (note,) = report.notes
    assert note.kind == "max_tree_depth" and "max_tree_depth" not in report.kinds()  # not a problem: no bias
    assert note.message.startswith("800 of 800 transitions hit the maximum tree depth 3 (7 leapfrog steps)")
    assert "below a tenth" not in note.message  # every chain has the same step
    assert "efficiency note(s)" in str(report)
    # read back from netCDF (attributes as json text), with one chain's step a hundredth of the others'
    trace.attrs["final_step_size"] = [0.05, 0.05, 0.0005, 0.05]
    saved = trace.save(tmp_path / "trace.nc")
    (note,) = diagnose(az.from_netcdf(saved)).notes  # a DataTree, as `ebm-samplers diagnose` reads one
    assert "chain 2: 0.0005 is below a tenth of the chains' median 0.05" in note.message
    # PyMC's name for the same fact, on plain arrays; a run whose trees all turned back has no note
    hits = np.zeros((4, 500), dtype=bool)
    hits[1, :7] = True
    draws = np.random.default_rng(3).normal(size=(4, 500, 1))
    (note,) = diagnose(draws, sample_stats={"reached_max_treedepth": hits}).notes
    assert note.chains == (1,) and note.message.startswith("7 of 2000 transitions hit the maximum tree depth before")
    assert not diagnose(draws, sample_stats={"reached_max_treedepth": np.zeros((4, 500), dtype=bool)}).notes
