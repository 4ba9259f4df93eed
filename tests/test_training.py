import json
import math

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml as sm

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("training")

t = sp.Symbol("t")


def _decay_data(k=0.7, x0=2.0, n=21):
    ts = np.linspace(0.0, 3.0, n)
    return ts, x0 * np.exp(-k * ts)


@pytest.mark.slow
def test_fit_recovers_a_parameter():
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(0.2)})
    ts, xs = _decay_data()
    result = sm.fit(
        model, sm.Data(ts, {x: xs}), steps=200, learning_rate=0.05, lbfgs_steps=100
    )
    assert result.parameter_values()[k] == pytest.approx(0.7, rel=1e-5)
    assert np.allclose(result.predict(ts)[x], xs, rtol=1e-5)
    assert set(result.history) == {"adam", "lbfgs"}
    assert result.final_loss < 1e-9
    assert isinstance(result, sm.UDEResult) and isinstance(result, sm.FitResult)


# A fit to convergence (Adam then L-BFGS) of its own: end to end.
@pytest.mark.slow
def test_fit_learns_an_unobserved_initial_state():
    # x' = -x + y, y' = -0.5 y with only x observed: y(0) = 1.5 is learned.
    x, y = sm.states("x y", t)
    model = sm.Model([sp.Eq(x.diff(t), -x + y), sp.Eq(y.diff(t), -0.5 * y)])
    ts = np.linspace(0.0, 4.0, 30)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(lambda t, u, a: jnp.stack([-u[0] + u[1], -0.5 * u[1]])),
        dfx.Tsit5(),
        0.0,
        4.0,
        None,
        jnp.array([1.0, 1.5]),
        saveat=dfx.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
    )
    data = sm.Data(ts, {"x": np.asarray(sol.ys[:, 0])})
    result = sm.fit(
        model,
        data,
        method=sm.SolveInLoop(initial={y: 0.1}),
        steps=300,
        learning_rate=0.05,
        lbfgs_steps=100,
    )
    assert float(result.initial_states[0][1]) == pytest.approx(1.5, rel=1e-4)


def _small_ude():
    x, y = sm.states("x y", t)
    U = sm.Unknown("U", inputs=[x, y], outputs=2, hidden=[8])
    model = sm.Model(
        [sp.Eq(x.diff(t), 1.3 * x + U[0]), sp.Eq(y.diff(t), -1.8 * y + U[1])]
    )
    ts = np.arange(0.0, 2.01, 0.25)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(
            lambda t, u, a: jnp.stack(
                [1.3 * u[0] - 0.9 * u[0] * u[1], 0.8 * u[0] * u[1] - 1.8 * u[1]]
            )
        ),
        dfx.Tsit5(),
        0.0,
        2.0,
        None,
        jnp.array([2.0, 1.0]),
        saveat=dfx.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
    )
    return model, sm.Data.from_array(ts, np.asarray(sol.ys), [x, y]), U


@pytest.fixture(scope="module")
def small_ude_fits():
    model, data, _ = _small_ude()
    return [sm.fit(model, data, seed=3, steps=60, lbfgs_steps=0) for _ in range(2)]


@pytest.mark.slow
def test_ude_fit_is_reproducible_and_reduces_the_loss(small_ude_fits):
    a, b = small_ude_fits
    np.testing.assert_array_equal(
        a.params.networks["U"].weights[0], b.params.networks["U"].weights[0]
    )
    np.testing.assert_array_equal(a.history["adam"], b.history["adam"])
    assert a.final_loss < 0.5 * a.history["adam"][0]


@pytest.mark.slow
def test_unknown_samples_and_discovery_interface(small_ude_fits):
    result = small_ude_fits[0]
    samples = result.unknown_samples(n=50)
    X, Y = samples["U"]
    assert X.shape == (50, 2) and Y.shape == (50, 2)
    # The samples are the network evaluated at the predicted states.
    traj = result.predict(np.linspace(0.0, 2.0, 50)).ys
    np.testing.assert_allclose(X, traj, rtol=1e-12)
    net = result.params.networks["U"]
    np.testing.assert_allclose(Y[7], np.asarray(net(jnp.asarray(X[7]))), rtol=1e-12)


@pytest.mark.slow
def test_non_finite_loss_is_reported_with_the_step_and_last_good_params():
    # x' = k x^2 blows up in finite time once k grows: the solve fails.
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), k * x**2)], parameters={k: sm.trainable(0.1)})
    ts = np.linspace(0.0, 1.0, 11)
    data = sm.Data(ts, {x: 1.0 + 50.0 * ts})
    with pytest.raises(sm.FitError, match=r"non-finite at step \d+ of the `adam`") as e:
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(max_steps=64),
            steps=200,
            learning_rate=0.5,
            lbfgs_steps=0,
        )
    assert "solver" in str(e.value) or "`x`" in str(e.value)
    good = e.value.result
    assert math.isfinite(good.parameter_values()[k])
    assert all(np.all(np.isfinite(h)) for h in good.history.values())


@pytest.mark.parametrize(
    "t_values, values, match",
    [
        ([0.0], {"x": [1.0]}, "at least two times"),
        ([0.0, 2.0, 1.0], {"x": [1.0, 2.0, 3.0]}, "strictly increasing"),
        ([0.0, 1.0], {"x": [1.0, 2.0, 3.0]}, r"shape \(3,\); expected \(2,\)"),
        ([0.0, 1.0], {"x": [1.0, np.nan]}, "non-finite value"),
        ([0.0, np.inf], {"x": [1.0, 2.0]}, "non-finite times"),
        ([0.0, 1.0], {}, "non-empty mapping"),
        ([0.0, 1.0], {3: [1.0, 2.0]}, "keyed by state"),
    ],
)
def test_bad_data(t_values, values, match):
    with pytest.raises(sm.DataError, match=match):
        sm.Data(t_values, values)


def test_data_naming_a_missing_state():
    (x,) = sm.states("x", t)
    model = sm.Model([sp.Eq(x.diff(t), -x)])
    with pytest.raises(sm.DataError, match="`z`, which is not a state"):
        sm.fit(model, sm.Data([0.0, 1.0], {"z": [1.0, 0.5]}))


def test_bad_fit_options():
    (x,) = sm.states("x", t)
    model = sm.Model([sp.Eq(x.diff(t), -x)])
    data = sm.Data([0.0, 1.0], {x: [1.0, 0.4]})
    with pytest.raises(sm.FitError, match="not a diffrax ODE solver"):
        sm.SolveInLoop(solver="RungeKutta99")
    with pytest.raises(sm.FitError, match="`adjoint='magic'` is not known"):
        sm.SolveInLoop(adjoint="magic")
    with pytest.raises(
        sm.FitError, match=r"`solver` is an option of the `SolveInLoop`"
    ):
        sm.fit(model, data, solver="Tsit5")
    with pytest.raises(sm.FitError, match=r"unknown option\(s\) `colour`"):
        sm.fit(model, data, colour="red")
    with pytest.raises(sm.FitError, match="needs observations"):
        sm.fit(model)
    with pytest.raises(sm.DataError, match="a `symml.Data` or a list"):
        sm.fit(model, {"x": [1.0]})


def test_lotka_volterra_example_quick(tmp_path):
    from helpers import load_example

    lv = load_example("lotka_volterra")
    summary = lv.main(["--quick", "--out", str(tmp_path), "--no-plot"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    x, y = sm.states("x y", t)
    rhs = {}
    for name, output in summary["unknowns"].items():
        # The reported expression is the sum of the reported terms, and the
        # flags and errors follow from the terms and the truth.
        local = {"x": x.func, "y": y.func, "t": t}
        terms = {sp.sympify(k, local): v for k, v in output["terms"].items()}
        expr = sp.sympify(output["expression"], local)
        residual = sp.expand(expr - sum(c * k for k, c in terms.items()))
        scale = max([abs(c) for c in terms.values()] + [1.0])
        assert all(
            abs(float(c)) < 1e-12 * scale
            for c in residual.as_coefficients_dict().values()
        )
        truth = output["true_terms"]
        assert output["terms_exact"] == (set(output["terms"]) == set(truth))
        for k, v in output["coefficient_relative_errors"].items():
            assert v == pytest.approx(
                abs(output["terms"][k] - truth[k]) / abs(truth[k])
            )
        rhs[name] = expr
    # The LaTeX written is the recovered model's.
    names = {"x": x.func, "y": y.func, "t": t}
    final = sm.Model(
        [
            sp.Eq(x.diff(t), lv.ALPHA * x + sp.sympify(rhs["U_0(x(t), y(t))"], names)),
            sp.Eq(y.diff(t), -lv.DELTA * y + sp.sympify(rhs["U_1(x(t), y(t))"], names)),
        ]
    )
    assert (tmp_path / "equations.tex").read_text().strip() == sm.to_latex(
        final
    ).strip()
    assert summary["wall_time_seconds"] > 0


# L-BFGS to convergence through segmented solves, a fit compiled for this test
# alone; the fast subset fits with Adam and L-BFGS above.
@pytest.mark.slow
def test_multiple_shooting_recovers_a_parameter_and_joins_segments():
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(0.2)})
    ts, xs = _decay_data()
    result = sm.fit(
        model,
        sm.Data(ts, {x: xs}),
        method=sm.SolveInLoop(shooting=4),
        phases=[sm.lbfgs(200)],
    )
    assert result.parameter_values()[k] == pytest.approx(0.7, rel=1e-4)
    # The continuity term is part of the loss, and it has been driven to zero.
    assert result.final_loss < 1e-8
    with pytest.raises(sm.FitError, match="`shooting=40` segments do not fit"):
        sm.fit(model, sm.Data(ts, {x: xs}), method=sm.SolveInLoop(shooting=40))


# Each scheme compiles the penalty, the loss and its gradient on its own; the
# fast subset keeps the Taylor case, and test_derivatives.py checks the
# forward scheme's derivatives of networks against nested jax.jacfwd.
@pytest.mark.parametrize(
    "scheme", [pytest.param("forward", marks=pytest.mark.slow), "taylor"]
)
@pytest.mark.slow
def test_penalty_on_a_derivative_of_an_unknown(scheme):
    import equinox as eqx
    import jax

    model, data, U = _small_ude()
    x, y = model.states
    penalty = sm.Penalty(
        U[0].diff(x) ** 2 + U[1].diff(y) ** 2,
        over={x: (0.0, 3.0), y: (0.0, 3.0)},
        weight=0.5,
        points=64,
    )
    method = sm.SolveInLoop(penalties=[penalty], derivatives=scheme)
    problem = method.prepare(model, data, seed=0, dtype=jnp.float64, init=None)
    trainable, static = problem.trainable, problem.static
    (compiled,) = static.penalties
    # Evaluated compiled: eager calls dispatch every operation on its own.
    value = eqx.filter_jit(compiled)

    # The penalty's value: the mean of the squared input derivatives of the
    # network at the sample points, weighted.
    net = trainable.params.networks["U"]
    jac = jax.vmap(jax.jacfwd(net))(compiled.points)
    expected = float(0.5 * np.mean(jac[:, 0, 0] ** 2 + jac[:, 1, 1] ** 2))
    assert float(value(trainable.params)) == pytest.approx(expected, rel=1e-12)
    terms = eqx.filter_jit(problem.loss)(trainable, static)[1]
    assert float(terms["penalty 0"]) == pytest.approx(expected, rel=1e-12)

    # Its gradient with respect to the weights, against central differences.
    grad = eqx.filter_jit(eqx.filter_grad(compiled))(trainable.params)
    arrays, rest = eqx.partition(trainable.params, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(arrays)
    rng = np.random.default_rng(0)
    direction = jax.tree.unflatten(
        treedef, [jnp.asarray(rng.standard_normal(a.shape)) for a in leaves]
    )

    def along(h, direction=direction, arrays=arrays, rest=rest, value=value):
        moved = jax.tree.map(lambda w, dw: w + h * dw, arrays, direction)
        return float(value(eqx.combine(moved, rest)))

    h = 1e-4
    fd = (-along(2 * h) + 8 * along(h) - 8 * along(-h) + along(-2 * h)) / (12 * h)
    ad = sum(
        float(jnp.vdot(g, d))
        for g, d in zip(
            jax.tree.leaves(eqx.filter(grad, eqx.is_inexact_array)),
            jax.tree.leaves(direction),
            strict=True,
        )
    )
    assert ad == pytest.approx(fd, rel=1e-6)


def test_penalty_errors():
    model, data, U = _small_ude()
    x, y = model.states
    with pytest.raises(sm.FitError, match="which `over=` gives no range"):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(
                penalties=[sm.Penalty(U[0].diff(x) ** 2, over={x: (0, 1)})]
            ),
        )
    with pytest.raises(sm.FitError, match="neither a state nor"):
        sm.fit(
            model,
            data,
            method=sm.SolveInLoop(
                penalties=[sm.Penalty(U[0] ** 2, over={sp.Symbol("z"): (0, 1)})]
            ),
        )
    with pytest.raises(sm.FitError, match="list of `symml.Penalty`"):
        sm.SolveInLoop(penalties=[U[0] ** 2])


@pytest.mark.parametrize("phase", [sm.adam(1), sm.lbfgs(1)])
@pytest.mark.slow
def test_optimiser_chunk_compiles_once(phase):
    # Parameters made from Python numbers and `opt.init`'s state are weakly
    # typed, a step's outputs are not: the loop must not compile twice, and
    # the number of steps must not change what is compiled.
    import dataclasses

    from symml.training._loop import CHUNK, Problem, optimize
    from symml.training._progress import Progress

    traces = []

    def loss_fn(params, static):
        traces.append(None)
        return jnp.sum((params["k"] - static) ** 2), {}

    steps_of = {}
    for steps in (1, 4, CHUNK + 3):
        traces.clear()
        problem = Problem(
            loss=loss_fn,
            trainable={"k": jnp.asarray(0.2)},
            static=jnp.asarray(0.7),
            result=lambda x, history, static: (x, history),
        )
        _, history, _ = optimize(
            problem,
            [dataclasses.replace(phase, steps=steps, tolerance=0.0)],
            progress=Progress(False),
        )
        # One loss per step, and one more for the loss of the final update.
        assert len(history[phase.name]) == steps + 1
        steps_of[steps] = len(traces)
    # Tracing (once per compilation) does not grow with the number of steps.
    assert steps_of[CHUNK + 3] == steps_of[4] == steps_of[1] > 0
