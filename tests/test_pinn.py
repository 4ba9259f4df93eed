import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp
from helpers import load_example

import symml as sm
from symml.training._sampling import sample_box

t, x = sp.symbols("t x")


def test_pinn_decay_example_quick(tmp_path):
    summary = load_example("pinn_decay").main(["--quick", "--out", str(tmp_path)])
    assert summary["tanh"]["max_error"] < 1e-3
    # relu cannot follow -y: its error stays far larger.
    assert summary["relu"]["max_error"] > 10 * summary["tanh"]["max_error"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def _burgers_problem(scheme):
    """The loss exactly as `fit` builds it: residual and condition terms at
    the collocation points `PhysicsInformed` draws."""
    u = sm.Field("u", [t, x], hidden=[16, 16], activation="tanh")
    nu = 0.01 / sp.pi
    model = sm.Model(
        [sp.Eq(u.diff(t) + u * u.diff(x), nu * u.diff(x, 2))],
        conditions=[sp.Eq(u.subs(t, 0), -sp.sin(sp.pi * x))],
        domain={t: (0, 1), x: (-1, 1)},
    )
    method = sm.PhysicsInformed(derivatives=scheme, points=64, boundary_points=16)
    return method.prepare(model, None, seed=1, dtype=jnp.float64, init=None)


def _count(jaxpr, name: str) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for inner in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _count(inner, name)
    return count


def test_pinn_taylor_loss_passes_the_network_once_per_point_set():
    """u, u_t, u_x and u_xx at the collocation points come from one Taylor
    pass (its primal is u): one tanh per hidden layer there, and one per layer
    at the initial condition's points."""
    problem = _burgers_problem("taylor")
    jaxpr = jax.make_jaxpr(lambda p: problem.loss(p, problem.static)[0])(
        problem.trainable
    )
    assert _count(jaxpr.jaxpr, "tanh") == 2 * 2


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param("reverse", marks=pytest.mark.slow),
        pytest.param("forward", marks=pytest.mark.slow),
        "taylor",
    ],
)
@pytest.mark.slow
def test_pinn_loss_gradient_matches_central_differences(scheme):
    problem = _burgers_problem(scheme)
    params = problem.trainable

    # Compiled, as `fit` runs it (eager calls dispatch every operation on
    # their own, and the central differences below call it twelve times).
    @eqx.filter_jit
    def loss(p):
        return problem.loss(p, problem.static)[0]

    # The loss is the residual the model states, evaluated independently with
    # nested jax.jacfwd of the network at the same points.
    @eqx.filter_jit
    def reference(net, pts, ic):
        first = jax.vmap(jax.jacfwd(lambda p: net(p)[0]))(pts)
        second = jax.vmap(jax.hessian(lambda p: net(p)[0]))(pts)
        value = jax.vmap(lambda p: net(p)[0])(pts)
        residual = first[:, 0] + value * first[:, 1] - 0.01 / np.pi * second[:, 1, 1]
        cond = jax.vmap(lambda p: net(jnp.array([0.0, p[0]]))[0])(ic) + jnp.sin(
            np.pi * ic[:, 0]
        )
        return jnp.mean(residual**2) + jnp.mean(cond**2)

    expected = reference(
        params.networks["u"], problem.static.points[0], problem.static.points[1]
    )
    assert float(loss(params)) == pytest.approx(float(expected), rel=1e-10)

    grad = eqx.filter_jit(eqx.filter_grad(loss))(params)
    arrays, static = eqx.partition(params, eqx.is_inexact_array)
    g_arrays = eqx.filter(grad, eqx.is_inexact_array)
    for seed in range(3):
        keys = jr.split(jr.PRNGKey(seed), len(jax.tree.leaves(arrays)))
        leaves, treedef = jax.tree.flatten(arrays)
        direction = jax.tree.unflatten(
            treedef, [jr.normal(k, a.shape) for k, a in zip(keys, leaves, strict=True)]
        )

        def along(h, direction=direction):
            moved = jax.tree.map(lambda w, dw: w + h * dw, arrays, direction)
            return loss(eqx.combine(moved, static))

        h = 1e-4
        # Fourth-order central difference: error O(h^4) ~ 1e-16 relative.
        fd = (-along(2 * h) + 8 * along(h) - 8 * along(-h) + along(-2 * h)) / (12 * h)
        ad = sum(
            jnp.vdot(g, d)
            for g, d in zip(
                jax.tree.leaves(g_arrays), jax.tree.leaves(direction), strict=True
            )
        )
        assert abs(float(ad) - float(fd)) <= 1e-6 * abs(float(fd))


def test_relu_with_second_derivative_warns():
    u = sm.Field("u", [t, x], activation="relu", hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        conditions=[sp.Eq(u.subs(t, 0), sp.sin(sp.pi * x))],
        domain={t: (0, 1), x: (0, 1)},
    )
    with pytest.warns(sm.ZeroDerivativeWarning, match=r"network `u`.*`relu`.*order 2"):
        sm.fit(
            model,
            method=sm.PhysicsInformed(points=16, boundary_points=8),
            steps=1,
            lbfgs_steps=0,
        )


@pytest.mark.slow
def test_conditions_dirichlet_neumann_and_periodic():
    # Two independent problems in one model, fitted together (one compiled
    # loss instead of two):
    # u'' = -pi^2 sin(pi x) on [0, 1]: Dirichlet at 0, Neumann at 1
    # (u'(1) = -pi), exact u = sin(pi x).
    # Periodic: v'' = -4 pi^2 cos(2 pi x) with v(0) = v(1), v'(0) = v'(1) and
    # v(0) = 1 pins the constant: v = cos(2 pi x).
    u = sm.Field("u", [x], hidden=[16, 16])
    v = sm.Field("v", [x], hidden=[16, 16])
    model = sm.Model(
        [
            sp.Eq(u.diff(x, 2), -(sp.pi**2) * sp.sin(sp.pi * x)),
            sp.Eq(v.diff(x, 2), -4 * sp.pi**2 * sp.cos(2 * sp.pi * x)),
        ],
        conditions=[
            sp.Eq(u.subs(x, 0), 0),
            sp.Eq(u.diff(x).subs(x, 1), -sp.pi),
            sp.Eq(v.subs(x, 0), v.subs(x, 1)),
            sp.Eq(v.diff(x).subs(x, 0), v.diff(x).subs(x, 1)),
            sp.Eq(v.subs(x, 0), 1),
        ],
        domain={x: (0, 1)},
    )
    method = sm.PhysicsInformed(points=64)
    result = sm.fit(
        model, method=method, steps=500, learning_rate=1e-2, lbfgs_steps=300
    )
    xs = np.linspace(0, 1, 101)
    predicted = result.predict(x=xs)
    assert np.max(np.abs(predicted["u"] - np.sin(np.pi * xs))) < 1e-2
    assert np.max(np.abs(predicted["v"] - np.cos(2 * np.pi * xs))) < 2e-2


@pytest.mark.slow
def test_adaptive_weights_change_and_resampling_is_seeded():
    u = sm.Field("u", [t, x], hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), 0.1 * u.diff(x, 2))],
        conditions=[sp.Eq(u.subs(t, 0), sp.sin(sp.pi * x)), sp.Eq(u.subs(x, 0), 0)],
        domain={t: (0, 1), x: (0, 1)},
    )
    method = sm.PhysicsInformed(
        points=32,
        boundary_points=16,
        adaptive="grad_norm",
        adapt_every=5,
        resample_every=4,
    )
    a, b = (
        sm.fit(model, method=method, seed=1, steps=12, lbfgs_steps=0) for _ in range(2)
    )
    assert a.weights == b.weights
    np.testing.assert_array_equal(a.history["adam"], b.history["adam"])
    # Another seed draws other points and other initial weights (the problem
    # `fit` prepares with it; a third fit would compile its loop again).
    one, two = (
        method.prepare(model, None, seed=seed, dtype=jnp.float64, init=None)
        for seed in (1, 2)
    )
    assert not np.array_equal(one.static.points[0], two.static.points[0])
    first, second = (
        jax.tree.leaves(eqx.filter(p.trainable, eqx.is_inexact_array))
        for p in (one, two)
    )
    assert not all(np.array_equal(u, v) for u, v in zip(first, second, strict=True))
    assert a.weights["equation 0"] == 1.0
    assert a.weights["condition 0"] != 1.0


@pytest.mark.parametrize("method", ["grid", "uniform", "sobol", "halton"])
def test_sampling_covers_the_box(method):
    rng = np.random.default_rng(0)
    pts = sample_box([(0.0, 2.0), (-1.0, 1.0)], 256, method, rng)
    assert pts.shape[1] == 2 and 250 <= pts.shape[0] <= 300
    assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= 2
    assert pts[:, 1].min() >= -1 and pts[:, 1].max() <= 1
    # Every quarter of the box gets points.
    quadrant = (pts[:, 0] > 1).astype(int) * 2 + (pts[:, 1] > 0)
    assert np.bincount(quadrant, minlength=4).min() > 30


def _decay():
    y = sm.Field("y", [t], hidden=[8])
    return y, sm.Model(
        [sp.Eq(y.diff(t), -y)], conditions=[sp.Eq(y.subs(t, 0), 1)], domain={t: (0, 2)}
    )


def test_pinn_errors():
    y, model = _decay()
    with pytest.raises(sm.FitError, match="`sampling='magic'` of `PhysicsInformed`"):
        sm.PhysicsInformed(sampling="magic")
    with pytest.raises(sm.FitError, match="`adaptive='magic'` of `PhysicsInformed`"):
        sm.PhysicsInformed(adaptive="magic")
    with pytest.raises(sm.FitError, match="no term of the loss"):
        sm.fit(model, method=sm.PhysicsInformed(weights={"boundary": 2.0}))
    with pytest.raises(sm.FitError, match="`points` is an option of the"):
        sm.fit(model, points=8)
    with pytest.raises(sm.DataError, match="observes `z`, which is not a field"):
        sm.fit(model, sm.Data([0.0, 1.0], {"z": [1.0, 0.4]}))
    u = sm.Field("u", [t, x], hidden=[8])
    no_x = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x))],
        conditions=[sp.Eq(u.subs(t, 0), x)],
        domain={t: (0, 1)},
    )
    with pytest.raises(sm.FitError, match="`x` has no range"):
        sm.fit(no_x)
    result = sm.fit(model, method=sm.PhysicsInformed(points=8), steps=1, lbfgs_steps=0)
    with pytest.raises(
        sm.FitError, match="needs every independent variable; missing t"
    ):
        result.predict()
    with pytest.raises(sm.FitError, match="got x, which are not variables"):
        result.predict(t=[0.0], x=[0.0])
