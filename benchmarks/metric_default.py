"""Diagonal or dense metric? `hmc` and `mala` with each on the posterior panel, everything else at its default.

    PYTHONPATH=. python benchmarks/metric_default.py [--targets a,b] [--samplers hmc,mala] [--seed 0]
                                                    [--out-dir benchmarks/results]

Each run is `sample(target, sampler, init=target.initial_point(8), n_steps=1500, warmup=1000, seed=seed,
metric=...)` on `energies.posteriors.PANEL` (8 chains, float64), judged by `benchmarks/posteriors.judge`
(|mean - truth| / MCSE < 5, sd ratio in [0.8, 1.25], min bulk ESS >= 100, R-hat < 1.1). Figures per run:
pass/fail, min bulk ESS, min bulk ESS per 1,000 gradient evaluations (rows the batch evaluated / chains, warm-up
included), wall seconds and min bulk ESS per second (one torch thread on a shared machine: the seconds are
noisy, compare the two metrics of one target, run one after the other). Writes `<out-dir>/metric_default.json`
and `<out-dir>/metric_default.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ebm_samplers  # noqa: E402
from benchmarks.posteriors import CountingEnergy, judge  # noqa: E402
from energies.posteriors import PANEL  # noqa: E402

METRICS = ("diag", "dense")


def run(target_name: str, sampler: str, metric: str, seed: int, on_nonfinite: str = "raise", chains: int = 8) -> dict:
    target = PANEL[target_name]()
    counting = CountingEnergy(target)
    init = target.initial_point(chains, seed=seed)
    start = time.perf_counter()
    try:
        trace = ebm_samplers.sample(
            counting, sampler, init=init, n_steps=1500, warmup=1000, seed=seed, metric=metric, on_nonfinite=on_nonfinite
        )
    except Exception as error:
        traceback.print_exc()
        return {"dim": target.dim, "passed": False, "error": f"{type(error).__name__}: {error}"[:300]}
    seconds = time.perf_counter() - start
    result = judge(trace.draws.double().numpy(), target.truth())
    grads = counting.rows / chains
    ess = result["min_ess_bulk"] or 0.0
    result.update(
        dim=target.dim,
        seconds=seconds,
        ess_per_1k_grads=1000 * ess / grads,
        ess_per_second=ess / seconds,
        acceptance=float(trace.stats["acceptance_rate"].double().mean()),
        ridge_retries=trace.attrs.get("metric_ridge_retries"),
    )
    return result


def table(results: dict) -> str:
    lines = [
        "| target | d | sampler | diag: pass, min ESS, ESS/1k grads, ESS/s | dense: the same |",
        "|---|---|---|---|---|",
    ]
    for key in sorted(results, key=lambda k: (results[k]["diag"].get("dim", 0), k)):
        target, sampler = key.split("/")
        cells = []
        for metric in METRICS:
            r = results[key].get(metric, {})
            if "error" in r:
                cells.append(f"error: {r['error'][:60]}")
                continue
            mark = "pass" if r["passed"] else "FAIL " + ",".join(r["failed_checks"])
            cells.append(f"{mark}, {r['min_ess_bulk']:.0f}, {r['ess_per_1k_grads']:.2f}, {r['ess_per_second']:.1f}")
        if results[key]["diag"].get("on_nonfinite", "raise") != "raise":
            sampler += f" (on_nonfinite={results[key]['diag']['on_nonfinite']})"
        lines.append(f"| {target} | {results[key]['diag'].get('dim')} | {sampler} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(PANEL))
    parser.add_argument("--samplers", default="hmc,mala")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--on-nonfinite",
        default="raise",
        help="sample()'s policy; 'reject' lets a kernel that aborts on an infinite proposal in warm-up go on",
    )
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metric_default.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for target in args.targets.split(","):
        for sampler in args.samplers.split(","):
            key = f"{target}/{sampler}"
            for metric in METRICS:
                result = run(target, sampler, metric, args.seed, args.on_nonfinite)
                result["on_nonfinite"] = args.on_nonfinite
                results.setdefault(key, {})[metric] = result
                print(key, metric, {k: result.get(k) for k in ("passed", "min_ess_bulk", "ess_per_1k_grads",
                                                               "ess_per_second", "seconds")}, flush=True)  # fmt: skip
                path.write_text(json.dumps(results, indent=1))
    (out / "metric_default.md").write_text(table(results))
    return results


if __name__ == "__main__":
    main()
