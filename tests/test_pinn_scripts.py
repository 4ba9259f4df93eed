"""The `--quick` modes of the physics-informed inverse-problem scripts: the
hidden-physics example, the Lorenz identification benchmark and the
Allen–Cahn benchmark."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_example

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _benchmark(name: str, out: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_hidden_physics_quick_discovers_the_reaction(tmp_path):
    summary = load_example("pinn_hidden_physics").main(
        ["--quick", "--seed", "0", "--out", str(tmp_path)]
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert set(summary) >= {"D", "expression", "wall_seconds"}
    # Exactly u and u³ from the quick fit; the coefficients' accuracy is the
    # full run's, and so is the refit's (200 steps here).
    assert summary["exact_terms"], summary["discovered_expression"]
    assert summary["D_network_fit_relative_error"] < 0.2
    assert summary["truth_resolution_error"] < 1e-8


@pytest.mark.slow
def test_lorenz_inverse_quick(tmp_path):
    summary = _benchmark("lorenz_inverse.py", tmp_path, "--seed", "1")
    for method in ("pinn", "solve_in_loop"):
        assert set(summary[method]["relative_errors"]) == {"sigma", "rho", "beta"}
        assert summary[method]["wall_seconds"] > 0
    assert summary["time_ratio_pinn_vs_solve_in_loop"] > 0


@pytest.mark.slow
def test_allen_cahn_quick(tmp_path):
    summary = _benchmark("allen_cahn.py", tmp_path, "--budget", "60")
    assert set(summary["variants"]) == {"vanilla", "causal", "causal_fourier_rad"}
    assert summary["reference_error"] < 1e-3
    for result in summary["variants"].values():
        assert 0 < result["relative_l2_error"] < 10
        assert result["trace"]
