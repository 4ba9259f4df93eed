"""Fits without a solve: collocation (smoothed data and estimated
derivatives), multistep residuals, and collocation followed by the solve in
the loop."""

import math
import warnings

import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml.training import multistep_coefficients
from symml.training._collocation import local_polynomial

t = sp.Symbol("t")


def _poly_model():
    x, y = sm.states("x y", t)
    a, b, c = sp.symbols("a b c")
    model = sm.Model(
        [sp.Eq(x.diff(t), a * t + b), sp.Eq(y.diff(t), c * y)],
        parameters={a: sm.trainable(1.0), b: sm.trainable(1.0), c: sm.trainable(0.5)},
    )
    return model, x, y, (a, b, c)


@pytest.mark.parametrize("kernel", ["epanechnikov", "triangular", "gaussian"])
@pytest.mark.parametrize("degree", [2, 3])
def test_local_polynomial_is_exact_on_polynomials(kernel, degree):
    ts = np.sort(np.random.default_rng(0).uniform(0, 2, 25))
    values = 1 - 2 * ts + 0.5 * ts**2 + (0.3 * ts**3 if degree == 3 else 0)
    slopes = -2 + ts + (0.9 * ts**2 if degree == 3 else 0)
    (x,) = sm.states("x", t)
    (est,) = sm.Collocation(kernel=kernel, degree=degree).estimate(
        sm.Data(ts, {x: values})
    )
    np.testing.assert_allclose(est.values["x"], values, atol=1e-10)
    np.testing.assert_allclose(est.derivatives["x"], slopes, atol=1e-9)
    assert est.smoothing["x"] > 0


def test_spline_is_exact_on_lines():
    ts = np.linspace(0, 3, 12)
    (x,) = sm.states("x", t)
    (est,) = sm.Collocation(smoother="spline").estimate(sm.Data(ts, {x: 2 + 0.5 * ts}))
    np.testing.assert_allclose(est.derivatives["x"], 0.5, atol=1e-8)


def test_local_polynomial_between_observations():
    """Evaluated between the observations (where integral matching needs
    the smoothed states), a local quadratic is exact on a quadratic."""
    ts = np.sort(np.random.default_rng(2).uniform(0, 2, 20))
    at = np.linspace(ts[0], ts[-1], 57)
    smooth, slope = local_polynomial(ts, 0.6, "epanechnikov", 2, at)
    quadratic = 1 - 2 * ts + 0.5 * ts**2
    np.testing.assert_allclose(smooth @ quadratic, 1 - 2 * at + 0.5 * at**2)
    np.testing.assert_allclose(slope @ quadratic, -2 + at, atol=1e-9)


@pytest.mark.parametrize(
    "match", ["integral", pytest.param("derivative", marks=pytest.mark.slow)]
)
@pytest.mark.slow
def test_collocation_recovers_right_hand_side_from_polynomial_data(match):
    """x = 1 + 3t + 2t² gives x' = 4t + 3; y = 2 e^{-t} is not a polynomial,
    but on a fine grid its estimated derivative is close: c = -1."""
    model, x, y, (a, b, c) = _poly_model()
    ts = np.linspace(0, 1, 41)
    data = sm.Data(ts, {x: 1 + 3 * ts + 2 * ts**2, y: 2 * np.exp(-ts)})
    result = sm.fit(
        model, data, method=sm.Collocation(match=match), steps=0, lbfgs_steps=200
    )
    values = result.parameter_values()
    assert values[a] == pytest.approx(4.0, abs=1e-8)
    assert values[b] == pytest.approx(3.0, abs=1e-8)
    assert values[c] == pytest.approx(-1.0, abs=1e-3)
    assert isinstance(result, sm.training.CollocationResult)
    (est,) = result.estimates
    np.testing.assert_allclose(est.derivatives["x"], 4 * ts + 3, atol=1e-9)
    # The fitted model can be simulated, and counts its evaluations.
    solution = result.predict(ts)
    np.testing.assert_allclose(solution["x"], 1 + 3 * ts + 2 * ts**2, rtol=1e-6)
    assert solution.nfe > 0


@pytest.mark.slow
def test_integral_matching_beats_derivatives_on_sparse_data():
    """x'' = -ω² x (x' = y, y' = -w x) with ω² = 4, observed 14 times per
    period with 0.5 % noise: the kernel's derivative estimates are biased by
    several per cent (a local quadratic across a sharp turn), the smoothed
    values between observations much less, so integral matching recovers w
    closer to the closed-form truth."""
    x, y = sm.states("x y", t)
    w = sp.Symbol("w")
    model = sm.Model(
        [sp.Eq(x.diff(t), y), sp.Eq(y.diff(t), -w * x)],
        parameters={w: sm.trainable(1.0)},
    )
    ts = np.linspace(0, 2 * np.pi, 28)  # 14 points per period (π)
    rng = np.random.default_rng(0)
    noise = 0.005 * rng.standard_normal((2, ts.size))
    data = sm.Data(
        ts, {x: np.cos(2 * ts) + noise[0], y: -2 * np.sin(2 * ts) + 2 * noise[1]}
    )
    errors = {}
    for match in ("integral", "derivative"):
        method = sm.Collocation(match=match)
        fitted = sm.fit(model, data, method=method, steps=0, lbfgs_steps=100)
        errors[match] = abs(fitted.parameter_values()[w] - 4.0) / 4.0
    assert errors["integral"] < 0.01
    assert errors["integral"] < errors["derivative"] / 3


@pytest.mark.slow
def test_collocation_trains_a_network():
    (x,) = sm.states("x", t)
    U = sm.Unknown("U", inputs=[x], outputs=1, hidden=[8], input_range=((0,), (3,)))
    model = sm.Model([sp.Eq(x.diff(t), U[0])])
    ts = np.linspace(0, 2, 21)
    result = sm.fit(
        model,
        sm.Data(ts, {x: 1 + ts}),
        method=sm.Collocation(bandwidth=0.5),
        steps=300,
        learning_rate=1e-2,
        lbfgs_steps=100,
    )
    X, Y = result.unknown_samples(20)["U"]
    np.testing.assert_allclose(Y[:, 0], 1.0, atol=1e-3)


def test_kernel_bandwidth_grows_with_noise():
    ts = np.linspace(0, 2 * np.pi, 80)
    (x,) = sm.states("x", t)
    rng = np.random.default_rng(1)
    widths, errors = [], []
    for noise in [1e-3, 1e-1]:
        data = sm.Data(ts, {x: np.sin(ts) + noise * rng.standard_normal(ts.size)})
        (est,) = sm.Collocation().estimate(data)
        widths.append(est.smoothing["x"])
        errors.append(np.sqrt(np.mean((est.derivatives["x"] - np.cos(ts)) ** 2)))
    assert widths[1] > 2 * widths[0]
    assert errors[0] < 2e-2
    # Far better than differencing the noisy data (error ~ noise / dt ≈ 1.3).
    assert errors[1] < 0.2


def test_collocation_needs_every_state_observed():
    model, x, y, _ = _poly_model()
    ts = np.linspace(0, 1, 11)
    with pytest.raises(sm.FitError, match="needs every state observed.*`y`"):
        sm.fit(model, sm.Data(ts, {x: ts}), method="collocation")
    with pytest.raises(sm.FitError, match="needs every state observed"):
        sm.fit(model, sm.Data(ts, {x: ts}), method="multistep")


def test_bad_options_are_fit_errors():
    with pytest.raises(sm.FitError, match="`smoother='bogus'`"):
        sm.Collocation(smoother="bogus")
    with pytest.raises(sm.FitError, match="`bandwidth`"):
        sm.Collocation(bandwidth=-1.0)
    with pytest.raises(sm.FitError, match="`formula='rk4'`"):
        sm.Multistep(formula="rk4")
    with pytest.raises(sm.FitError, match="too high"):
        sm.Multistep(order=9)
    with pytest.raises(sm.FitError, match="`collocation` of `CollocationThenSolve`"):
        sm.CollocationThenSolve(collocation=sm.SolveInLoop())
    with pytest.raises(sm.FitError, match="`match='slopes'`"):
        sm.Collocation(match="slopes")
    with pytest.raises(sm.FitError, match="`nodes`"):
        sm.Collocation(nodes=0)
    with pytest.raises(sm.FitError, match="`tolerance` of `CollocationThenSolve`"):
        sm.CollocationThenSolve(tolerance=-1e-6)


def test_too_narrow_bandwidth():
    (x,) = sm.states("x", t)
    data = sm.Data(np.linspace(0, 1, 11), {x: np.linspace(0, 1, 11)})
    with pytest.raises(sm.FitError, match="too narrow"):
        sm.Collocation(bandwidth=0.01).estimate(data)


# -- multistep ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, order, alpha, beta",
    [
        ("adams-bashforth", 2, [0, -1, 1], [-1 / 2, 3 / 2, 0]),
        ("adams-moulton", 3, [0, -1, 1], [-1 / 12, 8 / 12, 5 / 12]),
        ("adams-moulton", 1, [-1, 1], [0, 1]),
        ("bdf", 2, [1 / 2, -2, 3 / 2], [0, 0, 1]),
        ("bdf", 3, [-1 / 3, 3 / 2, -3, 11 / 6], [0, 0, 0, 1]),
    ],
)
def test_multistep_coefficients(formula, order, alpha, beta):
    a, b = multistep_coefficients(formula, order)
    np.testing.assert_allclose(a, alpha, atol=1e-14)
    np.testing.assert_allclose(b, beta, atol=1e-14)


def _decay(rate=1.3):
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: rate})
    return model, x


@pytest.mark.parametrize("formula", ["bdf", "adams-moulton", "adams-bashforth"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_multistep_residuals_converge_at_the_formulas_order(formula, order):
    """On the exact solution of x' = -1.3 x the residual is O(h^order)."""
    model, x = _decay()
    system, params = sm.lower(model)
    method = sm.Multistep(formula=formula, order=order)
    sizes = []
    for h in [0.04, 0.02]:
        ts = np.arange(0, 1 + h / 2, h)
        data = sm.Data(ts, {x: np.exp(-1.3 * ts)})
        sizes.append(float(np.max(np.abs(method.residuals(system, data, params)))))
    observed = math.log2(sizes[0] / sizes[1])
    assert observed == pytest.approx(order, abs=0.25)


def test_multistep_fit_recovers_a_rate():
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(0.5)})
    ts = np.linspace(0, 2, 41)
    data = sm.Data(ts, {x: 3 * np.exp(-1.3 * ts)})
    result = sm.fit(model, data, method=sm.Multistep(order=4), steps=0, lbfgs_steps=100)
    assert result.parameter_values()[k] == pytest.approx(1.3, rel=1e-5)


def test_multistep_needs_equal_steps():
    model, x = _decay()
    ts = np.array([0.0, 0.1, 0.3, 0.4, 0.5, 0.6])
    with pytest.raises(sm.DataError, match="equally spaced"):
        sm.fit(model, sm.Data(ts, {x: np.exp(-ts)}), method="multistep")


# -- a discretised PDE -------------------------------------------------------------


@pytest.mark.slow
def test_collocation_on_a_discretised_pde():
    """ρ_t = r ρ(1 − ρ) + D ρ_xx on 16 points, clean data from the same
    discretisation: r and D are recovered to the derivative estimates' error."""
    x = sp.Symbol("x")
    (rho,) = sm.states("rho", t, x)
    r, D = sp.symbols("r D")
    truth = sm.Model(
        [sp.Eq(rho.diff(t), r * rho * (1 - rho) + D * rho.diff(x, 2))],
        parameters={r: 1.0, D: 0.01},
        domain={x: (0, 1)},
        boundary="periodic",
    )
    fine = sm.discretize(truth, {x: 16})
    ts = np.linspace(0, 1, 41)
    start = fine.initial_state({rho: 0.2 + 0.6 * sp.exp(-(((x - 0.5) / 0.15) ** 2))})
    clean = np.asarray(sm.solve(fine, start, saveat=ts, rtol=1e-10, atol=1e-12)["rho"])
    model = sm.Model(
        [sp.Eq(rho.diff(t), r * rho * (1 - rho) + D * rho.diff(x, 2))],
        parameters={r: sm.trainable(0.5), D: sm.trainable(0.05)},
        domain={x: (0, 1)},
        boundary="periodic",
    )
    result = sm.fit(
        sm.discretize(model, {x: 16}),
        sm.Data(ts, {rho: clean}),
        method="collocation",
        steps=0,
        lbfgs_steps=100,
    )
    values = result.parameter_values()
    assert values[r] == pytest.approx(1.0, rel=1e-3)
    assert values[D] == pytest.approx(0.01, rel=1e-2)


def test_tensor_loo_error_matches_refitting_without_each_point():
    """The closed-form leave-one-out error of the tensor-product smoother
    (time by a periodic space axis) against refitting, for every point, the
    local quadratic-by-quadratic with product kernel weights without it."""
    from symml.training._collocation import _tensor_loo_error

    rng = np.random.default_rng(0)
    ts = np.sort(rng.uniform(0, 1, 9))
    xs = np.arange(8) / 8
    y = rng.standard_normal((9, 8))
    ht, hx = 0.45, 0.3
    st, _ = local_polynomial(ts, ht, "epanechnikov", 2)
    sx, _ = local_polynomial(xs, hx, "epanechnikov", 2, period=1.0)
    kernel = lambda u: np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)  # noqa: E731
    residuals = []
    for i in range(ts.size):
        for j in range(xs.size):
            dt = ts - ts[i]
            dx = (xs - xs[j] + 0.5) % 1.0 - 0.5
            w = np.outer(kernel(dt / ht), kernel(dx / hx))
            basis = np.einsum(
                "ta,xb->txab",
                np.vander(dt, 3, increasing=True),
                np.vander(dx, 3, increasing=True),
            ).reshape(ts.size * xs.size, 9)
            keep = np.ones((ts.size, xs.size), bool)
            keep[i, j] = False
            keep = keep.ravel()
            sw = np.sqrt(w.ravel()[keep])
            coef, *_ = np.linalg.lstsq(
                basis[keep] * sw[:, None], y.ravel()[keep] * sw, rcond=None
            )
            residuals.append(y[i, j] - coef[0])
    assert _tensor_loo_error(y, [st, sx]) == pytest.approx(
        np.mean(np.square(residuals)), rel=1e-8
    )


def test_space_smoothing_options_are_checked():
    with pytest.raises(sm.FitError, match="smooth_space"):
        sm.Collocation(smooth_space="yes")
    with pytest.raises(sm.FitError, match="space_bandwidth"):
        sm.Collocation(space_bandwidth=-0.1)


@pytest.mark.slow
def test_collocation_recovers_diffusion_from_noisy_fields():
    """The heat equation u_t = D u_xx (D = 0.01, periodic) from its exact
    solution (two Fourier modes decaying as exp(−D k² t)) with 1 % noise, on
    64 points: smoothed in time alone, the finite differences of the noise
    swamp u_xx and D comes out an order of magnitude too small; smoothed in
    space too, D is recovered to the smoothing's bias."""
    x = sp.Symbol("x")
    (u,) = sm.states("u", t, x)
    D = sp.Symbol("D")
    model = sm.Model(
        [sp.Eq(u.diff(t), D * u.diff(x, 2))],
        parameters={D: sm.trainable(0.05)},
        domain={x: (0, 1)},
        boundary="periodic",
    )
    ode = sm.discretize(model, {x: 64})
    xs, ts = np.arange(64) / 64, np.linspace(0, 2, 41)
    k1, k2 = 2 * np.pi, 6 * np.pi
    exact = (
        0.5
        + 0.3 * np.exp(-0.01 * k1**2 * ts)[:, None] * np.sin(k1 * xs)
        + 0.1 * np.exp(-0.01 * k2**2 * ts)[:, None] * np.cos(k2 * xs)
    )
    rng = np.random.default_rng(0)
    data = sm.Data(ts, {u: exact + 0.008 * rng.standard_normal(exact.shape)})
    found = {}
    for smooth_space in (True, False):
        result = sm.fit(
            ode,
            data,
            method=sm.Collocation(smooth_space=smooth_space),
            steps=0,
            lbfgs_steps=50,
        )
        found[smooth_space] = result.parameter_values()[D]
        (estimates,) = result.estimates
        assert bool(estimates.space_smoothing) is smooth_space
    assert found[True] == pytest.approx(0.01, rel=0.15)
    assert found[False] < 0.002


# -- collocation, then the solve in the loop ---------------------------------------


@pytest.mark.slow
def test_collocation_then_solve():
    model, x, y, (a, b, c) = _poly_model()
    ts = np.linspace(0, 1, 21)
    rng = np.random.default_rng(0)
    clean = {x: 1 + 3 * ts + 2 * ts**2, y: 2 * np.exp(-ts)}
    data = sm.Data(
        ts, {k: v + 1e-3 * rng.standard_normal(ts.size) for k, v in clean.items()}
    )
    method = sm.CollocationThenSolve(collocation_steps=0, collocation_lbfgs_steps=50)
    result = sm.fit(model, data, method=method, steps=0, lbfgs_steps=50)
    assert list(result.history) == ["collocation:lbfgs", "lbfgs"]
    assert result.method is method
    values = result.parameter_values()
    assert values[a] == pytest.approx(4.0, rel=0.05)
    assert values[c] == pytest.approx(-1.0, rel=0.02)
    # By name, with the defaults of both stages: one Adam phase each.
    named = sm.fit(model, data, method="collocation+solve")
    assert isinstance(named.method, sm.CollocationThenSolve)
    assert list(named.history) == ["collocation:adam", "adam"]
    assert named.wall_time > 0


@pytest.mark.slow
def test_collocation_then_solve_stops_at_its_tolerance():
    """From a collocation start on clean data, Adam's loss soon changes by
    less than a loose tolerance over 10 steps and the stage stops; without
    one it runs every step."""
    model, x, y, _ = _poly_model()
    ts = np.linspace(0, 1, 21)
    data = sm.Data(ts, {x: 1 + 3 * ts + 2 * ts**2, y: 2 * np.exp(-ts)})
    steps = []
    for tolerance in (1e-3, None):
        method = sm.CollocationThenSolve(
            collocation_steps=0, collocation_lbfgs_steps=50, tolerance=tolerance
        )
        assert all(
            p.tolerance == (tolerance or 0.0) for p in method.phases(300, None, 0)[:1]
        )
        fitted = sm.fit(model, data, method=method, steps=300, lbfgs_steps=0)
        steps.append(len(fitted.history["adam"]))
    assert steps[0] < 250 and steps[1] == 301


@pytest.mark.slow
def test_collocation_then_solve_warns_when_collocation_misses_the_data():
    """After one Adam step the first stage keeps about its initial rate
    (x' = +0.5 x against data decaying as e^{-1.3 t}): its solution is far
    from the data (the solve stage's first loss is far above 1), and the
    user is told."""
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), k * x)], parameters={k: sm.trainable(0.5)})
    ts = np.linspace(0, 3, 16)
    data = sm.Data(ts, {x: 3 * np.exp(-1.3 * ts)})
    method = sm.CollocationThenSolve(collocation_steps=1, collocation_lbfgs_steps=0)
    with pytest.warns(sm.SymmlWarning, match="does not follow the data.*first loss"):
        sm.fit(model, data, method=method, steps=0, lbfgs_steps=2)
    # A collocation fit that lands near the answer does not warn.
    method = sm.CollocationThenSolve(collocation_steps=0, collocation_lbfgs_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.SymmlWarning)
        sm.fit(model, data, method=method, steps=0, lbfgs_steps=2)


@pytest.mark.slow
def test_collocation_benchmark_quick(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "collocation.py"
    out = subprocess.run(
        [sys.executable, str(script), "--quick", "--seed", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    lv = summary["lotka_volterra"]
    assert [r["method"] for r in lv["rows"]] == ["solve", "collocation+solve"]
    assert lv["median_speedup_whole_run"] > 0
    fk = summary["fisher_kpp"]
    assert [r["method"] for r in fk["rows"]] == [
        "solve",
        "collocation",
        "collocation+solve",
    ]
    assert fk["fit_time_ratio_solve_vs_collocation"] > 0
    assert fk["fit_time_ratio_solve_vs_collocation_then_solve"] > 0
    assert set(fk["D_relative_error"]) == {"solve", "collocation", "collocation+solve"}
    assert "Fisher–KPP" in out.stdout


def test_lotka_volterra_example_collocation_quick(tmp_path):
    """The example's `--method collocation+solve`: both stages run for the
    UDE and the neural ODE, and the summary records the method."""
    from helpers import load_example

    lv = load_example("lotka_volterra")
    summary = lv.main(
        [
            "--quick",
            "--method",
            "collocation+solve",
            "--out",
            str(tmp_path),
            "--no-plot",
        ]
    )
    assert summary["method"] == "collocation+solve"
    assert set(summary["losses"]["ude"]) >= {"collocation:adam", "adam"}
    assert set(summary["losses"]["neural_ode"]) >= {"collocation:adam", "adam"}
    fits = summary["fit_wall_time_seconds"]
    assert 0 < fits["ude"] < summary["wall_time_seconds"]
    for output in summary["unknowns"].values():
        assert output["terms_exact"] == (
            set(output["terms"]) == set(output["true_terms"])
        )


def test_lotka_volterra_example_collocation_only_quick(tmp_path):
    """The example's `--method collocation`: the networks are fitted by
    collocation alone (no solve stage), and the refit of the recovered
    coefficients is the run's only solve in the loop."""
    from helpers import load_example

    lv = load_example("lotka_volterra")
    summary = lv.main(
        ["--quick", "--method", "collocation", "--out", str(tmp_path), "--no-plot"]
    )
    assert summary["method"] == "collocation"
    assert list(summary["losses"]["ude"]) == ["adam"]
    assert list(summary["losses"]["neural_ode"]) == ["adam"]
    assert list(summary["losses"]["refit"]) == ["lbfgs"]
    assert lv.fit_method("collocation", quick=True) == ("collocation", 200, 0)
    for output in summary["unknowns"].values():
        assert output["terms_exact"] == (
            set(output["terms"]) == set(output["true_terms"])
        )
