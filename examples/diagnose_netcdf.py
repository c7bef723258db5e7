"""Diagnose a foreign ArviZ netCDF file from the command line.

`ebm-samplers diagnose FILE.nc` reads any netCDF file with a `posterior` group (written by ArviZ, PyMC, NumPyro,
cmdstanpy via ArviZ, or by this package), prints the convergence table and what is wrong in words, and writes
trace and rank plots. Here we make such a file with ArviZ alone: 4 chains of a 3-parameter posterior, one chain
of which is stuck elsewhere, as a sampler that got lost would leave it. The command exits with status 1 when it
finds a problem.

    python examples/diagnose_netcdf.py [OUT_DIR]
"""

import shutil
import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
draws = rng.normal(size=(4, 1000, 3)).cumsum(1) * 0.05 + rng.normal(size=(4, 1000, 3))  # slowly wandering chains
draws[3] += 4.0  # chain 3 sits in another region
tree = az.from_dict({"posterior": {"theta": draws}}, dims={"theta": ["parameter"]})
path = out / "foreign_posterior.nc"
tree.to_netcdf(path)

command = [sys.executable, "-m", "ebm_samplers", "diagnose", str(path), "--out", str(out / "foreign_diagnostics")]
print("$", " ".join(command[2:]))
finished = subprocess.run(command, capture_output=True, text=True)
print(finished.stdout, finished.stderr)
print(f"exit status {finished.returncode} (1: problems found)")
for picture in sorted((out / "foreign_diagnostics").glob("*.png")):
    shutil.copy(picture, out / f"foreign_{picture.name}")
path.unlink()
