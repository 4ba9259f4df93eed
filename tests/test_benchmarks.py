"""The benchmarks' `--quick` modes run, and their side-by-side comparisons
are sound (the two implementations compute the same numbers)."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _run(name: str, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_ude_overhead_quick(tmp_path):
    import json

    stdout = _run("ude_overhead.py", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    # symml's loss and the hand-written one agree before they are timed.
    assert summary["loss_agreement"] < 1e-12
    assert summary["grad_agreement"] < 1e-10
    assert summary["ratio_symml_vs_hand"] > 0
    assert "symml" in stdout and "ratio" in stdout


def test_derivatives_quick(tmp_path):
    stdout = _run("derivatives.py", "--sweep", "--seed", "3", "--out", str(tmp_path))
    assert "taylor" in stdout and "order 4 ÷ order 1 against" in stdout
    # Taylor mode is exact to rounding: every relative error it reports is tiny.
    errors = [
        float(line.split()[-2])
        for line in stdout.splitlines()
        if line.startswith("float32") and line.split()[2] == "taylor"
    ]
    assert errors and max(errors) < 1e-4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 3
    for ratios in summary["targets"].values():
        assert set(ratios) == {
            "taylor_k2_vs_fd_k2",
            "taylor_k4_vs_k1",
            "laplacian_taylor_vs_hessian_trace",
        }
        assert all(r > 0 for r in ratios.values())
    assert max(r["err"] for r in summary["orders"] if r["scheme"] == "taylor") < 1e-4


def test_sparsity_quick(tmp_path):
    stdout = _run("sparsity.py", "--seed", "1", "--out", str(tmp_path))
    assert "colors" in stdout.lower() and "side by side" in stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in [
        "jacobian_detection_ms_N32",
        "hessian_detection_s_rosenbrock_16384",
        "coloring_ms_N32",
        "coloring_ms_N64",
        "model_ms_chain_N25",
        "model_ms_chain_N50",
        "model_ms_per_equation_random5",
    ]:
        assert summary[key] > 0
    assert "building a Model" in stdout
    assert summary["colors_N32"] <= 12
    if summary["asdex"] is not None:
        # The reference rows ran (their patterns were checked equal to ours).
        assert summary["ratio_coloring_ms_N32"] > 0
        assert summary["star_colors_N16"] <= summary["asdex_star_colors_N16"] + 2


def test_pinn_step_quick(tmp_path):
    stdout = _run("pinn_step.py", "--seed", "1", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["step_ms_symml"] > 0 and summary["step_ms_symml_allocator"] > 0
    assert summary["allocator_speedup"] > 0
    assert "ms/step" in stdout
    if summary["reference"] is None:  # jinns is not installed
        assert summary["step_ms_reference"] is None
        return
    # Both start from the same weights on the same points, so the losses they
    # time are the same function: their first values agree to float32 rounding.
    assert summary["loss_agreement"] < 1e-4
    assert summary["ratio_default_vs_reference"] > 0
    assert summary["ratio_allocator_vs_reference"] > 0


def test_lotka_volterra_data_quick(tmp_path):
    """The shared Lotka–Volterra set-up of the benchmarks records a seed's
    data: the example's initial state for the same seed, a truth that a
    second solver (Radau) reproduces, and noise of about the requested size."""
    import numpy as np
    from helpers import load_example

    stdout = _run("_lotka_volterra.py", "--seed", "3", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    u0, ts, noisy = load_example("lotka_volterra").make_data(3)
    np.testing.assert_allclose(summary["initial_state"], u0, rtol=1e-15)
    np.testing.assert_allclose(summary["t"], ts)
    # The example's data come from diffrax, the benchmarks' from scipy.
    np.testing.assert_allclose(summary["noisy"], noisy, rtol=1e-6)
    assert summary["reference_disagreement"] < 1e-8
    # 21 samples per state: the realised spread is within a factor 2 of 0.5 %.
    assert all(0.0025 < r < 0.01 for r in summary["realised_noise"])
    assert "Radau" in stdout
