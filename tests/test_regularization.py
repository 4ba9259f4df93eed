"""Regularisers of the learned field (solver heuristics, Taylor), the Taylor
coefficients of an ODE's solution, and counts of vector-field evaluations."""

import math

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp
from jax.experimental import jet

import symml as sm
from symml._diffrax import (
    SolveOptions,
    _Heuristics,
    diffeqsolve,
    evaluations,
    heuristics_of,
)
from symml.training import ode_taylor_coefficients

t = sp.Symbol("t")


def _options(solver="Tsit5", rtol=1e-6, atol=1e-9):
    return SolveOptions.make(solver=solver, rtol=rtol, atol=atol, error=sm.FitError)


# -- counting evaluations ----------------------------------------------------------


@pytest.mark.parametrize(
    "solver",
    ["Tsit5"]
    + [
        pytest.param(s, marks=pytest.mark.slow)
        for s in ["Dopri5", "Bosh3", "Heun", "Euler"]
    ],
)
@pytest.mark.slow
def test_evaluation_count_matches_the_evaluations_made(solver):
    """Count the calls of the field at run time (rejected steps included)."""
    calls = []

    def f(t, y, args):
        jax.debug.callback(lambda: calls.append(1))
        return args * jnp.stack([y[1], -y[0] - 0.1 * y[1]])

    options = _options(solver, rtol=1e-7, atol=1e-9)
    solution = jax.jit(
        lambda y0: diffeqsolve(
            f, options, y0, 3.0, ts=jnp.linspace(0.0, 4.0, 9), count=True
        )
    )(jnp.array([1.0, 0.0]))
    jax.block_until_ready(solution.ys)
    assert evaluations(solution) == len(calls)
    if solver in ("Tsit5", "Bosh3"):
        assert int(solution.stats["num_rejected_steps"]) > 0


@pytest.mark.slow
def test_evaluation_count_by_hand():
    """Euler at the data's spacing evaluates once per step; Tsit5 (7 stages,
    the first the same as the last) six times per step, rejected steps
    included, plus once for its first step."""
    f = lambda t, y, args: -y  # noqa: E731
    ts = jnp.linspace(0.0, 1.0, 11)
    euler = diffeqsolve(f, _options("Euler"), jnp.ones(2), None, ts=ts, count=True)
    assert evaluations(euler) == 10
    tsit5 = diffeqsolve(f, _options(), jnp.ones(2), None, ts=ts, count=True)
    assert evaluations(tsit5) == 1 + 6 * int(tsit5.stats["num_steps"])
    # Without `count`, nothing is counted.
    assert evaluations(diffeqsolve(f, _options(), jnp.ones(2), None, ts=ts)) is None


@pytest.mark.slow
def test_nfe_of_solve_predict_and_fit_result():
    x = sm.states("x", t)[0]
    k = sp.Symbol("k")
    model = sm.Model(
        [sp.Eq(x.diff(t), -k * x)],
        conditions=[sp.Eq(x.subs(t, 0), 1)],
        parameters={k: sm.trainable(0.5)},
    )
    system, params = sm.lower(model)
    solution = sm.solve(system, t_span=(0, 1), params=params)
    assert solution.nfe == 1 + 6 * int(solution.stats["num_steps"])
    implicit = sm.solve(system, t_span=(0, 1), params=params, solver="Kvaerno5")
    assert implicit.nfe is None
    ts = np.linspace(0, 1, 6)
    result = sm.fit(
        model, sm.Data(ts, {x: np.exp(-ts)}), steps=0, lbfgs_steps=3, progress=False
    )
    prediction = result.predict(ts)
    assert prediction.nfe == 1 + 6 * int(prediction.stats["num_steps"])
    assert result.nfe == prediction.nfe


# -- Taylor coefficients of an ODE's solution --------------------------------------


def test_ode_taylor_coefficients_of_exponential():
    """x' = x through x(0) = x0: x(t) = x0 e^t, coefficients x0 / k!."""
    z0 = jnp.array([1.0, -2.0])
    coefficients = ode_taylor_coefficients(lambda t, z, a: z, 0.3, z0, None, 7)
    for k, c in enumerate(coefficients):
        np.testing.assert_allclose(c, z0 / math.factorial(k), rtol=1e-14)


@pytest.mark.slow
def test_ode_taylor_coefficients_match_jet(getkey):
    """A tanh network with an explicit time dependence, against the
    recursion with `jax.experimental.jet` on the autonomous system (t, z)."""
    mlp = eqx.nn.MLP(3, 3, 16, 2, activation=jnp.tanh, key=getkey())

    def f(t, z, net):
        return net(z) * jnp.sin(t) + 0.1 * z

    z0, t0, order = jnp.array([0.3, -0.2, 0.5]), 0.7, 5
    # Both under `jit`: eager Taylor series dispatch (and compile) every
    # operation on its own.
    ours = jax.jit(lambda z: ode_taylor_coefficients(f, t0, z, mlp, order))(z0)

    def g(w):
        return jnp.concatenate([jnp.ones(1), f(w[0], w[1:], mlp)])

    @jax.jit
    def recursion(w0):
        derivatives = [g(w0)]  # d^k w/dt^k, k = 1..
        for _ in range(1, order):
            _, series = jet.jet(g, (w0,), (derivatives,))
            derivatives = [g(w0), *series]
        return derivatives

    derivatives = recursion(jnp.concatenate([jnp.array([t0]), z0]))
    for k in range(1, order + 1):
        np.testing.assert_allclose(
            ours[k] * math.factorial(k), derivatives[k - 1][1:], rtol=1e-12, atol=1e-14
        )


@pytest.mark.slow
def test_taylor_regularization_integral_closed_form():
    """x' = -a x: ∫_0^T (d^K x/dt^K)² dt = a^{2K} x0² (1 − e^{−2aT}) / (2a)."""
    x = sm.states("x", t)[0]
    a = sp.Symbol("a")
    system, params = sm.lower(sm.Model([sp.Eq(x.diff(t), -a * x)], parameters={a: 1.5}))
    ts = jnp.linspace(0.0, 2.0, 5)
    for order in [1, 2, 3]:
        reg = sm.TaylorRegularization(order=order, weight=1.0)
        solution, term = reg.solve(system, _options(), jnp.array([2.0]), params, ts)
        exact = 1.5 ** (2 * order) * 4.0 * (1 - math.exp(-6.0)) / 3.0
        assert float(term) == pytest.approx(exact, rel=1e-6)
        np.testing.assert_allclose(solution.ys[:, 0], 2 * np.exp(-1.5 * ts), rtol=1e-6)


# -- the solver heuristics ---------------------------------------------------------


@pytest.mark.slow
def test_stiffness_estimate_of_a_linear_decay():
    """y' = λ y: every step's stiffness estimate is |λ|."""
    solution = diffeqsolve(
        lambda t, y, a: -7.0 * y,
        _options(),
        jnp.ones(3),
        None,
        ts=jnp.linspace(0, 1, 3),
        heuristics=True,
    )
    error_sum, stiffness_sum = heuristics_of(solution)
    steps = int(solution.stats["num_accepted_steps"])
    assert float(stiffness_sum) == pytest.approx(7.0 * steps, rel=1e-8)
    # Accepted steps have scaled errors below 1: the sum is below the span.
    assert 0 < float(error_sum) < 1.0


@pytest.mark.slow
def test_solver_heuristics_gradient_matches_central_differences(getkey):
    """The gradient is that of the discrete solve with its steps held fixed
    (diffrax's controller passes no gradient through the step sizes): compare
    it with central differences of the same sums on the adaptive solve's own
    accepted steps, replayed with `StepTo`."""
    mlp = eqx.nn.MLP(2, 2, 8, 1, activation=jnp.tanh, key=getkey())
    weights, rest = eqx.partition(mlp, eqx.is_inexact_array)

    def field(t, y, w):
        return 2.0 * eqx.combine(w, rest)(y) - 0.5 * y

    options = _options(rtol=1e-5, atol=1e-8)
    y0 = jnp.array([1.0, -0.5])
    ts = jnp.linspace(0.0, 3.0, 4)

    def regulariser(w):
        solution = diffeqsolve(field, options, y0, w, ts=ts, heuristics=True)
        error_sum, stiffness_sum = heuristics_of(solution)
        return error_sum + 0.1 * stiffness_sum

    steps = dfx.diffeqsolve(
        dfx.ODETerm(field),
        options.solver,
        0.0,
        3.0,
        None,
        y0,
        args=weights,
        saveat=dfx.SaveAt(steps=True),
        stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-8),
    ).ts
    grid = jnp.concatenate([jnp.zeros(1), steps[jnp.isfinite(steps)]])

    def frozen(w):
        solution = dfx.diffeqsolve(
            dfx.ODETerm(field),
            _Heuristics(options.solver, options.rtol, options.atol),
            0.0,
            3.0,
            None,
            y0,
            args=w,
            saveat=dfx.SaveAt(t1=True, solver_state=True),
            stepsize_controller=dfx.StepTo(ts=grid),
        )
        error_sum, stiffness_sum = heuristics_of(solution)
        return error_sum + 0.1 * stiffness_sum

    assert float(frozen(weights)) == pytest.approx(float(regulariser(weights)), 1e-12)
    gradient = jax.grad(regulariser)(weights)
    flat, unflatten = jax.flatten_util.ravel_pytree(weights)
    g = jax.flatten_util.ravel_pytree(gradient)[0]
    direction = jr.normal(getkey(), flat.shape)
    eps = 1e-6
    central = (
        frozen(unflatten(flat + eps * direction))
        - frozen(unflatten(flat - eps * direction))
    ) / (2 * eps)
    assert float(g @ direction) == pytest.approx(float(central), rel=1e-6)
    assert float(jnp.linalg.norm(g)) > 0


def _neural_ode():
    x, y = sm.states("x y", t)
    N = sm.Unknown("N", inputs=[x, y], outputs=2, hidden=[8], activation="tanh")
    model = sm.Model([sp.Eq(x.diff(t), N[0]), sp.Eq(y.diff(t), N[1])])
    ts = np.linspace(0, 2, 11)
    data = sm.Data(ts, {x: np.cos(ts), y: -np.sin(ts)})
    return model, data


@pytest.mark.parametrize(
    "regularize",
    [
        sm.SolverHeuristics(weight=1e-3),
        pytest.param(
            sm.TaylorRegularization(order=2, weight=1e-3), marks=pytest.mark.slow
        ),
    ],
)
@pytest.mark.slow
def test_fit_with_a_regulariser(regularize):
    model, data = _neural_ode()
    result = sm.fit(
        model,
        data,
        method=sm.SolveInLoop(regularize=regularize),
        steps=20,
        lbfgs_steps=0,
        progress=False,
    )
    assert np.isfinite(result.final_loss)
    assert result.history["adam"][-1] < result.history["adam"][0]
    assert result.nfe > 0


# -- errors ------------------------------------------------------------------------


def test_regulariser_errors():
    model, data = _neural_ode()
    with pytest.raises(sm.FitError, match="explicit Runge–Kutta.*'Tsit5'"):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(solver="Kvaerno5", regularize=sm.SolverHeuristics()),
        )
    with pytest.raises(sm.FitError, match="adjoint='recursive'"):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(
                adjoint="backsolve", regularize=sm.SolverHeuristics()
            ),
        )
    with pytest.raises(sm.FitError, match="regularises nothing"):
        sm.SolverHeuristics(error=False, stiffness=False)
    with pytest.raises(sm.FitError, match="`weight` of `SolverHeuristics`"):
        sm.SolverHeuristics(weight=-1)
    with pytest.raises(sm.FitError, match="`regularize` must be"):
        sm.SolveInLoop(regularize="taylor")
    with pytest.raises(sm.FitError, match="`order` of `TaylorRegularization`"):
        sm.TaylorRegularization(order=0)


def test_taylor_regularization_needs_smooth_activations():
    x = sm.states("x", t)[0]
    N = sm.Unknown("N", inputs=[x], outputs=1, hidden=[8], activation="relu")
    model = sm.Model([sp.Eq(x.diff(t), N[0])])
    ts = np.linspace(0, 1, 5)
    data = sm.Data(ts, {x: np.exp(-ts)})
    with pytest.raises(sm.FitError, match="`relu` activation.*such as 'tanh'"):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(regularize=sm.TaylorRegularization(order=3)),
        )


@pytest.mark.slow
def test_taylor_regularization_needs_taylor_rules():
    """An activation made of a primitive without a Taylor rule (`atan`: only
    finite differences differentiate it) cannot be Taylor-regularised; the
    error says what to use instead."""
    from symml.nets import register_activation

    register_activation("atan_for_taylor_test", jnp.arctan)
    x = sm.states("x", t)[0]
    N = sm.Unknown(
        "N", inputs=[x], outputs=1, hidden=[4], activation="atan_for_taylor_test"
    )
    model = sm.Model([sp.Eq(x.diff(t), N[0])])
    ts = np.linspace(0, 1, 5)
    data = sm.Data(ts, {x: np.exp(-ts)})
    with pytest.raises(
        sm.FitError, match="propagates Taylor series.*`atan`.*`SolverHeuristics\\(\\)`"
    ):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(regularize=sm.TaylorRegularization(order=2)),
        )
    # The solver heuristics need no derivatives of the network.
    result = sm.fit(
        model,
        data,
        method=sm.SolveInLoop(regularize=sm.SolverHeuristics()),
        steps=2,
        lbfgs_steps=0,
        progress=False,
    )
    assert np.isfinite(result.final_loss)


@pytest.mark.slow
def test_regularization_benchmark_quick(tmp_path, capsys):
    import importlib.util
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "regularization.py"
    out = subprocess.run(
        [sys.executable, str(script), "--quick", "--seeds", "1", "2"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == summary["seeds_done"] == [1, 2]
    assert [r["seed"] for r in summary["per_seed"]] == [1, 2]

    # Each seed's ratios from its own rows; the targets.
    def ratios(rows):
        srnode, vanilla, taynode = rows["srnode"], rows["vanilla"], rows["taynode"]
        return {
            "nfe_ratio_srnode_vs_vanilla": srnode["nfe"] / vanilla["nfe"],
            "test_loss_ratio_srnode_vs_vanilla": srnode["test_loss"]
            / vanilla["test_loss"],
            "train_time_ratio_srnode_vs_vanilla": srnode["train_seconds"]
            / vanilla["train_seconds"],
            "train_time_ratio_srnode_vs_taynode": srnode["train_seconds"]
            / taynode["train_seconds"],
        }

    targets = {
        "nfe": ("nfe_ratio_srnode_vs_vanilla", 0.6),
        "test_loss": ("test_loss_ratio_srnode_vs_vanilla", 1.1),
        "train_time_vs_vanilla": ("train_time_ratio_srnode_vs_vanilla", 1.3),
        "train_time_vs_taynode": ("train_time_ratio_srnode_vs_taynode", 0.5),
    }
    per_seed = []
    for record in summary["per_seed"]:
        assert set(record["rows"]) == {"vanilla", "taynode", "srnode"}
        assert all(row["nfe"] > 0 for row in record["rows"].values())
        expected = ratios(record["rows"])
        for key, value in expected.items():
            assert record[key] == pytest.approx(value, rel=1e-12)
        per_seed.append(expected)
    for key in per_seed[0]:
        # The median of two values is their mean.
        mean = (per_seed[0][key] + per_seed[1][key]) / 2
        assert summary[key] == pytest.approx(mean, rel=1e-12)
        assert summary[key] > 0
    for name, (key, bound) in targets.items():
        count = sum(r[key] <= bound for r in per_seed)
        assert summary[f"seeds_meeting_{name}_target"] == count
        assert summary[f"{name}_target"]["at_most"] == bound
    assert summary["seeds_meeting_all_targets"] == sum(
        all(r[key] <= bound for key, bound in targets.values()) for r in per_seed
    )
    assert summary["load"]["start"] >= 0 and len(summary["load"]["end"]) == 3
    assert "median" in out.stdout and "SRNODE vs vanilla (medians)" in out.stdout

    # With one seed the keys keep their single-seed meaning: that seed's ratios.
    spec = importlib.util.spec_from_file_location("regularization_benchmark", script)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    record = summary["per_seed"][1]
    one = benchmark.summarize([record], [2], 0.0)
    assert one["seed"] == 2 and one["rows"] == record["rows"]
    for key, value in per_seed[1].items():
        assert one[key] == pytest.approx(value, rel=1e-12)

    for argv, message in [
        (["--seed", "0", "--seeds", "1"], "not allowed with argument --seed"),
        (["--seeds", "1", "1"], "each seed once"),
    ]:
        with pytest.raises(SystemExit) as exit:
            benchmark.main(["--quick", "--out", str(tmp_path)] + argv)
        assert exit.value.code == 2
        assert message in capsys.readouterr().err
