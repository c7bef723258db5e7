"""Every gallery script in `examples/` runs to completion and writes its figures (so the docs cannot rot).

Each script takes the folder for its figures as its one argument; it runs in a subprocess, as a user runs it, from
the repository root. The scripts are the documentation's executed examples: a failure here means a page is wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_gallery_has_the_documented_examples():
    assert len(EXAMPLES) >= 8, [path.name for path in EXAMPLES]


# the default run takes each script's smoke-test budget (EBM_SAMPLERS_SMOKE_TEST=1: the same code, fewer
# iterations); `-m slow` runs them as written, as they make the documentation's figures
SIZES = [pytest.param(True, id="smoke"), pytest.param(False, id="full", marks=pytest.mark.slow)]


@pytest.mark.parametrize("smoke", SIZES)
@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_and_writes_a_figure(script: Path, smoke: bool, tmp_path: Path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    environment["EBM_SAMPLERS_SMOKE_TEST"] = "1" if smoke else "0"
    finished = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, f"{script.name} failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    figures = list(tmp_path.rglob("*.png"))
    assert figures, f"{script.name} wrote no figure into {tmp_path}"
