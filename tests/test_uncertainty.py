"""Uncertainty: propagation against exact covariances and Monte Carlo, error
bars of fits against the textbook formula, inclusion frequencies, and every
error path."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import sympy as sp

import symml as sm
from symml import UncertaintyError

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("uncertainty")

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
t = sp.Symbol("t")


# -- propagation ------------------------------------------------------------------


def test_linear_ode_covariance_is_exact():
    # u' = A u: u(t) = e^{At} u0, so a normal u0 gives Cov(t) = e^{At} Σ e^{Atᵀ},
    # exactly what first-order propagation computes.
    x, y = sm.states("x y", t)
    model = sm.Model(
        [sp.Eq(x.diff(t), -0.5 * x + 1.0 * y), sp.Eq(y.diff(t), -1.0 * x - 0.2 * y)]
    )
    rhs, _ = sm.lower(model)
    a = np.array([[-0.5, 1.0], [-1.0, -0.2]])
    mean0 = np.array([1.0, -0.5])
    cov0 = np.array([[0.04, 0.01], [0.01, 0.09]])
    ts = np.linspace(0.0, 3.0, 7)
    p = sm.propagate(
        rhs,
        {(x, y): sm.Normal(mean0, covariance=cov0)},
        saveat=ts,
        rtol=1e-10,
        atol=1e-12,
    )
    for i, ti in enumerate(ts):
        m = scipy.linalg.expm(a * ti)
        np.testing.assert_allclose(p.mean[i], m @ mean0, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(p.covariance()[i], m @ cov0 @ m.T, atol=1e-8)
    np.testing.assert_allclose(p.std, np.sqrt(np.diagonal(p.covariance(), 0, 1, 2)))
    lower, upper = p.band(x, sigmas=2)
    np.testing.assert_allclose(upper - lower, 4 * p[x][1])


@pytest.fixture(scope="module")
def decay_propagation():
    """x' = -k x, x(0) = 2 with k = 0.7 ± 0.05 and x(0) = 2 ± 0.1, propagated
    once (each propagation compiles) for the tests that read it."""
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model(
        [sp.Eq(x.diff(t), -k * x)],
        parameters={k: 0.7},
        conditions=[sp.Eq(x.subs(t, 0), 2.0)],
    )
    rhs, _ = sm.lower(model)
    ts = np.array([0.5, 1.0, 2.0])
    p = sm.propagate(
        rhs, {k: (0.7, 0.05), x: (2.0, 0.1)}, saveat=ts, rtol=1e-10, atol=1e-12
    )
    return SimpleNamespace(p=p, x=x, ts=ts)


def test_linear_propagation_of_a_fixed_parameter(decay_propagation):
    # x' = -k x, x(0) = x0: x = x0 e^{-kt}, and to first order
    # var x = e^{-2kt} σ0² + (x0 t e^{-kt})² σk². `k` is a fixed parameter,
    # compiled in as a constant: propagate lowers the model again around it.
    p, x, ts = decay_propagation.p, decay_propagation.x, decay_propagation.ts
    decay = np.exp(-0.7 * ts)
    expected = np.sqrt((decay * 0.1) ** 2 + (2.0 * ts * decay * 0.05) ** 2)
    np.testing.assert_allclose(p[x][1], expected, rtol=1e-6)
    np.testing.assert_allclose(p[x][0], 2.0 * decay, rtol=1e-8)


@pytest.mark.slow
def test_monte_carlo_agrees_with_linear_on_a_mildly_nonlinear_model():
    x, y = sm.states("x y", t)
    a, b, g, d = sp.symbols("alpha beta gamma delta")
    model = sm.Model(
        [sp.Eq(x.diff(t), a * x - b * x * y), sp.Eq(y.diff(t), g * x * y - d * y)],
        parameters={a: 1.3, b: 0.9, g: 0.8, d: 1.8},
    )
    rhs, _ = sm.lower(model)
    uncertain = {a: (1.3, 0.013), b: (0.9, 0.009), x: (2.0, 0.02), y: (1.5, 0.015)}
    ts = np.linspace(0.5, 2.0, 4)
    linear = sm.propagate(rhs, uncertain, saveat=ts)
    n = 4000
    mc = sm.propagate(
        rhs,
        uncertain,
        saveat=ts,
        method=sm.MonteCarlo(n_samples=n, seed=1, batch_size=1000),
    )
    assert mc.n_samples == n and mc.n_failed == 0
    # The statistical error of a standard deviation is std / sqrt(2 n), of a
    # mean std / sqrt(n); the nonlinear bias at 1 % is far below both.
    assert np.all(np.abs(mc.std - linear.std) < 4 * linear.std / np.sqrt(2 * n))
    assert np.all(np.abs(mc.mean - linear.mean) < 4 * linear.std / np.sqrt(n))
    np.testing.assert_allclose(
        mc.covariance(), linear.covariance(), atol=4 * np.max(linear.std) ** 2 / 30
    )
    again = sm.propagate(
        rhs, uncertain, saveat=ts, method=sm.MonteCarlo(n_samples=n, seed=1)
    )
    np.testing.assert_array_equal(again.std, mc.std)  # seeded, batch-independent


def test_propagate_expressions_and_functions():
    a, b, z = sp.symbols("a b z")
    p = sm.propagate(a * sp.exp(b), {a: (2.0, 0.1), b: (0.5, 0.05)})
    e = np.exp(0.5)
    np.testing.assert_allclose(p.mean, 2.0 * e)
    np.testing.assert_allclose(p.std, np.hypot(e * 0.1, 2.0 * e * 0.05))
    # Pointwise on a grid of independent inputs: the Jacobian is diagonal, one
    # colour, one JVP; the result equals the dense one.
    grid = np.linspace(0.0, 1.0, 40)
    sparse = sm.propagate(a * sp.sin(z), {z: sm.Normal(grid, 0.01)}, values={a: 2.0})
    dense = sm.propagate(
        a * sp.sin(z),
        {z: sm.Normal(grid, 0.01)},
        values={a: 2.0},
        method=sm.Linear(sparse=False),
    )
    np.testing.assert_allclose(sparse.std, 2.0 * np.cos(grid) * 0.01, rtol=1e-12)
    np.testing.assert_allclose(sparse.covariance(), dense.covariance(), atol=1e-15)
    f = sm.propagate(lambda a, b: a * jnp.exp(b), {"a": (2.0, 0.1), "b": (0.5, 0.05)})
    np.testing.assert_allclose(f.std, p.std)


def test_plot_band_returns_a_figure(decay_propagation):
    import matplotlib

    matplotlib.use("Agg")
    p = decay_propagation.p
    fig = sm.plot_band(p, decay_propagation.x, sigmas=(1, 2))
    assert len(fig.axes[0].collections) == 2  # one band per width
    with pytest.raises(UncertaintyError, match="`sigmas` must be positive"):
        sm.plot_band(p, sigmas=(-1,))


# -- error bars of fits -------------------------------------------------------------


@pytest.fixture(scope="module")
def regression():
    """A straight line as a fit: x' = b with x(0) trained makes x(t) = x0 + b t,
    linear regression on (1, t)."""
    (x,) = sm.states("x", t)
    b = sp.Symbol("b")
    model = sm.Model([sp.Eq(x.diff(t), b)], parameters={b: sm.trainable(1.0)})
    rng = np.random.default_rng(0)
    ts = np.linspace(0.0, 2.0, 30)
    ys = 0.5 + 2.0 * ts + 0.1 * rng.standard_normal(ts.size)
    result = sm.fit(model, sm.Data(ts, {x: ys}), steps=0, lbfgs_steps=60)
    # Gauss–Newton error bars, computed once for the tests that read them.
    bars = sm.parameter_uncertainty(result, sm.GaussNewton(refine=3))
    return SimpleNamespace(result=result, bars=bars, ts=ts, ys=ys, x=x, b=b)


@pytest.mark.slow
def test_gauss_newton_standard_errors_of_a_linear_regression(regression):
    ts, ys = regression.ts, regression.ys
    design = np.stack([np.ones_like(ts), ts], axis=1)
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    sigma2 = np.sum((ys - design @ coef) ** 2) / (ts.size - 2)
    textbook = sigma2 * np.linalg.inv(design.T @ design)  # σ² (XᵀX)⁻¹

    bars = regression.bars
    assert bars.labels == ("b", "x(0)")
    np.testing.assert_allclose(bars.estimates, coef[::-1], rtol=1e-8)
    np.testing.assert_allclose(bars.covariance, textbook[::-1, ::-1], rtol=1e-6)
    b = regression.b
    assert bars.standard_errors[b] == pytest.approx(np.sqrt(textbook[1, 1]), 1e-6)
    assert bars.noise_std["x"] == pytest.approx(np.sqrt(sigma2), 1e-6)
    assert bars.dof == ts.size - 2
    # Intervals use Student's t with the residual degrees of freedom.
    low, high = bars.interval(0.95)[b]
    half = 2.048407141795244 * np.sqrt(textbook[1, 1])  # t(0.975, 28)
    assert (low, high) == pytest.approx((coef[1] - half, coef[1] + half), 1e-6)
    # The weighted objective is the fit's own loss.
    problem = bars._problem
    pred, _ = problem.predict(jnp.asarray(problem.theta))
    loss = np.sum(problem.weights * (np.asarray(pred) - problem.y) ** 2)
    assert loss == pytest.approx(regression.result.final_loss, rel=1e-10)
    # Known noise: no estimate, normal quantiles.
    known = sm.parameter_uncertainty(
        regression.result, sm.GaussNewton(noise={"x": 0.1}, refine=3)
    )
    np.testing.assert_allclose(
        known.covariance,
        0.01 * np.linalg.inv(design.T @ design)[::-1, ::-1],
        rtol=1e-6,
    )
    assert "b = 2.00 ± 0.03" in str(bars)
    assert bars.equations() == ["Derivative(x(t), t) = (2.00 ± 0.03)"]
    assert json.dumps(bars.to_dict())


@pytest.mark.slow
def test_prediction_band_of_a_fit(regression):
    # x(t) = x0 + b t: var = var x0 + t² var b + 2 t cov(x0, b), exactly.
    bars = regression.bars
    ts = np.array([0.0, 1.0, 3.0])
    band = bars.predict(ts)
    c = bars.covariance  # order (b, x0)
    expected = np.sqrt(c[1, 1] + ts**2 * c[0, 0] + 2 * ts * c[0, 1])
    np.testing.assert_allclose(band[regression.x][1], expected, rtol=1e-6)
    with pytest.raises(UncertaintyError, match="before|first observation"):
        bars.predict(np.array([-1.0, 0.0]))


@pytest.mark.slow
def test_bootstrap_agrees_with_gauss_newton_and_is_seeded(regression):
    method = sm.Bootstrap(n_resamples=40, seed=2, steps=3, batch_size=40)
    boot = sm.parameter_uncertainty(regression.result, method)
    again = sm.parameter_uncertainty(regression.result, method)
    np.testing.assert_array_equal(boot.samples, again.samples)
    assert boot.samples.shape == (40, 2) and boot.n_failed == 0
    gn = regression.bars
    b = regression.b
    # 40 replicates estimate a standard error to about 1/sqrt(80) ≈ 11 %.
    assert boot.standard_errors[b] == pytest.approx(gn.standard_errors[b], rel=0.35)
    low, high = boot.interval(0.9)[b]
    assert low < gn.values[b] < high
    cases = sm.parameter_uncertainty(
        regression.result, sm.Bootstrap(n_resamples=40, resample="cases", steps=3)
    )
    assert cases.standard_errors[b] == pytest.approx(gn.standard_errors[b], rel=0.5)


@pytest.mark.slow
def test_gauss_newton_refuses_parameters_the_data_cannot_separate():
    # x' = a + b: only a + b is determined, so the curvature JᵀJ is singular
    # along (1, −1)/√2 and no finite covariance exists.
    (x,) = sm.states("x", t)
    a, b = sp.symbols("a b")
    model = sm.Model(
        [sp.Eq(x.diff(t), a + b)],
        parameters={a: sm.trainable(1.0), b: sm.trainable(0.5)},
    )
    ts = np.linspace(0.0, 2.0, 30)
    ys = 0.5 + 2.0 * ts + 0.1 * np.random.default_rng(0).standard_normal(ts.size)
    result = sm.fit(model, sm.Data(ts, {x: ys}), steps=0, lbfgs_steps=30)
    with pytest.raises(
        UncertaintyError, match=r"not identifiable.*0\.71·[ab] − 0\.71·[ab]"
    ):
        sm.parameter_uncertainty(result)


@pytest.mark.slow
def test_gauss_newton_warns_when_the_fit_has_not_converged():
    # One tiny Adam step from b = 1 leaves the slope far from its least-squares
    # value 2: the Gauss–Newton step is many standard errors long.
    (x,) = sm.states("x", t)
    b = sp.Symbol("b")
    model = sm.Model([sp.Eq(x.diff(t), b)], parameters={b: sm.trainable(1.0)})
    ts = np.linspace(0.0, 2.0, 30)
    ys = 0.5 + 2.0 * ts + 0.1 * np.random.default_rng(0).standard_normal(ts.size)
    early = sm.fit(
        model, sm.Data(ts, {x: ys}), steps=1, lbfgs_steps=0, learning_rate=1e-3
    )
    with pytest.warns(sm.UncertaintyWarning, match="not at the minimum"):
        sm.parameter_uncertainty(early)


# -- inclusion frequencies ----------------------------------------------------------


def _lv_result():
    x, y = sm.states("x y", t)
    alpha, delta = sp.symbols("alpha delta")
    U = sm.Unknown("U", [x, y], outputs=2)
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: 1.3, delta: 1.8},
    )
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.0, 5.0, size=(200, 2))
    xy = inputs[:, 0] * inputs[:, 1]
    outputs = np.stack([-0.9 * xy, 0.8 * xy], axis=1)
    outputs += 0.05 * rng.standard_normal(outputs.shape)
    result = SimpleNamespace(
        model=model,
        unknown_samples=lambda: {"U": (inputs, outputs)},
        parameter_values=lambda: {},
    )
    return result, x, y, U


def test_inclusion_frequencies_from_stability_selection():
    result, x, y, U = _lv_result()
    found = sm.discover(
        result, selector=sm.BestSubset(sm.Stability(n_resamples=20, seed=1))
    )
    frequencies = found.inclusion_frequencies()
    assert set(frequencies) == {U[0], U[1]}
    assert len(frequencies[U[0]]) == 10  # every term of the cubic library
    assert frequencies[U[0]][x * y] == 1.0
    assert max(f for term, f in frequencies[U[0]].items() if term != x * y) < 0.5
    front = found.fronts[U[0]].to_dict()
    assert front["inclusion_frequencies"]["x(t)*y(t)"] == 1.0
    assert "inclusion frequencies: x(t)*y(t): 1.00" in str(found.fronts[U[0]])
    plain = sm.discover(result)
    assert plain.fronts[U[0]].inclusion_frequencies is None
    with pytest.raises(sm.DiscoverError, match="no inclusion frequencies"):
        plain.inclusion_frequencies()


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sm.Normal(1.0, -0.1), r"negative entry \(-0.1 at index 0\)"),
        (
            lambda: sm.Normal([1.0, 2.0], covariance=[[1.0, 2.0], [2.0, 1.0]]),
            "not positive semi-definite: its smallest eigenvalue is -1",
        ),
        (
            lambda: sm.Normal([1.0, 2.0], covariance=[[1.0, 0.5], [0.2, 1.0]]),
            r"not symmetric: entry \(0, 1\) is 0.5",
        ),
        (
            lambda: sm.Normal([1.0, 2.0], covariance=np.eye(3)),
            r"must have shape \(2, 2\)",
        ),
        (lambda: sm.Normal(1.0), "exactly one of them"),
        (lambda: sm.Normal(float("nan"), 1.0), "not finite"),
        (lambda: sm.MonteCarlo(n_samples=1), "`n_samples` of `MonteCarlo`"),
        (lambda: sm.Linear(sparse="yes"), "`sparse` of `Linear`"),
        (lambda: sm.Bootstrap(resample="blocks"), "`resample` of `Bootstrap`"),
        (lambda: sm.GaussNewton(noise="each"), "`noise` of `GaussNewton`"),
        (lambda: sm.GaussNewton(noise={"x": -1.0}), r"`noise\[x\]` of `GaussNewton`"),
    ],
)
def test_bad_inputs_raise(make, match):
    with pytest.raises(UncertaintyError, match=match):
        make()


def test_propagate_errors():
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model(
        [sp.Eq(x.diff(t), -k * x)],
        parameters={k: 0.7},
        conditions=[sp.Eq(x.subs(t, 0), 2.0)],
    )
    rhs, _ = sm.lower(model)
    with pytest.raises(UncertaintyError, match="neither a parameter nor a state"):
        sm.propagate(rhs, {"q": (1.0, 0.1)}, saveat=[1.0])
    with pytest.raises(UncertaintyError, match="given an uncertainty twice"):
        sm.propagate(rhs, {k: (0.7, 0.1), (k, x): sm.Normal([0.7, 2.0], 0.1)})
    with pytest.raises(UncertaintyError, match=r"has 2 entries, but `k`: 1 make 1"):
        sm.propagate(rhs, {k: sm.Normal([0.7, 0.7], 0.1)})
    with pytest.raises(UncertaintyError, match="must be `symml.Normal"):
        sm.propagate(rhs, {k: 0.1})
    with pytest.raises(UncertaintyError, match="non-empty dict"):
        sm.propagate(rhs, {})
    with pytest.raises(UncertaintyError, match="`method` must be"):
        sm.propagate(rhs, {k: (0.7, 0.1)}, method="linear")
    a = sp.Symbol("a")
    with pytest.raises(UncertaintyError, match="`b` of .* have no value"):
        sm.propagate(a * sp.Symbol("b"), {a: (1.0, 0.1)})
    with pytest.raises(UncertaintyError, match="`saveat=` applies to a lowered"):
        sm.propagate(a, {a: (1.0, 0.1)}, saveat=[1.0])


def test_error_bars_need_a_model_without_networks(getkey):
    (x,) = sm.states("x", t)
    U = sm.Unknown("U", [x], outputs=1, hidden=[4])
    model = sm.Model([sp.Eq(x.diff(t), U[0])])
    rhs, params = sm.lower(model, key=getkey())
    ts = np.linspace(0.0, 1.0, 5)
    result = sm.UDEResult(
        model=model,
        params=params,
        history={},
        wall_time=0.0,
        method=None,
        seed=0,
        system=rhs,
        initial_states=(jnp.ones(1),),
        data=(sm.Data(ts, {x: np.exp(-ts)}),),
    )
    with pytest.raises(UncertaintyError, match="still has the network"):
        sm.parameter_uncertainty(result)
    with pytest.raises(UncertaintyError, match="got SimpleNamespace"):
        sm.parameter_uncertainty(SimpleNamespace(model=model))
    with pytest.raises(UncertaintyError, match="`method` must be"):
        sm.parameter_uncertainty(result, method="bootstrap")


# -- examples and benchmarks --------------------------------------------------------


def test_lotka_volterra_example_reports_error_bars_quick(tmp_path):
    from helpers import load_example

    load_example("lotka_volterra").main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    for output in summary["unknowns"].values():
        assert set(output["standard_errors"]) == set(output["terms"])
        assert all(se >= 0 for se in output["standard_errors"].values())
        assert len(output["inclusion_frequencies"]) == 10  # the cubic library
        assert set(output["terms"]) <= set(output["inclusion_frequencies"])
    assert r"\pm" in summary["equations_latex_with_errors"]
    assert (
        (tmp_path / "equations_with_errors.tex")
        .read_text()
        .startswith(r"\begin{aligned}")
    )
    assert (tmp_path / "prediction_band.png").stat().st_size > 10_000


def test_fisher_kpp_example_reports_error_bars_quick(tmp_path):
    from helpers import load_example

    load_example("fisher_kpp").main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["standard_errors"]) == set(summary["terms"])
    assert len(summary["inclusion_frequencies"]) == 4  # 1, ρ, ρ², ρ³
    assert r"\pm" in summary["equations_latex_with_errors"]
    assert (tmp_path / "prediction_band.png").stat().st_size > 10_000


def _run(name: str, out: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_propagation_benchmark_quick(tmp_path):
    summary = _run("propagation.py", tmp_path)
    assert summary["quick"]
    assert summary["std_x_relative_difference"]["median"] < 0.05
    assert summary["seconds"]["linear_run"] > 0
    assert summary["seconds"]["monte_carlo_run"] > 0


def test_calibration_benchmark_quick(tmp_path):
    summary = _run("calibration.py", tmp_path)
    assert summary["quick"]
    for level in summary["noise_levels"].values():
        assert level["n_datasets"] >= 1
        for method in ("gauss_newton", "bootstrap"):
            assert 0 <= level["coverage"][method] <= 1
    # Resumable: a second run reuses every data set's file.
    again = _run("calibration.py", tmp_path)
    assert again["reused"] == again["n_runs"]
