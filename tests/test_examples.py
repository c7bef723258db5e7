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


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_and_writes_a_figure(script: Path, tmp_path: Path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
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
