"""Posterior panel: every sampler, with its defaults, on standard Bayesian posteriors with ground truth.

    PYTHONPATH=. python benchmarks/posteriors.py [--targets a,b] [--samplers nuts,hmc,mala,blackjax] [--seed 0]
                                                [--chains 8] [--quick] [--out-dir benchmarks/results]

Targets: `energies.posteriors.PANEL` (12 posteriors, 2 to 103 parameters, on the unconstrained scale). Each
sampler runs as a user would, defaults only: `sample(target, name, init=N(0, I) draws (fixed), n_steps=1500,
warmup=1000, seed=seed)`, 8 chains, float64. `blackjax` is BlackJAX 1.7 NUTS with `window_adaptation` (Stan's
windows, diagonal metric, target 0.8) on the same log densities written in JAX, the same initial points, 8 chains,
1,000 warm-up + 1,500 draws, float64, run by `benchmarks/posteriors_blackjax.py` in the scratch environment
`$BLACKJAX_PYTHON` (default /work/scratch/bjax/bin/python; never a dependency of this project); before its run
the JAX log density is checked against the torch energy at 4 points (log p + E constant to 1e-6 relative).

A run PASSES when all four hold (pooled over 8 chains, figures from `diagnostics.convergence`, equal to ArviZ's):
every coordinate's |mean - truth| / sqrt(MCSE^2 + SE_truth^2) < 5 (SE_truth: the standard error of a reference
run's mean, 0 for analytic truth); every sd ratio sd / sd_truth in [0.8, 1.25]; min bulk ESS >= 100;
max R-hat < 1.1. A run that raises fails with its error. Figures per run (JSON), all counting warm-up too:

* `grads_batch`: gradient evaluations per chain of the whole run as the batch computed them (rows the energy
  was called on / chains, by a counting wrapper; for lockstep NUTS this includes the waiting chains' rows if the
  kernel evaluates them); `ess_per_1k_grads_batch` = 1000 min bulk ESS / `grads_batch`.
* NUTS kernels (ours and BlackJAX): `ess_per_1k_grads_used` = 1000 min bulk ESS / (leapfrog steps each chain
  needed, mean over chains). BlackJAX reports its warm-up steps, so its figure is exact. Ours records
  `n_leapfrog` for kept draws only, so the warm-up's share is estimated as `grads_batch` x (kept draws' mean
  n_leapfrog / their lockstep cost: `n_leapfrog_batch` summed over draws when the kernel records it, else the sum
  over draws of the max over chains). `ess_per_1k_grads_used_sampling`
  counts the kept draws' leapfrog steps only (exact for both).
* `lockstep_waste` (NUTS, kept draws): leapfrog steps the batch computed (as above) / mean over chains of the
  steps each needed: how much a lockstep batch computes per step a chain needed (1 = no waste).
* `ess_per_second`: min bulk ESS / wall seconds of the whole run (one torch thread, a shared machine: noisy;
  BlackJAX's seconds exclude its ahead-of-time compile, reported as `compile_seconds`).
* `divergences` (kept draws), and `diagnose_ok` / `diagnose_problems` from `diagnostics.diagnose` on the run.
* `metric_chains_left_out` (per slow warm-up window, the chains left out of the metric estimate) and
  `warmup_chains_moved` (per straggling chain moved: window end, chain, donor, energy gap), from the trace's
  attributes (None for samplers without an adapted metric).

Writes `<out-dir>/posteriors.json` (merged with the runs already there, so targets and samplers can be run
separately) and `<out-dir>/posteriors.md` (the table). `--quick` runs 100 warm-up + 150 draws, for smoke tests
(its figures are not comparable).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ebm_samplers  # noqa: E402
from diagnostics import diagnose  # noqa: E402
from diagnostics.convergence import convergence_figures  # noqa: E402
from energies.base import Energy  # noqa: E402
from energies.posteriors import PANEL, Posterior, Truth  # noqa: E402

OURS = ("nuts", "hmc", "mala", "underdamped_langevin")
PEER = "blackjax"
BLACKJAX_SCRIPT = Path(__file__).resolve().parent / "posteriors_blackjax.py"
Z_MAX, SD_RATIO, ESS_MIN, RHAT_MAX = 5.0, (0.8, 1.25), 100.0, 1.1


class CountingEnergy(Energy):
    """Delegates to `target`, counting the rows it is evaluated on (each a gradient or energy evaluation)."""

    def __init__(self, target: Posterior):
        super().__init__()
        self.target, self.rows = target, 0
        self.event_shape = target.event_shape

    def forward(self, x):
        self.rows += x.shape[0]
        return self.target(x)

    def energy_and_grad(self, x):
        self.rows += x.shape[0]
        return self.target.energy_and_grad(x)

    @property
    def name(self) -> str:
        return self.target.name


def judge(draws: np.ndarray, truth: Truth) -> dict:
    """Pass/fail and the figures behind it for float64 draws (chain, draw, d) against `truth`."""
    figures = convergence_figures(np.ascontiguousarray(draws, dtype=np.float64))
    scale = np.sqrt(figures["mcse_mean"] ** 2 + truth.mean_se**2)
    z = np.abs(figures["mean"] - truth.mean) / scale
    ratio = figures["sd"] / truth.sd
    checks = {
        "z": bool(np.all(z < Z_MAX)),
        "sd_ratio": bool(np.all((ratio >= SD_RATIO[0]) & (ratio <= SD_RATIO[1]))),
        "ess": bool(np.min(figures["ess_bulk"]) >= ESS_MIN),
        "rhat": bool(np.max(figures["r_hat"]) < RHAT_MAX),
    }
    return {
        "passed": all(checks.values()),
        "failed_checks": [name for name, ok in checks.items() if not ok],
        "max_z": _number(np.max(z)),
        "worst_z_coordinate": int(np.nanargmax(z)) if np.isfinite(z).any() else None,
        "sd_ratio_min": _number(np.min(ratio)),
        "sd_ratio_max": _number(np.max(ratio)),
        "min_ess_bulk": _number(np.min(figures["ess_bulk"])),
        "max_rhat": _number(np.max(figures["r_hat"])),
    }


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _diagnosis(source, sample_stats=None) -> dict:
    report = diagnose(source, sample_stats=sample_stats)
    return {"diagnose_ok": report.ok, "diagnose_problems": sorted(report.kinds())}


def run_ours(target: Posterior, sampler: str, init: torch.Tensor, warmup: int, draws: int, seed: int) -> dict:
    counting = CountingEnergy(target)
    start = time.perf_counter()
    trace = ebm_samplers.sample(counting, sampler, init=init.clone(), n_steps=draws, warmup=warmup, seed=seed)
    seconds = time.perf_counter() - start
    result = judge(trace.draws.double().numpy(), target.truth())
    grads_batch = counting.rows / init.shape[0]
    ess = result["min_ess_bulk"] or 0.0
    result.update(
        seconds=seconds,
        grads_batch=grads_batch,
        ess_per_1k_grads_batch=1000 * ess / grads_batch,
        ess_per_second=ess / seconds,
        divergences=int(trace.stats["diverging"].sum()) if "diverging" in trace.stats else None,
        step_size=_number(trace.stats["step_size"].double().mean()) if "step_size" in trace.stats else None,
        metric_chains_left_out=trace.attrs.get("metric_chains_left_out"),
        warmup_chains_moved=trace.attrs.get("warmup_chains_moved"),
    )
    if "n_leapfrog" in trace.stats:
        result["mean_n_leapfrog"] = float(trace.stats["n_leapfrog"].double().mean())
    if sampler == "nuts" and "n_leapfrog" in trace.stats:
        n_leapfrog = trace.stats["n_leapfrog"].double()  # (chain, draw)
        used_sampling = float(n_leapfrog.sum(1).mean())
        # what the batch computed per draw: the kernel's own count if it records one, else the longest tree
        batch = trace.stats.get("n_leapfrog_batch", n_leapfrog).double()
        lockstep_sampling = float(batch.max(0).values.sum())
        waste = lockstep_sampling / used_sampling
        result.update(
            lockstep_waste=waste,
            grads_used_estimated=grads_batch / waste,
            ess_per_1k_grads_used=1000 * ess * waste / grads_batch,
            ess_per_1k_grads_used_sampling=1000 * ess / used_sampling,
        )
    result.update(_diagnosis(trace))
    return result


def blackjax_python() -> str:
    return os.environ.get("BLACKJAX_PYTHON", "/work/scratch/bjax/bin/python")


def run_blackjax_raw(
    target: Posterior,
    init: torch.Tensor,
    warmup: int,
    draws: int,
    seed: int,
    target_acceptance: float = 0.8,
    jax_model: str | None = None,
) -> dict:
    """Run `posteriors_blackjax.py` on `target` and return its outputs; raises when the JAX and torch log
    densities disagree beyond rounding at 4 fixed points. `jax_model` runs another JAX model on the target's data
    (a reparameterisation, for reference runs; no check then)."""
    check_points = target.initial_point(4, seed=12345) * 0.5 + torch.as_tensor(_typical_point(target))
    with tempfile.TemporaryDirectory() as folder:
        inputs, outputs = Path(folder) / "in.npz", Path(folder) / "out.npz"
        arrays = {f"data_{key}": value for key, value in target.arrays().items()}
        np.savez(inputs, init=init.double().numpy(), check_points=check_points.numpy(), **arrays)
        command = [blackjax_python(), str(BLACKJAX_SCRIPT), "--input", str(inputs), "--output", str(outputs)]
        command += [
            "--target",
            jax_model or target.name,
            "--warmup",
            str(warmup),
            "--draws",
            str(draws),
            "--seed",
            str(seed),
        ]
        command += ["--target-acceptance", str(target_acceptance)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode:
            raise RuntimeError(f"blackjax run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        with np.load(outputs) as result:
            out = {key: result[key] for key in result.files}
    with torch.no_grad():
        energy = target(check_points).numpy()
    offset = out["check_logdensity"] + energy
    if jax_model is None and np.ptp(offset) > 1e-6 * max(1.0, float(np.max(np.abs(energy)))):
        raise RuntimeError(f"{target.name}: JAX log density + torch energy is not constant: {offset}")
    return out


def _typical_point(target: Posterior) -> np.ndarray:
    try:
        return target.truth().mean
    except NotImplementedError:
        return np.zeros(target.dim)


def run_blackjax(target: Posterior, init: torch.Tensor, warmup: int, draws: int, seed: int) -> dict:
    out = run_blackjax_raw(target, init, warmup, draws, seed)
    result = judge(out["draws"], target.truth())
    ess = result["min_ess_bulk"] or 0.0
    n_leapfrog = out["n_leapfrog"].astype(np.float64)
    used_sampling = float(n_leapfrog.sum(1).mean())
    used = used_sampling + float(out["warmup_n_leapfrog"].mean())
    lockstep = float(n_leapfrog.max(0).sum())
    seconds = float(out["run_seconds"])
    result.update(
        seconds=seconds,
        compile_seconds=float(out["compile_seconds"]),
        grads_used=used,
        ess_per_1k_grads_used=1000 * ess / used,
        ess_per_1k_grads_used_sampling=1000 * ess / used_sampling,
        lockstep_waste=lockstep / used_sampling,
        mean_n_leapfrog=float(n_leapfrog.mean()),
        ess_per_second=ess / seconds,
        divergences=int(out["diverging"].sum()),
        warmup_divergences=int(out["warmup_divergences"].sum()),
        step_size=float(np.mean(out["step_size"])),
    )
    stats = {"diverging": out["diverging"], "energy": out["hamiltonian"]}
    result.update(_diagnosis(out["draws"], sample_stats=stats))
    return result


def code_version() -> str:
    """The commit the samplers came from (`$PANEL_CODE` overrides; "-dirty" when the tree has changes)."""
    if os.environ.get("PANEL_CODE"):
        return os.environ["PANEL_CODE"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "-uno"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def run_one(target_name: str, sampler: str, *, seed: int, chains: int, warmup: int, draws: int) -> dict:
    target = PANEL[target_name]()
    init = target.initial_point(chains, seed=seed)
    try:
        if sampler == PEER:
            result = run_blackjax(target, init, warmup, draws, seed)
        else:
            result = run_ours(target, sampler, init, warmup, draws, seed)
    except Exception as error:  # a sampler that aborts fails the target; the table says why
        traceback.print_exc()
        result = {"passed": False, "failed_checks": ["error"], "error": f"{type(error).__name__}: {error}"[:500]}
    return {**result, "code": code_version()}


def _cell(result: dict | None, headline: str) -> str:
    if result is None:
        return "—"
    if "error" in result:
        kind = result["error"].split(":")[0]
        # FloatingPointError is the run loop's "a chain went non-finite" (on_nonfinite="raise")
        return "error: went non-finite" if kind == "FloatingPointError" else f"error: {kind}"
    verdict = "**pass**" if result["passed"] else "fail: " + ", ".join(result["failed_checks"])
    value = result.get(headline) or result.get("ess_per_1k_grads_batch")
    divergences = result.get("divergences")
    diverged = f", {divergences} div" if divergences else ""
    return f"{verdict} {value:.3g}{diverged}" if value is not None else verdict


def table(results: dict, samplers) -> str:
    """Markdown: one row per target, per sampler pass/fail, min ESS per 1,000 gradients and divergences."""
    lines = [
        "| target (d) | " + " | ".join(samplers) + " |",
        "|---|" + "---|" * len(samplers),
    ]
    names = [name for name in PANEL if name in results["runs"]]
    names += [name for name in results["runs"] if name not in PANEL]
    for name in names:
        runs = results["runs"][name]
        dim = PANEL[name]().dim if name in PANEL else "?"
        cells = []
        for sampler in samplers:
            headline = "ess_per_1k_grads_used" if sampler in ("nuts", PEER) else "ess_per_1k_grads_batch"
            cells.append(_cell(runs.get(sampler), headline))
        lines.append(f"| {name} ({dim}) | " + " | ".join(cells) + " |")
    passed = {
        sampler: sum(bool(runs.get(sampler, {}).get("passed")) for runs in results["runs"].values())
        for sampler in samplers
    }
    ran = {sampler: sum(sampler in runs for runs in results["runs"].values()) for sampler in samplers}
    lines.append("| **passed** | " + " | ".join(f"{passed[s]} / {ran[s]}" for s in samplers) + " |")
    versions = {
        sampler: sorted({runs[sampler].get("code", "unknown") for runs in results["runs"].values() if sampler in runs})
        for sampler in samplers
    }
    lines.append("")
    lines.append(
        "Samplers' code (commit): " + "; ".join(f"{s}: {', '.join(v)}" for s, v in versions.items() if v) + "."
    )
    return "\n".join(lines)


def peer_ratios(results: dict) -> str:
    """Markdown: min bulk ESS per 1,000 gradients relative to the peer's, per target and the median target
    (issue 15's targets: `nuts` counting what each chain used, >= 0.8x on every target and >= 1.0x on the median;
    `hmc` counting what the batch computed, >= 1.0x on the median)."""
    columns = [("nuts", "ess_per_1k_grads_used"), ("hmc", "ess_per_1k_grads_batch")]
    lines = [
        "| target | " + " | ".join(f"{s} / {PEER}" for s, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    ratios: dict[str, list[float]] = {s: [] for s, _ in columns}
    for name, runs in results["runs"].items():
        peer = (runs.get(PEER) or {}).get("ess_per_1k_grads_used")
        cells = []
        for sampler, key in columns:
            value = (runs.get(sampler) or {}).get(key)
            if value is None or not peer:
                cells.append("—")
                continue
            ratios[sampler].append(value / peer)
            cells.append(f"{value / peer:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    medians = [f"{statistics.median(r):.2f}" if r else "—" for r in ratios.values()]
    minima = [f"{min(r):.2f}" if r else "—" for r in ratios.values()]
    lines.append("| **median target** | " + " | ".join(medians) + " |")
    lines.append("| **lowest** | " + " | ".join(minima) + " |")
    return "\n".join(lines)


MD_HEADER = """# Posterior panel

Generated by `benchmarks/posteriors.py` ({command}). Each cell: pass/fail (the checks that failed: `z` mean
off by >= 5 MCSE, `sd_ratio` outside [0.8, 1.25], `ess` min bulk ESS < 100, `rhat` max R-hat >= 1.1), then
min bulk ESS per 1,000 gradient evaluations per chain, warm-up included (NUTS and BlackJAX: what each chain
used; the others: what the batch computed), then divergences among the kept draws. 8 chains, 1,000 warm-up +
1,500 draws, defaults only, float64. Samplers absent from the registry when the panel ran show `—`.

"""


RATIOS_HEADER = """

## Relative to the peer

Min bulk ESS per 1,000 gradient evaluations, warm-up included, divided by BlackJAX NUTS's on the same target
(`nuts`: gradients each chain used; `hmc`: gradients the batch computed; BlackJAX: what each chain used).
ESS estimates from 8 chains are noisy (roughly +-20 %).

"""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(PANEL), help="comma-separated panel names")
    parser.add_argument("--samplers", default=",".join((*OURS, PEER)), help="registered names and/or 'blackjax'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="100 warm-up + 150 draws (a smoke test)")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--merge",
        nargs="*",
        default=None,
        help="out-dirs of runs made in parallel: merge their runs in, run nothing (no dirs: rewrite the table)",
    )
    args = parser.parse_args(argv)
    if args.merge is not None:
        args.targets, args.samplers = "", ""
    targets = [name for name in args.targets.split(",") if name]
    samplers = [name for name in args.samplers.split(",") if name]
    unknown = [name for name in targets if name not in PANEL]
    if unknown:
        parser.error(f"unknown targets {unknown}; expected some of {list(PANEL)}")
    available = set(ebm_samplers.available_samplers())
    warmup, draws = (100, 150) if args.quick else (1000, 1500)
    torch.set_num_threads(1)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "posteriors.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"runs": {}, "skipped": {}}
    if results.get("quick") != args.quick:
        results = {"runs": {}, "skipped": {}}
    for folder in args.merge or []:
        part = json.loads((Path(folder) / "posteriors.json").read_text())
        if part.get("quick") != args.quick:
            parser.error(f"{folder}: quick={part.get('quick')} does not match --quick={args.quick}")
        for target_name, runs in part["runs"].items():
            results["runs"].setdefault(target_name, {}).update(runs)
    results.update(quick=args.quick, chains=args.chains, warmup=warmup, draws=draws, seed=args.seed)
    for target_name in targets:
        for sampler in samplers:
            if sampler != PEER and sampler not in available:
                results["skipped"][sampler] = "not registered in this checkout"
                print(f"{target_name}.{sampler}: skipped (not registered)")
                continue
            result = run_one(target_name, sampler, seed=args.seed, chains=args.chains, warmup=warmup, draws=draws)
            results["runs"].setdefault(target_name, {})[sampler] = result
            results["skipped"].pop(sampler, None)
            for key in ("passed", "failed_checks", "min_ess_bulk", "max_rhat", "max_z", "sd_ratio_min"):
                print(f"{target_name}.{sampler}.{key}: {result.get(key)}")
            for key in ("ess_per_1k_grads_batch", "ess_per_1k_grads_used", "divergences", "diagnose_problems"):
                if key in result:
                    print(f"{target_name}.{sampler}.{key}: {result[key]}")
            json_path.write_text(json.dumps(results, indent=1) + "\n")
    order = [*OURS, PEER, *sorted({s for runs in results["runs"].values() for s in runs} - {*OURS, PEER})]
    command = "python benchmarks/posteriors.py" + (" --quick" if args.quick else "") + f" --seed {args.seed}"
    ratios = RATIOS_HEADER + peer_ratios(results) if PEER in order else ""
    (out_dir / "posteriors.md").write_text(MD_HEADER.format(command=command) + table(results, order) + ratios + "\n")
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
