"""Ground truth for the panel targets that have no analytic moments: long, converged BlackJAX NUTS runs.

    PYTHONPATH=. python benchmarks/posteriors_reference.py [--targets a,b] [--chains 16] [--warmup 2000]
                                                          [--draws 10000] [--seed 20261202]

For each target without analytic or published truth on its own (unconstrained) scale, runs BlackJAX NUTS with
window adaptation (target acceptance 0.95, for small step sizes in curved regions) through
`benchmarks/posteriors_blackjax.py`, from the target's N(0, I) initial points, float64, and keeps the mean, sd
and MCSE of the mean of every coordinate. The run is accepted only if max R-hat < 1.01, min bulk ESS >= 4,000
and there are no divergences after warm-up; otherwise the script stops with the figures.

The centered eight schools shares the non-centered posterior: its truth is the non-centered draws mapped by
theta_j = mu + exp(log tau) eta_j. Where a published reference exists for the same model on the constrained
scale (posteriordb eight_schools_noncentered and arK, the Inference Gym's stochastic volatility on S&P500), the
run's constrained moments are compared with it (`cross_check`: max |mean difference| / published sd, and the
range of sd ratios): an independent check of the model code and of the run.

Writes energies/posteriors/data/reference_truth.json (what `Posterior.truth()` reads) and
benchmarks/results/posteriors_truth.json (the same plus how each truth was made, for every panel target).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from posteriors import ROOT, run_blackjax_raw

from diagnostics.convergence import convergence_figures
from energies.posteriors import PANEL
from energies.posteriors._base import REFERENCE_FILE, load_data

REFDATA = Path("/work/shared/refdata")
RUN_TARGETS = (
    "ar5",
    "eight_schools_noncentered",
    "logistic_breast_cancer",
    "hierarchical_regression",
    "stochastic_volatility",
)
RHAT_MAX, ESS_MIN = 1.01, 4000.0


def _moments(draws: np.ndarray) -> dict:
    figures = convergence_figures(np.ascontiguousarray(draws))
    return {
        "mean": figures["mean"].tolist(),
        "sd": figures["sd"].tolist(),
        "mean_se": figures["mcse_mean"].tolist(),
        "max_rhat": float(figures["r_hat"].max()),
        "min_ess_bulk": float(figures["ess_bulk"].min()),
    }


def _compare(draws_constrained: np.ndarray, names, published_mean, published_sd) -> dict:
    flat = draws_constrained.reshape(-1, draws_constrained.shape[-1])
    mean, sd = flat.mean(0), flat.std(0, ddof=1)
    published_mean, published_sd = np.asarray(published_mean), np.asarray(published_sd)
    shift = np.abs(mean - published_mean) / published_sd
    ratio = sd / published_sd
    return {
        "parameters": list(names),
        "max_abs_mean_difference_in_sd": float(shift.max()),
        "worst": names[int(shift.argmax())],
        "sd_ratio_range": [float(ratio.min()), float(ratio.max())],
    }


def cross_check(name: str, draws: np.ndarray) -> dict | None:
    if name == "eight_schools_noncentered":
        ref = json.loads(
            (REFDATA / "posteriordb/eight_schools-eight_schools_noncentered.reference_stats.json").read_text()
        )
        mu, tau = draws[..., 0], np.exp(draws[..., 1])
        theta = mu[..., None] + tau[..., None] * draws[..., 2:]
        by_name = {"mu": mu, "tau": tau, **{f"theta[{j + 1}]": theta[..., j] for j in range(8)}}
        stacked = np.stack([by_name[p] for p in ref["parameter_names"]], axis=-1)
        return {
            "against": "posteriordb eight_schools-eight_schools_noncentered reference_stats",
            **_compare(stacked, ref["parameter_names"], ref["mean"], ref["sd"]),
        }
    if name == "ar5":
        ref = load_data("arK")["reference_constrained"]
        constrained = np.concatenate([draws[..., :-1], np.exp(draws[..., -1:])], axis=-1)
        return {
            "against": "posteriordb arK-arK reference_stats",
            **_compare(constrained, ref["parameter_names"], ref["mean"], ref["sd"]),
        }
    if name == "stochastic_volatility":
        gym = load_data("sp500_small")["ground_truth_constrained"]
        u_phi, mu, sigma, z = draws[..., 0], draws[..., 1], np.exp(draws[..., 2]), draws[..., 3:]
        phi = 2 / (1 + np.exp(-u_phi)) - 1
        h = np.empty_like(z)
        h[..., 0] = sigma * z[..., 0] / np.sqrt(1 - phi**2)
        for t in range(1, z.shape[-1]):
            h[..., t] = phi * h[..., t - 1] + sigma * z[..., t]
        h += mu[..., None]
        constrained = np.concatenate([np.stack([phi, mu, sigma], -1), h], axis=-1)
        names = ["persistence_of_volatility", "mean_log_volatility", "white_noise_shock_scale"]
        names += [f"log_volatility[{t}]" for t in range(z.shape[-1])]
        means = [gym[n]["mean"] for n in names[:3]] + list(gym["log_volatility"]["mean"])
        sds = [gym[n]["sd"] for n in names[:3]] + list(gym["log_volatility"]["sd"])
        return {
            "against": "Inference Gym StochasticVolatilitySP500Small ground truth",
            **_compare(constrained, names, means, sds),
        }
    return None


def _centered_to_noncentered(draws: np.ndarray) -> np.ndarray:
    """(u_phi, mu, log sigma, h) -> (u_phi, mu, log sigma, z): z_0 = (h_0 - mu) sqrt(1 - phi^2) / sigma,
    z_t = (h_t - mu - phi (h_{t-1} - mu)) / sigma."""
    u_phi, mu, sigma, h = draws[..., 0], draws[..., 1], np.exp(draws[..., 2]), draws[..., 3:]
    phi = 2 / (1 + np.exp(-u_phi)) - 1
    deviation = h - mu[..., None]
    z = np.empty_like(h)
    z[..., 0] = deviation[..., 0] * np.sqrt(1 - phi**2) / sigma
    z[..., 1:] = (deviation[..., 1:] - phi[..., None] * deviation[..., :-1]) / sigma[..., None]
    return np.concatenate([draws[..., :3], z], axis=-1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(RUN_TARGETS))
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args(argv)
    reference = json.loads(REFERENCE_FILE.read_text())["targets"] if REFERENCE_FILE.exists() else {}
    method = (
        f"BlackJAX 1.7.1 NUTS, window_adaptation (diagonal metric, target acceptance 0.95), {args.chains} "
        f"chains x ({args.warmup} warm-up + {args.draws} draws), float64, seed {args.seed}, "
        "benchmarks/posteriors_reference.py"
    )
    for name in args.targets.split(","):
        target = PANEL[name]()
        init = target.initial_point(args.chains, seed=1)
        if name == "stochastic_volatility":
            # the non-centered posterior diverges under NUTS (a funnel between u_phi and z); sample the centered
            # parameterisation and map its draws to z exactly
            start = np.concatenate([init[:, :3].numpy(), 7.0 + init[:, 3:].numpy()], axis=1)
            out = run_blackjax_raw(
                target,
                torch.as_tensor(start),
                args.warmup,
                args.draws,
                args.seed,
                0.95,
                "stochastic_volatility_centered",
            )
            out["draws"] = _centered_to_noncentered(out["draws"])
        else:
            out = run_blackjax_raw(target, init, args.warmup, args.draws, args.seed, target_acceptance=0.95)
        draws = out["draws"]
        moments = _moments(draws)
        divergences = int(out["diverging"].sum())
        print(
            f"{name}: max_rhat {moments['max_rhat']:.4f} min_ess_bulk {moments['min_ess_bulk']:.0f} "
            f"divergences {divergences} seconds {float(out['run_seconds']):.0f}"
        )
        if moments["max_rhat"] >= RHAT_MAX or moments["min_ess_bulk"] < ESS_MIN or divergences:
            raise SystemExit(f"{name}: reference run not converged; not saved")
        checked = cross_check(name, draws)
        if checked:
            print(f"{name}: cross-check {checked}")
        entry = {**moments, "divergences": divergences, "source": f"reference run: {method}", "cross_check": checked}
        reference[name] = entry
        if name == "eight_schools_noncentered":
            centered = draws.copy()
            centered[..., 2:] = draws[..., :1] + np.exp(draws[..., 1:2]) * draws[..., 2:]
            reference["eight_schools_centered"] = {
                **_moments(centered),
                "divergences": divergences,
                "cross_check": checked,
                "source": f"the non-centered reference run mapped by theta = mu + exp(log_tau) eta: {method}",
            }
        REFERENCE_FILE.write_text(json.dumps({"targets": reference}, indent=1) + "\n")
    _reference_cache_clear()
    record = {"method": method, "targets": {}}
    for name, cls in PANEL.items():
        try:
            truth = cls().truth()
        except NotImplementedError as missing:
            print(f"{name}: {missing}")
            continue
        record["targets"][name] = {
            "param_names": list(cls().param_names),
            "mean": truth.mean.tolist(),
            "sd": truth.sd.tolist(),
            "mean_se": truth.mean_se.tolist(),
            "source": truth.source,
            **{
                k: reference[name][k]
                for k in ("max_rhat", "min_ess_bulk", "divergences", "cross_check")
                if name in reference and k in reference[name]
            },
        }
    (ROOT / "benchmarks/results/posteriors_truth.json").write_text(json.dumps(record, indent=1) + "\n")


def _reference_cache_clear() -> None:
    from energies.posteriors import _base

    _base._reference.cache_clear()


if __name__ == "__main__":
    main()
