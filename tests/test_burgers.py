"""The Burgers example: its spectral reference against the exact Cole–Hopf
solution, and a smoke run of the script."""

import json

import numpy as np
import pytest
from helpers import load_example


@pytest.fixture(scope="module")
def burgers():
    return load_example("burgers")


def test_cole_hopf_initial_condition_and_convergence(burgers):
    x = np.linspace(-1, 1, 41)
    assert np.allclose(burgers.cole_hopf(0.0, x), -np.sin(np.pi * x), atol=1e-14)
    t, x = np.meshgrid([0.1, 0.32, 0.5, 1.0], [-0.7, -0.01, 0.003, 0.02, 0.5])
    # The quadrature is converged: more nodes change nothing.
    coarse = burgers.cole_hopf(t, x, nodes=200)
    fine = burgers.cole_hopf(t, x, nodes=400)
    assert np.max(np.abs(coarse - fine)) < 1e-12
    # Odd in x.
    assert np.allclose(burgers.cole_hopf(t, -x), -coarse, atol=1e-12)


# 10 000 pseudo-spectral steps on 2048 modes: the example's reference solver.
@pytest.mark.slow
def test_spectral_reference_matches_cole_hopf(burgers):
    times = [0.25, 0.5, 0.75, 1.0]
    x, u = burgers.spectral_solution(times, modes=2048, dt=1e-4)
    # Points across the grid, and the ones nearest the front at x = 0, where
    # the solution is steepest (|u_x| ≈ 150 at t ≈ 0.5).
    columns = np.r_[np.arange(0, 2048, 97), 1020, 1023, 1024, 1025, 1028]
    exact = burgers.cole_hopf(np.asarray(times)[:, None], x[columns][None, :])
    assert np.max(np.abs(u[:, columns] - exact)) < 1e-6


def test_spectral_solution_rejects_times_off_the_step(burgers):
    with pytest.raises(ValueError, match="multiples of `dt"):
        burgers.spectral_solution([0.5, 0.25], modes=64, dt=1e-2)
    with pytest.raises(ValueError, match="multiples of `dt"):
        burgers.spectral_solution([0.123456], modes=64, dt=1e-2)


def test_burgers_example_quick(burgers, tmp_path):
    summary = burgers.main(["--quick", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["relative_l2_error"] == pytest.approx(summary["relative_l2_error"])
    assert np.isfinite(written["relative_l2_error"])
    assert written["scheme"] == "taylor" and written["quick"]
    assert (tmp_path / "burgers.png").stat().st_size > 0
    with np.load(tmp_path / "reference.npz") as ref:
        assert ref["u"].shape == (len(ref["t"]), len(ref["x"]))
        # u(t, ±1) = 0 and u(0, x) = −sin(πx) on the cached grid.
        assert np.allclose(ref["u"][:, [0, -1]], 0.0, atol=1e-12)
        assert np.allclose(ref["u"][0], -np.sin(np.pi * ref["x"]), atol=1e-12)
