"""The benchmarks' `--quick` modes run, and their side-by-side comparisons
are sound (the two implementations compute the same numbers)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _run(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_ude_overhead_quick():
    stdout = _run("ude_overhead.py")
    # symml's loss and the hand-written one agree before they are timed.
    agreement = float(stdout.split("loss agreement |symml - hand| / hand = ")[1][:7])
    assert agreement < 1e-12
    assert "symml" in stdout and "ratio" in stdout


@pytest.mark.parametrize("name", ["derivatives.py", "sparsity.py"])
def test_benchmark_quick(name):
    stdout = _run(name)
    assert "taylor" in stdout or "colors" in stdout.lower()
