"""Peak memory of long many-chain runs: 10,000 chains x 100,000 steps of the 2-D default mixture, thinned.

    PYTHONPATH=. python benchmarks/memory.py [--steps 100000] [--thin 100] [--chains 10000] [--paths torch,numba]

Each configuration runs in a fresh process and reports `name: value` lines (and JSON): peak resident memory
(`resource.getrusage` ru_maxrss), the memory after imports and set-up, the bytes the kept draws take, and the
run time. With thinning the storage is (chains x steps/thin x 2) values whatever the number of steps, so a run
with fewer steps and the same steps/thin keeps exactly the same storage; `--steps` and `--thin` scale the run
time without changing that. Where `sample` offers `keep="moments"` (running moments instead of draws), that
option is measured too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from _report import write_json

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
import torch
import ebm_samplers
from energies import GaussianMixture
from energies.numba_targets import default_mixture
chains, steps, thin, path, keep = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.set_num_threads(1)
energy = default_mixture() if path == "numba" else GaussianMixture()
options = {} if keep == "draws" else {"keep": keep}
ebm_samplers.sample(energy, "mala", n_chains=8, n_steps=2 * thin, warmup=0, thin=thin, seed=0, step_size=0.3,
                    progress=False, backend=path, **options)  # imports, numba loops and allocator warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
result = ebm_samplers.sample(energy, "mala", n_chains=chains, n_steps=steps, warmup=0, thin=thin, seed=0, step_size=0.3,
                             progress=False, backend=path, **options)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kept = getattr(result, "draws", None)
print(json.dumps({"peak_rss_mb": peak / 2**20, "setup_rss_mb": before / 2**20, "seconds": seconds,
                  "draws_mb": 0.0 if kept is None else kept.numel() * kept.element_size() / 2**20}))
"""


def _supports_moments() -> bool:
    sys.path.insert(0, str(ROOT))
    import ebm_samplers

    return "keep" in inspect.signature(ebm_samplers.sample).parameters


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--thin", type=int, default=100)
    parser.add_argument("--paths", default="torch,numba")
    parser.add_argument("--keeps", default="draws,moments", help="what to keep: draws, moments or both")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory.json"))
    args = parser.parse_args(argv)
    keeps = args.keeps.split(",")
    if "moments" in keeps and not _supports_moments():
        keeps.remove("moments")
        print("moments: not measured (this version of sample() has no keep='moments')")
    results: dict = {"chains": args.chains, "steps": args.steps, "thin": args.thin}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for path in args.paths.split(","):
        for keep in keeps:
            command = [sys.executable, "-c", _CHILD, str(args.chains), str(args.steps), str(args.thin), path, keep]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{path}.{keep}.error: {done.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            for key, value in row.items():
                results[f"{path}.{keep}.{key}"] = value
                print(f"{path}.{keep}.{key}: {value:.1f}")
            sys.stdout.flush()
    out = write_json(args.out, results, indent=1, sort_keys=True)
    print(f"json: {out}")
    return results


if __name__ == "__main__":
    main()
