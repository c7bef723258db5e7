"""Training quality benchmark: every method x toy data set, exact test NLL by grid quadrature.

    PYTHONPATH=. python benchmarks/training.py                          # the full table (long: ~1-2 h on 2 cores)
    PYTHONPATH=. python benchmarks/training.py --datasets 8gaussians rings --methods nce pcd

Each run: 20,000 training and 5,000 held-out samples (data seed 1), `fit(train, method=m)` with the
method's defaults (seed 0; exact_sm gets the data set's exact energy as target and is skipped where the
density is not smooth or unknown), then the test NLL by midpoint quadrature on [-4.5, 4.5]^2 with 400^2
cells (the discretisation check with 800^2 cells is recorded), and MMD^2 between 1,000 exact draws of
the grid-discretised model and 1,000 held-out points, and the KSD of 1,000 held-out points under the learned
score (goodness of fit without a normaliser; `training.data_ksd`, wild-bootstrap p-value from 200 draws).
Runs are single-threaded (torch.set_num_threads(1)) so that timings on a shared machine mean something; `cost`
is the run's wall time divided by the time of one energy+gradient evaluation of the default MLP on a batch of
256 measured in the same process.
Results go to benchmarks/results/training.json (updated after every run; --skip-done resumes) and a
markdown table to benchmarks/results/training.md (test NLL, then held-out KSD where recorded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import mean_seconds, write_json

from ebm_samplers._atomic import atomic_write
from ebm_samplers.training import available_methods, data_ksd, fit, grid_nll, mmd, toy_dataset
from ebm_samplers.training.datasets import available_datasets
from ebm_samplers.training.evaluation import grid_samples
from energies import MLPEnergy, energy_and_grad

SMOOTH = ("8gaussians", "rings", "circles")  # exact_sm needs a smooth known log-density
TARGETS = ("8gaussians", "checkerboard", "rings", "circles")  # the 0.15-nat targets


def baseline_seconds() -> float:
    energy = MLPEnergy(2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    return mean_seconds(lambda: energy_and_grad(energy, x), warmup=20, calls=200)


def run_one(dataset_name: str, method: str, iterations: int | None) -> dict:
    dataset = toy_dataset(dataset_name)
    generator = torch.Generator().manual_seed(1)
    train, test = dataset.sample(20_000, generator), dataset.sample(5_000, generator)
    options = {"target": dataset.energy()} if method == "exact_sm" else {}
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(train, method=method, n_iterations=iterations, seed=0, progress=False, **options)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    nll = grid_nll(result.energy, test)
    samples = grid_samples(result.energy, 1000, torch.Generator().manual_seed(2))
    ksd = data_ksd(result.energy, test[:1000], n_bootstrap=200, generator=torch.Generator().manual_seed(3))
    return {
        "dataset": dataset_name,
        "method": method,
        "iterations": result.n_iterations,
        "test_nll": nll.nll,
        "discretisation_error": nll.discretisation_error,
        "data_entropy": float(dataset.energy()(test).double().mean()) if dataset.has_density else None,
        "mmd2": mmd(samples, test[:1000]),
        "ksd_test": ksd.ksd,
        "ksd_test_p_value": ksd.p_value,
        "train_cpu_s": cpu,
        "train_wall_s": wall,
    }


def table(results: list[dict], methods: list[str], datasets: list[str]) -> str:
    cell = {(r["dataset"], r["method"]): r for r in results}
    lines = [
        "| data set | entropy | " + " | ".join(methods) + " | best - entropy |",
        "|---" * (len(methods) + 3) + "|",
    ]
    for name in datasets:
        row = [r for r in results if r["dataset"] == name]
        if not row:
            continue
        entropy = row[0]["data_entropy"]
        cells = []
        for method in methods:
            r = cell.get((name, method))
            cells.append("—" if r is None else f"{r['test_nll']:.3f}")
        best = min(r["test_nll"] for r in row)
        gap = "" if entropy is None else f"{best - entropy:+.3f}"
        lines.append(f"| {name} | {'' if entropy is None else f'{entropy:.3f}'} | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines)


def ksd_table(results: list[dict], methods: list[str], datasets: list[str]) -> str:
    """KSD of 1,000 held-out points under each learned score, with its bootstrap p-value in brackets."""
    cell = {(r["dataset"], r["method"]): r for r in results if "ksd_test" in r}
    lines = ["| data set | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for name in datasets:
        cells = []
        for method in methods:
            r = cell.get((name, method))
            cells.append("—" if r is None else f"{r['ksd_test']:.3f} ({r['ksd_test_p_value']:.2g})")
        if any(c != "—" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[d for d in available_datasets() if d != "digits"])
    parser.add_argument("--methods", nargs="+", default=available_methods())
    parser.add_argument("--iterations", type=int, default=None, help="override every method's default")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--skip-done", action="store_true", help="keep results already in the JSON file")
    parser.add_argument("--combine", nargs="+", default=None, help="only merge these result JSONs into --out")
    args = parser.parse_args()
    if args.combine:
        return combine([Path(p) for p in args.combine], Path(args.out))
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "training.json"
    results = json.loads(json_path.read_text())["runs"] if args.skip_done and json_path.exists() else []
    done = {(r["dataset"], r["method"]) for r in results}
    base = baseline_seconds()
    print(f"baseline: one energy+gradient of the default MLP on 256 points = {1e3 * base:.2f} ms")
    for dataset_name in args.datasets:
        for method in args.methods:
            if (dataset_name, method) in done or (method == "exact_sm" and dataset_name not in SMOOTH):
                continue
            record = run_one(dataset_name, method, args.iterations)
            record["cost_in_baseline_evaluations"] = record["train_wall_s"] / base
            results.append(record)
            gap = "" if record["data_entropy"] is None else f" (entropy {record['data_entropy']:.3f})"
            print(
                f"{dataset_name:13s} {method:15s} NLL {record['test_nll']:.3f}{gap} MMD^2 {record['mmd2']:.4f} "
                f"KSD {record['ksd_test']:.3f} (p {record['ksd_test_p_value']:.2g}) "
                f"cpu {record['train_cpu_s']:.0f}s quadrature error {record['discretisation_error']:.1e}",
                flush=True,
            )
            payload = {"baseline_seconds": base, "runs": results}
            write_json(json_path, payload, indent=1)
    summarise(results, out)


def combine(paths: list[Path], out: Path) -> None:
    """Merge JSONs from separate (e.g. parallel) benchmark processes into one table."""
    out.mkdir(parents=True, exist_ok=True)
    loaded = [json.loads(path.read_text()) for path in paths]
    results = [run for payload in loaded for run in payload["runs"]]
    payload = {"baseline_seconds": [payload["baseline_seconds"] for payload in loaded], "runs": results}
    write_json(out / "training.json", payload, indent=1)
    summarise(results, out)


def summarise(results: list[dict], out: Path) -> None:
    methods = [m for m in available_methods() if any(r["method"] == m for r in results)]
    datasets = [d for d in available_datasets() if any(r["dataset"] == d for r in results)]
    markdown = table(results, methods, datasets)
    if any("ksd_test" in r for r in results):
        markdown += "\n\nKSD of held-out data under the learned score (lower is better; 0 for the true density):\n\n"
        markdown += ksd_table(results, methods, datasets)
    atomic_write(out / "training.md", lambda temporary: temporary.write_text(markdown + "\n"))
    print(markdown)
    for name in TARGETS:
        row = [r for r in results if r["dataset"] == name]
        if row:
            best = min(row, key=lambda r: r["test_nll"])
            verdict = "meets" if best["test_nll"] - best["data_entropy"] <= 0.15 else "MISSES"
            print(
                f"{name}: best {best['method']} {best['test_nll']:.3f} vs entropy {best['data_entropy']:.3f}: {verdict}"
            )


if __name__ == "__main__":
    main()
