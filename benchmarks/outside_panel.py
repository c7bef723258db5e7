"""Outside panel: the default samplers, as a user runs them, on eight posteriordb posteriors that are not in the
panel, judged against posteriordb's reference moments.

    PYTHONPATH=. python benchmarks/outside_panel.py [--targets a,b] [--samplers nuts,hmc,mala] [--seed 0]
                                                   [--quick] [--out-dir benchmarks/results]

Targets (`benchmarks/_posteriordb.py`: each the posteriordb Stan program as an energy on the unconstrained scale;
data and reference moments in `benchmarks/data/posteriordb.json`):

* kilpisjarvi (kilpisjarvi_mod-kilpisjarvi), sblrc_blr (sblrc-blr), earnings (earnings-logearn_interaction),
  kidiq (kidiq-kidscore_interaction): the regressions of `metric_shrinkage.py`, whose scales are small or
  strongly correlated;
* arma11 (arma-arma11): ARMA(1, 1) on 200 observations, phi near 1 (0.957 +- 0.023);
* garch11 (garch-garch11): GARCH(1, 1) on 200 observations, alpha1 in (0, 1) and beta1 in (0, 1 - alpha1),
  flat priors;
* gp_pois_regr (gp_pois_regr-gp_pois_regr): a latent Gaussian process (11 points, exponentiated-quadratic
  kernel) behind a Poisson likelihood, non-centred through the kernel's Cholesky factor (posteriordb's
  reference ran Stan at adapt_delta 0.99);
* low_dim_gauss_mix (low_dim_gauss_mix-low_dim_gauss_mix): a two-component normal mixture, 1,000 points,
  ordered means.

Each run, defaults only: `sample(target, sampler, init=target.initial_point(8, seed) (N(0, I) draws on the
unconstrained scale), n_steps=1500, warmup=1000, seed=seed)`, float64, one torch thread. The draws are mapped to
posteriordb's parameters (sigma, not log sigma; f, not f_tilde) and judged there with the posterior panel's
checks (`posteriors.judge`): a run PASSES when every parameter's |mean - reference| / sqrt(MCSE^2 +
reference MCSE^2) < 5, every sd ratio sd / reference sd is in [0.8, 1.25], min bulk ESS >= 100 and max R-hat <
1.1. A run that raises fails with its error. Figures per run (JSON): those of `judge`, `ess_per_1k_grads_batch`
(1000 min bulk ESS / the gradient evaluations per chain the batch computed, warm-up included, counted by
`posteriors.CountingEnergy`), `seconds`, `step_size_median` (the last draw's step, median over chains),
`divergences` (kept draws), `metric_chains_left_out` (per slow warm-up window, the chains the metric estimate
left out) and `warmup_chains_moved` (per move of a straggling chain: window end, chain, donor, energy gap), both
absent for samplers without an adapted metric, and `mean_n_leapfrog` where the sampler records it.

Writes `<out-dir>/outside_panel.json` (merged with the runs already there, so targets and samplers can be run
separately) and `<out-dir>/outside_panel.md` (the table). `--quick` runs 100 warm-up + 150 draws, for smoke tests
(its figures are not comparable, and a quick file is never merged with a full one).
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch
from _posteriordb import MODELS
from _report import write_json
from posteriors import CountingEnergy, code_version, judge

import ebm_samplers

ROOT = Path(__file__).resolve().parent
SAMPLERS = ("nuts", "hmc", "mala")
CHAINS = 8


def run(name: str, sampler: str, *, seed: int, warmup: int, draws: int) -> dict:
    """One default run of `sampler` on target `name`, judged against posteriordb's reference."""
    target = MODELS[name]()
    counting = CountingEnergy(target)
    init = target.initial_point(CHAINS, seed=seed)
    start = time.perf_counter()
    try:
        trace = ebm_samplers.sample(counting, sampler, init=init, n_steps=draws, warmup=warmup, seed=seed)
    except Exception as error:  # a sampler that aborts fails the target; the table says why
        traceback.print_exc()
        return {
            "passed": False,
            "failed_checks": ["error"],
            "error": f"{type(error).__name__}: {error}"[:500],
            "seconds": round(time.perf_counter() - start, 1),
        }
    seconds = time.perf_counter() - start
    result = judge(target.constrained(trace.draws.double().numpy()), target.reference())
    grads_batch = counting.rows / CHAINS
    result.update(
        seconds=round(seconds, 1),
        grads_batch=grads_batch,
        ess_per_1k_grads_batch=1000 * (result["min_ess_bulk"] or 0.0) / grads_batch,
        step_size_median=float(trace.stats["step_size"][:, -1].double().median())
        if "step_size" in trace.stats
        else None,
        divergences=int(trace.stats["diverging"].sum()) if "diverging" in trace.stats else None,
    )
    if "n_leapfrog" in trace.stats:
        result["mean_n_leapfrog"] = float(trace.stats["n_leapfrog"].double().mean())
    for key in ("metric_chains_left_out", "warmup_chains_moved"):
        if key in trace.attrs:
            result[key] = trace.attrs[key]
    return result


def _figure(value, digits: str = ".3g") -> str:
    return "—" if value is None else format(value, digits)


def table(results: dict) -> str:
    """Markdown: one row per run, targets in `MODELS` order, samplers in `SAMPLERS` order, then a pass count."""
    lines = [
        "| target (d) | sampler | verdict | failed checks | min ESS | ESS per 1,000 gradients | divergences "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = [name for name in MODELS if name in results["runs"]]
    for name in names:
        runs = results["runs"][name]
        order = [s for s in SAMPLERS if s in runs] + sorted(set(runs) - set(SAMPLERS))
        for sampler in order:
            result = runs[sampler]
            if "error" in result:
                verdict, failed = "error", result["error"].split(":")[0]
            else:
                verdict = "**pass**" if result["passed"] else "fail"
                failed = ", ".join(result["failed_checks"]) or "—"
            lines.append(
                f"| {name} ({MODELS[name]().dim}) | {sampler} | {verdict} | {failed} | "
                f"{_figure(result.get('min_ess_bulk'), '.0f')} | {_figure(result.get('ess_per_1k_grads_batch'))} | "
                f"{_figure(result.get('divergences'), 'd')} | {_figure(result.get('seconds'), '.0f')} |"
            )
    every = [result for runs in results["runs"].values() for result in runs.values()]
    samplers = [*SAMPLERS, *sorted({s for runs in results["runs"].values() for s in runs} - set(SAMPLERS))]
    counts = []
    for sampler in samplers:
        ran = [runs[sampler] for runs in results["runs"].values() if sampler in runs]
        if ran:
            counts.append(f"{sampler} {sum(bool(r['passed']) for r in ran)} / {len(ran)}")
    seeds = ", ".join(str(seed) for seed in sorted({result.get("seed") for result in every}, key=str))
    codes = ", ".join(sorted({result.get("code", "unknown") for result in every}))
    lines += ["", f"Passed: {'; '.join(counts)}. Seed: {seeds}. Samplers' code (commit): {codes}."]
    return "\n".join(lines)


MD_HEADER = """# Outside panel

Generated by `benchmarks/outside_panel.py` ({command}). The default samplers on eight posteriordb posteriors
outside the panel, each sampled on the unconstrained scale and judged on posteriordb's parameters against its
reference moments (Stan NUTS, 10 chains x 1,000 thinned draws) with the panel's checks: `z` a mean off by >= 5
standard errors, `sd_ratio` an sd outside [0.8, 1.25] of the reference's, `ess` min bulk ESS < 100, `rhat` max
R-hat >= 1.1. d counts the unconstrained coordinates. ESS per 1,000 gradients: min bulk ESS per 1,000 gradient
evaluations per chain that the batch computed, warm-up included. Divergences among the kept draws. {chains}
chains, {warmup:,} warm-up + {draws:,} draws, defaults only, float64, one thread.

"""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="100 warm-up + 150 draws (a smoke test)")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args(argv)
    targets = [name for name in args.targets.split(",") if name]
    samplers = [name for name in args.samplers.split(",") if name]
    unknown = [name for name in targets if name not in MODELS]
    if unknown:
        parser.error(f"unknown targets {unknown}; expected some of {list(MODELS)}")
    warmup, draws = (100, 150) if args.quick else (1000, 1500)
    torch.set_num_threads(1)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "outside_panel.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"runs": {}}
    if results.get("quick") != args.quick:
        results = {"runs": {}}
    results.update(quick=args.quick, chains=CHAINS, warmup=warmup, draws=draws)
    for name in targets:
        for sampler in samplers:
            result = {**run(name, sampler, seed=args.seed, warmup=warmup, draws=draws), "seed": args.seed}
            result["code"] = code_version()
            results["runs"].setdefault(name, {})[sampler] = result
            write_json(json_path, results, indent=1)
            if "error" in result:
                print(f"{name} {sampler}: error {result['error']}", flush=True)
                continue
            verdict = "pass" if result["passed"] else f"fail {result['failed_checks']}"
            print(
                f"{name} {sampler}: {verdict}, min ESS {_figure(result['min_ess_bulk'], '.0f')}, max R-hat "
                f"{_figure(result['max_rhat'], '.3f')}, ESS per 1,000 gradients "
                f"{_figure(result['ess_per_1k_grads_batch'], '.1f')}, step {_figure(result['step_size_median'])}, "
                f"{_figure(result['divergences'], 'd')} divergences, {result['seconds']:.0f} s",
                flush=True,
            )
    command = "python benchmarks/outside_panel.py" + (" --quick" if args.quick else "")
    command += f" --seed {args.seed}" if args.seed else ""
    header = MD_HEADER.format(command=command, chains=CHAINS, warmup=warmup, draws=draws)
    (out_dir / "outside_panel.md").write_text(header + table(results) + "\n")
    return results


if __name__ == "__main__":
    main()
