"""Steady states against closed forms, implicit gradients against unrolled
Newton and central differences, failure paths, and skip guesses."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import optax
import pytest
import sympy as sp
from helpers import load_example

import symml as sm
from symml.steady import SPARSE_FROM
from symml.steady._linear import ColoredLU
from symml.steady._solvers import _Problem

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
t, x = sp.symbols("t x")

METHODS = {
    "newton-dense": sm.Newton(linear_solver="dense"),
    "newton-sparse": sm.Newton(linear_solver="sparse"),
    "lm": sm.LevenbergMarquardt(),
    "integrate": sm.IntegrateToSteady(),
}


def _linear_system():
    """du/dt = A u + b with A stable: the steady state is -A⁻¹ b."""
    u1, u2, u3 = sm.states("u1 u2 u3", t)
    a = np.array([[-2.0, 1.0, 0.0], [0.5, -3.0, 1.0], [0.0, 1.0, -1.5]])
    b = np.array([1.0, -2.0, 0.5])
    us = (u1, u2, u3)
    eqs = [
        sp.Eq(us[i].diff(t), sum(a[i, j] * us[j] for j in range(3)) + b[i])
        for i in range(3)
    ]
    f, params = sm.lower(sm.Model(eqs))
    return f, params, -np.linalg.solve(a, b)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_linear_system(name):
    f, params, exact = _linear_system()
    sol = sm.steady_state(f, jnp.zeros(3), params, solver=METHODS[name])
    assert bool(sol.converged)
    np.testing.assert_allclose(sol.u, exact, rtol=1e-9, atol=1e-9)
    assert float(sol.residual_norm) < 1e-8
    if name.startswith("newton"):
        # Newton on a linear system: one step to the root, one to confirm.
        assert int(sol.num_steps) <= 2


def _logistic(r=1.5, k=2.0):
    (u,) = sm.states("u", t)
    rs, ks = sp.symbols("r K")
    model = sm.Model(
        [sp.Eq(u.diff(t), rs * u * (1 - u / ks))],
        parameters={rs: sm.trainable(r), ks: sm.trainable(k)},
    )
    return sm.lower(model)


def test_logistic_growth_roots_and_stability():
    f, params = _logistic()
    # Newton finds the root nearest the guess, stable or not ...
    near_zero = sm.steady_state(f, jnp.array([0.05]), params)
    np.testing.assert_allclose(near_zero.u, [0.0], atol=1e-10)
    near_k = sm.steady_state(f, jnp.array([1.5]), params)
    np.testing.assert_allclose(near_k.u, [2.0], rtol=1e-10)
    # ... integrating from a small population reaches the stable one, K.
    relaxed = sm.steady_state(
        f, jnp.array([0.05]), params, solver=sm.IntegrateToSteady()
    )
    np.testing.assert_allclose(relaxed.u, [2.0], rtol=1e-10)
    assert int(relaxed.stats["integration_steps"]) > 0


@pytest.mark.slow
def test_logistic_gradient_is_exact():
    # u* = K, so du*/dK = 1 and du*/dr = 0, whichever method found it.
    f, params = _logistic()
    for method in (sm.Newton(), sm.LevenbergMarquardt(), sm.IntegrateToSteady()):
        grad = jax.grad(
            lambda p, m=method: sm.steady_state(f, jnp.array([1.6]), p, solver=m).u[0]
        )(params)
        np.testing.assert_allclose(grad.values["K"], 1.0, rtol=1e-9)
        np.testing.assert_allclose(grad.values["r"], 0.0, atol=1e-9)


def _poisson(n, lo=0.3, hi=-0.2):
    """0 = u_xx + π² sin(πx) on [0, 1], u(0) = lo, u(1) = hi: the exact
    solution is sin(πx) + lo + (hi - lo) x."""
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2) + sp.pi**2 * sp.sin(sp.pi * x))],
        domain={x: (0, 1)},
        boundary="dirichlet",
        conditions=[sp.Eq(u.subs(x, 0), lo), sp.Eq(u.subs(x, 1), hi)],
    )
    ode = sm.discretize(model, {x: n})
    xs = ode.grid[x]
    return ode, np.sin(np.pi * xs) + lo + (hi - lo) * xs


@pytest.mark.parametrize("linear_solver", ["dense", "sparse"])
def test_poisson_against_exact_solution(linear_solver):
    errors = []
    for n in (16, 32, 64):
        ode, exact = _poisson(n)
        sol = sm.steady_state(
            ode, jnp.zeros(ode.n), solver=sm.Newton(linear_solver=linear_solver)
        )
        errors.append(float(np.max(np.abs(sol.u - exact))))
        # The discrete problem is linear: solved exactly by one Newton step.
        assert int(sol.num_steps) <= 2
    # Second-order stencils: error / h² is the same on every grid.
    h = np.array([1 / 17, 1 / 33, 1 / 65])
    scaled = np.array(errors) / h**2
    assert errors[-1] < 2e-4
    np.testing.assert_allclose(scaled, scaled[-1], rtol=0.05)


def test_dict_guess_and_unflatten():
    ode, exact = _poisson(16)
    sol = sm.steady_state(ode, {"u": np.zeros(16)})
    np.testing.assert_allclose(ode.unflatten(sol.u)["u"], exact, atol=1e-2)


# -- implicit gradients ---------------------------------------------------------


def _reaction_diffusion(n=16, *, key=None):
    """0 = D u_xx + R(u) + A sin(πx) + B x, u(0) = 0.2, u(1) = B: trainable D,
    A, B and a network R of u."""
    (u,) = sm.states("u", t, x)
    d, a, b = sp.symbols("D A B")
    R = sm.Unknown("R", [u], hidden=(6,))
    model = sm.Model(
        [
            sp.Eq(
                u.diff(t),
                d * u.diff(x, 2) + R[0] + a * sp.sin(sp.pi * x) + b * x,
            )
        ],
        parameters={
            d: sm.trainable(0.1),
            a: sm.trainable(1.0),
            b: sm.trainable(0.3),
        },
        domain={x: (0, 1)},
        boundary="dirichlet",
        conditions=[sp.Eq(u.subs(x, 0), 0.2), sp.Eq(u.subs(x, 1), b)],
    )
    ode = sm.discretize(model, {x: n})
    params = sm.init_params(model, key=jr.PRNGKey(0) if key is None else key)
    return ode, params


def _objective(ode, adjoint="implicit", linear_solver="auto"):
    weights = jnp.linspace(-1.0, 2.0, ode.n)

    def objective(params):
        sol = sm.steady_state(
            ode,
            jnp.zeros(ode.n),
            params,
            solver=sm.Newton(rtol=1e-12, atol=1e-12, linear_solver=linear_solver),
            adjoint=adjoint,
        )
        return jnp.sum(weights * sol.u**2)

    return objective


# Differentiates through unrolled Newton iterations (the costliest compile of
# this file); the implicit gradient is checked against central differences in
# the fast subset below.
@pytest.mark.slow
def test_implicit_gradient_matches_unrolled_newton():
    ode, params = _reaction_diffusion()
    unrolled = jax.jit(jax.grad(_objective(ode, "unrolled", "dense")))(params)
    b, _ = jax.flatten_util.ravel_pytree(unrolled)
    assert float(jnp.linalg.norm(b)) > 1e-3
    for linear_solver in ("dense", "sparse"):
        implicit = jax.grad(_objective(ode, "implicit", linear_solver))(params)
        a, _ = jax.flatten_util.ravel_pytree(implicit)
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * float(jnp.max(abs(b))))


@pytest.mark.slow
def test_implicit_gradient_matches_central_differences():
    ode, params = _reaction_diffusion()
    objective = jax.jit(_objective(ode))
    grad = jax.jit(jax.grad(objective))(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    g, _ = jax.flatten_util.ravel_pytree(grad)
    # Directional derivatives along each trainable value and along two random
    # directions in the whole parameter space (network weights included).
    key = jr.PRNGKey(3)
    dirs = [jr.normal(k, flat.shape) for k in jr.split(key, 2)]
    names = sorted(params.values)
    for name in names:
        e = jax.tree.map(jnp.zeros_like, params)
        e.values[name] = jnp.ones(())
        dirs.append(jax.flatten_util.ravel_pytree(e)[0])
    h = 1e-6
    for v in dirs:
        v = v / jnp.linalg.norm(v)
        fd = (objective(unravel(flat + h * v)) - objective(unravel(flat - h * v))) / (
            2 * h
        )
        np.testing.assert_allclose(jnp.dot(g, v), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_vmapped_experiments_and_jit():
    # Several experiments differing in a known input (here the source A), solved
    # side by side: vmap over params, gradients through all of them.
    ode, params = _reaction_diffusion()
    amplitudes = jnp.array([0.5, 1.0, 1.5])

    def one(p, amplitude):
        p = jax.tree.map(lambda v: v, p)
        p.values["A"] = amplitude
        return sm.steady_state(ode, jnp.zeros(ode.n), p).u

    batched = jax.jit(jax.vmap(one, in_axes=(None, 0)))(params, amplitudes)
    for i, amplitude in enumerate(amplitudes):
        np.testing.assert_allclose(batched[i], one(params, amplitude), rtol=1e-10)
    grad = jax.jit(
        jax.grad(lambda p: jnp.sum(jax.vmap(one, in_axes=(None, 0))(p, amplitudes)))
    )(params)
    assert np.isfinite(grad.values["D"])


# -- failures -----------------------------------------------------------------


def test_max_steps_raises_with_residual_and_iterations():
    ode, params = _reaction_diffusion()
    with pytest.raises(
        sm.SteadyStateError,
        match=r"did not converge in 2 iterations \(`max_steps=2`; residual norm",
    ):
        sm.steady_state(ode, jnp.zeros(ode.n), params, solver=sm.Newton(max_steps=2))


def _singular():
    # du/dt = (v - u + 1, u - v + 2): the Jacobian is singular everywhere and
    # there is no root.
    u, v = sm.states("u v", t)
    return sm.lower(
        sm.Model([sp.Eq(u.diff(t), v - u + 1), sp.Eq(v.diff(t), u - v + 2)])
    )


@pytest.mark.parametrize("linear_solver", ["dense", "sparse"])
def test_singular_jacobian_raises(linear_solver):
    f, params = _singular()
    with pytest.raises(sm.SteadyStateError, match="singular"):
        sm.steady_state(
            f, jnp.zeros(2), params, solver=sm.Newton(linear_solver=linear_solver)
        )


def test_levenberg_marquardt_minimum_that_is_not_a_root():
    (u,) = sm.states("u", t)
    f, params = sm.lower(sm.Model([sp.Eq(u.diff(t), u**2 + 1)]))
    with pytest.raises(sm.SteadyStateError, match="residual norm 1"):
        sm.steady_state(f, jnp.array([0.3]), params, solver=sm.LevenbergMarquardt())


def test_failure_without_throw_and_under_jit():
    ode, params = _reaction_diffusion()
    method = sm.Newton(max_steps=2)
    sol = sm.steady_state(ode, jnp.zeros(ode.n), params, solver=method, throw=False)
    assert not bool(sol.converged)
    assert int(sol.num_steps) == 2
    solve = jax.jit(
        lambda p: sm.steady_state(ode, jnp.zeros(ode.n), p, solver=method).u
    )
    with pytest.raises(Exception, match="symml.SteadyStateError"):
        jax.block_until_ready(solve(params))


def test_failed_solve_without_throw_has_zero_gradient():
    # Two experiments: one converges within two Newton steps, one does not.
    # Masking the failed one out of a loss leaves the other's exact gradient
    # (w* = (s / k)^(1/3), dw*/dk = -w* / (3k)), not a NaN.
    (w,) = sm.states("w", t)
    k, s = sp.symbols("k s")
    f, params = sm.lower(
        sm.Model(
            [sp.Eq(w.diff(t), -k * w**3 + s)],
            parameters={k: sm.trainable(1.0), s: sm.trainable(0.0)},
        )
    )
    method = sm.Newton(max_steps=2)

    def loss(p, sources):
        def one(source):
            q = sm.Params({**p.values, "s": source}, p.networks)
            sol = sm.steady_state(f, jnp.ones(1), q, solver=method, throw=False)
            return jnp.where(sol.converged, sol.u[0], 0.0), sol.converged

        us, ok = jax.vmap(one)(sources)
        return jnp.sum(us), ok

    (value, ok), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        params, jnp.array([1.0, 8.0])
    )
    assert ok.tolist() == [True, False]
    np.testing.assert_allclose(value, 1.0, rtol=1e-10)
    np.testing.assert_allclose(grad.values["k"], -1.0 / 3.0, rtol=1e-8)


def test_bad_input():
    ode, params = _reaction_diffusion()
    with pytest.raises(sm.SteadyStateInputError, match=r"shape \(5,\).*\(16,\)"):
        sm.steady_state(ode, jnp.zeros(5), params)
    with pytest.raises(sm.SteadyStateInputError, match="`solver` must be"):
        sm.steady_state(ode, jnp.zeros(ode.n), params, solver="newton")
    with pytest.raises(sm.SteadyStateInputError, match="`system` must be"):
        sm.steady_state(lambda t, u, p: u, jnp.zeros(3))
    with pytest.raises(sm.SteadyStateInputError, match="needs `params=`"):
        sm.steady_state(ode, jnp.zeros(ode.n))
    with pytest.raises(sm.SteadyStateInputError, match="missing: u"):
        sm.steady_state(ode, {"v": np.zeros(16)}, params)
    with pytest.raises(sm.SteadyStateInputError, match="`adjoint` must be"):
        sm.steady_state(ode, jnp.zeros(ode.n), params, adjoint="backsolve")
    with pytest.raises(sm.SteadyStateInputError, match="`linear_solver` must be"):
        sm.steady_state(
            ode, jnp.zeros(ode.n), params, solver=sm.Newton(linear_solver="qr")
        )
    with pytest.raises(sm.SteadyStateInputError, match="`atol` of `Newton`"):
        sm.Newton(atol=-1.0)
    with pytest.raises(sm.SteadyStateInputError, match="`max_steps` of `Newton`"):
        sm.Newton(max_steps=2.5)
    with pytest.raises(sm.SteadyStateInputError, match="`polish` of"):
        sm.IntegrateToSteady(polish=sm.LevenbergMarquardt())
    guess = sm.SkipGuess(2, ode.n, key=jr.PRNGKey(0))
    with pytest.raises(sm.SteadyStateInputError, match="needs `inputs=`"):
        sm.steady_state(ode, guess, params)
    with pytest.raises(sm.SteadyStateInputError, match=r"shape \(3,\)"):
        sm.steady_state(ode, guess, params, inputs=jnp.zeros(3))
    with pytest.raises(sm.SteadyStateInputError, match="`n` of `SkipGuess`"):
        sm.SkipGuess(2, 0, key=jr.PRNGKey(0))


def test_auto_linear_solver_switches_to_sparse():
    for n, expected in (
        (SPARSE_FROM - 1, ColoredLU),
        (SPARSE_FROM, sm.sparsity.SparseLU),
    ):
        ode, _ = _poisson(n)
        problem = _Problem(ode, ode.n)
        assert isinstance(problem.linear_solver("auto"), expected)
    lu = lx.LU()
    assert problem.linear_solver(lu) is lu


# -- skip guesses ---------------------------------------------------------------


@pytest.mark.slow
def test_skip_guess_reduces_iterations():
    # The true bistable reaction u - u³: from zero, Newton wanders before the
    # quadratic convergence sets in.
    (u,) = sm.states("u", t, x)
    a, b = sp.symbols("A B")
    model = sm.Model(
        [
            sp.Eq(
                u.diff(t),
                0.1 * u.diff(x, 2) + u - u**3 + a * sp.sin(sp.pi * x) + b * x,
            )
        ],
        parameters={a: sm.trainable(1.0), b: sm.trainable(0.3)},
        domain={x: (0, 1)},
        boundary="dirichlet",
        conditions=[sp.Eq(u.subs(x, 0), 0.2), sp.Eq(u.subs(x, 1), b)],
    )
    ode = sm.discretize(model, {x: 24})
    params = sm.init_params(model, key=jr.PRNGKey(0))
    sources = jnp.stack(
        [jnp.linspace(0.5, 2.0, 6), jnp.linspace(0.1, 0.6, 6)], axis=1
    )  # (A, B) per experiment

    def solve(p, inputs, guess):
        p = jax.tree.map(lambda v: v, p)
        p.values["A"], p.values["B"] = inputs[0], inputs[1]
        return sm.steady_state(ode, guess, p, inputs=inputs)

    zero = jnp.zeros(ode.n)
    roots = jax.vmap(lambda s: solve(params, s, zero).u)(sources)
    skip = sm.SkipGuess(
        2, ode.n, hidden=(16,), key=jr.PRNGKey(1), offset=jnp.mean(roots, 0)
    )
    opt = optax.adam(1e-2)
    state = opt.init(skip)

    @jax.jit
    def step(skip, state):
        loss, grad = jax.value_and_grad(
            lambda g: jnp.mean((jax.vmap(g)(sources) - roots) ** 2)
        )(skip)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(skip, updates), state, loss

    for _ in range(300):
        skip, state, loss = step(skip, state)
    iterations = jax.vmap(lambda s: solve(params, s, zero).num_steps)(sources)
    skipped = jax.vmap(lambda s: solve(params, s, skip).num_steps)(sources)
    same = jax.vmap(lambda s: solve(params, s, skip).u)(sources)
    np.testing.assert_allclose(same, roots, atol=1e-9)
    assert float(jnp.mean(skipped)) * 2 <= float(jnp.mean(iterations))


# -- fitting to steady states ---------------------------------------------------


def _decay_with_source():
    """du/dt = -k u + s (s an input of each experiment): u* = s / k."""
    (u,) = sm.states("u", t)
    k, s = sp.symbols("k s")
    model = sm.Model(
        [sp.Eq(u.diff(t), -k * u + s)],
        parameters={k: sm.trainable(1.0), s: 0.0},
    )
    return model, u, k, s


@pytest.mark.slow
def test_fit_recovers_a_parameter_from_equilibria():
    model, u, k, s = _decay_with_source()
    sources = np.array([0.5, 1.0, 2.0, 3.0])
    data = sm.SteadyData({u: sources / 2.5}, inputs={s: sources})
    # `SteadyFit` is the default method for steady data.
    result = sm.fit(model, data, steps=0, lbfgs_steps=30, progress=False)
    assert isinstance(result, sm.SteadyFitResult)
    assert isinstance(result.method, sm.SteadyFit)
    np.testing.assert_allclose(result.parameter_values()[k], 2.5, rtol=1e-6)
    new = result.predict({s: [4.0, 5.0]})
    np.testing.assert_allclose(new[:, 0], [1.6, 2.0], rtol=1e-6)
    assert result.final_loss < 1e-12


@pytest.mark.slow
def test_fit_network_samples_and_skip_guess():
    (u,) = sm.states("u", t)
    s = sp.Symbol("s")
    R = sm.Unknown("R", [u], hidden=(4,))
    model = sm.Model([sp.Eq(u.diff(t), -u + R[0] + s)], parameters={s: 0.0})
    sources = np.linspace(0.5, 2.0, 5)
    # The truth R(u) = u / 2: u* = 2 s.
    data = sm.SteadyData({u: 2 * sources}, inputs={s: sources})
    result = sm.fit(
        model,
        data,
        method=sm.SteadyFit(guess="skip", skip_hidden=(8,)),
        steps=20,
        lbfgs_steps=0,
        progress=False,
    )
    assert isinstance(result.guess, sm.SkipGuess)
    assert len(result.history["adam"]) == 21  # and the loss after the last step
    inputs, outputs = result.unknown_samples()["R"]
    assert inputs.shape == (5, 1) and outputs.shape == (5, 1)
    # At each fitted steady state, whatever the network, R(u) = u - s.
    np.testing.assert_allclose(inputs[:, 0], result.predict()[:, 0])
    np.testing.assert_allclose(outputs[:, 0], inputs[:, 0] - sources, atol=1e-8)


def test_fit_stops_on_a_failed_solve():
    (w,) = sm.states("w", t)
    k, s = sp.symbols("k s")
    model = sm.Model(
        [sp.Eq(w.diff(t), -k * w**3 + s)], parameters={k: sm.trainable(1.0), s: 0.0}
    )
    data = sm.SteadyData({w: [1.0, 2.0]}, inputs={s: [1.0, 8.0]})
    method = sm.SteadyFit(solver=sm.Newton(max_steps=2), guess=np.array([1e-3]))
    with pytest.raises(sm.FitError, match="steady_state_solves") as info:
        sm.fit(model, data, method=method, steps=3, lbfgs_steps=0, progress=False)
    assert isinstance(info.value.result, sm.SteadyFitResult)


def test_steady_data_and_fit_errors():
    model, u, k, s = _decay_with_source()
    with pytest.raises(sm.DataError, match="numbers of experiments differ"):
        sm.SteadyData({u: [1.0, 2.0]}, inputs={s: [1.0, 2.0, 3.0]})
    with pytest.raises(sm.DataError, match="non-finite"):
        sm.SteadyData({u: [1.0, np.nan]})
    with pytest.raises(sm.DataError, match="non-empty mapping"):
        sm.SteadyData({})
    with pytest.raises(sm.DataError, match="shape \\(2, 2\\)"):
        sm.SteadyData({u: [1.0, 2.0]}, inputs={s: [[1.0, 2.0], [3.0, 4.0]]})

    def fit(data, **options):
        return sm.fit(model, data, method=sm.SteadyFit(**options), steps=1)

    with pytest.raises(sm.DataError, match="not a parameter of the model"):
        fit(sm.SteadyData({u: [1.0]}, inputs={"q": [1.0]}))
    with pytest.raises(sm.DataError, match="trainable parameter"):
        fit(sm.SteadyData({u: [1.0]}, inputs={k: [1.0]}))
    with pytest.raises(sm.DataError, match="not a state"):
        fit(sm.SteadyData({"v": [1.0]}, inputs={s: [1.0]}))
    with pytest.raises(sm.DataError, match="has shape \\(3,\\)"):
        fit(sm.SteadyData({u: np.ones((2, 3))}, inputs={s: [1, 2]}))
    with pytest.raises(sm.FitError, match="needs `data=symml.SteadyData"):
        fit(sm.Data([0.0, 1.0], {u: [1.0, 2.0]}))
    with pytest.raises(sm.FitError, match="`guess='x'` of `SteadyFit`"):
        sm.SteadyFit(guess="x")
    with pytest.raises(sm.FitError, match="`solver` of `SteadyFit`"):
        sm.SteadyFit(solver="newton")
    with pytest.raises(sm.FitError, match="`skip_weight` of `SteadyFit`"):
        sm.SteadyFit(skip_weight=-1)
    with pytest.raises(sm.FitError, match="no `inputs`"):
        fit(sm.SteadyData({u: [1.0]}), guess="skip")
    with pytest.raises(sm.FitError, match="discretise a PDE"):
        ode, _ = _poisson(8)
        sm.fit(ode.model, sm.SteadyData({"u": np.zeros((1, 8))}), method="steady")


# -- the example and the benchmark ------------------------------------------------


@pytest.mark.slow
def test_example_quick(tmp_path):
    example = load_example("steady_reaction")
    summary = example.main(["--quick", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["D"] == summary["D"] and np.isfinite(written["D"])
    assert set(written["expression"]) == {"R"}
    assert written["wall_seconds"] > 0
    assert (tmp_path / "equations.tex").read_text().strip()
    assert (tmp_path / "states.png").exists() and (tmp_path / "reaction.png").exists()


@pytest.mark.slow
def test_benchmark_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "steady_state.py"), "--quick"]
        + ["--seed", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "side by side" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["implicit_vs_unrolled"]["relative_difference"] < 1e-6
    assert all(row["sparse_s"] > 0 for row in summary["sparse_vs_dense"])
    rows = summary["skip_guess"]["rows"]
    assert rows["skip"]["newton_iterations"] > 0 and rows["skip"]["converged"] == 8
