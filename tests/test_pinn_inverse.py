"""Physics-informed inverse problems: observations in the loss, discovery from
PINN fits, causal weighting, residual-based sampling, network options and
conditions imposed by construction."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml.training._pinn_options import causal_weights
from symml.training._sampling import residual_draw

t, x = sp.symbols("t x")


def _heat_solution(ts, xs, d=0.1):
    return np.exp(-d * np.pi**2 * ts) * np.sin(np.pi * xs)


def _heat_data(n=200, seed=0, d=0.1):
    rng = np.random.default_rng(seed)
    ts, xs = rng.uniform(size=n), rng.uniform(size=n)
    return ts, xs, _heat_solution(ts, xs, d)


# -- observations ---------------------------------------------------------------


# Trains to accuracy (600 steps); the observation terms are checked by hand
# below, and short fits with data run in the fast subset.
@pytest.mark.slow
def test_data_without_physics_interpolates():
    u = sm.Field("u", [t, x], hidden=[16, 16])
    model = sm.Model(
        [sp.Eq(u.diff(t), 0.1 * u.diff(x, 2))], domain={t: (0, 1), x: (0, 1)}
    )
    ts, xs, us = _heat_data()
    method = sm.PhysicsInformed(points=64, weights={"equation 0": 0.0})
    result = sm.fit(
        model,
        sm.Data.points({t: ts, x: xs}, {u: us}),
        method=method,
        steps=300,
        learning_rate=1e-2,
        lbfgs_steps=300,
    )
    assert result.weights == {"equation 0": 0.0, "data 0: u": 1.0}
    rng = np.random.default_rng(1)
    tt, xx = rng.uniform(0.05, 0.95, 100), rng.uniform(0.05, 0.95, 100)
    error = np.abs(result.predict(t=tt, x=xx)["u"] - _heat_solution(tt, xx))
    assert error.max() < 2e-2


# Trains to accuracy (1800 steps): an end-to-end identification.
@pytest.mark.slow
def test_trainable_coefficient_identified_on_noiseless_data():
    d = sp.Symbol("D")
    u = sm.Field("u", [t, x], hidden=[16, 16])
    model = sm.Model(
        [sp.Eq(u.diff(t), d * u.diff(x, 2))],
        parameters={d: sm.trainable(0.05)},
        domain={t: (0, 1), x: (0, 1)},
    )
    ts, xs, us = _heat_data()
    # `fit(field_model, data)` picks the physics-informed method by default.
    result = sm.fit(
        model,
        sm.Data.points({t: ts, x: xs}, {u: us}),
        steps=800,
        learning_rate=1e-2,
        lbfgs_steps=1000,
    )
    assert isinstance(result, sm.PINNResult)
    assert abs(result.parameter_values()[d] - 0.1) < 1e-3 * 0.1


def test_observation_terms_match_hand_computation():
    # Two fields, an observation of their sum, a flux on the face x = 1 with a
    # noise level per point, and a second data set: each data term is the
    # weighted mean squared error over the variance of the observed values.
    u = sm.Field("u", [t, x], hidden=[8])
    v = sm.Field("v", [t, x], hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2)), sp.Eq(v.diff(t), v.diff(x, 2))],
        domain={t: (0, 1), x: (0, 1)},
    )
    rng = np.random.default_rng(0)
    ts, xs = rng.uniform(size=5), rng.uniform(size=5)
    sums, flux = rng.normal(size=5), rng.normal(size=5)
    sigma = np.array([0.1, 0.2, 0.1, 0.4, 0.1])
    first = sm.Data.points({t: ts, x: xs}, {u + v: sums})
    second = sm.Data.points(
        {t: ts, x: 1.0}, {u.diff(x): flux}, sigma={u.diff(x): sigma}
    )
    method = sm.PhysicsInformed(points=16)
    problem = method.prepare(
        model, [first, second], seed=0, dtype=jnp.float64, init=None
    )
    # Compiled: an eager loss dispatches each operation of the derivatives.
    _, terms = eqx.filter_jit(problem.loss)(problem.trainable, problem.static)
    nets = problem.trainable.networks
    pts = np.stack([ts, xs], axis=1)
    face = np.stack([ts, np.ones(5)], axis=1)
    pred = jax.vmap(lambda p: nets["u"](p)[0] + nets["v"](p)[0])(pts)
    expected = np.mean((np.asarray(pred) - sums) ** 2) / np.var(sums)
    assert float(terms["data 0: u(t, x) + v(t, x)"]) == pytest.approx(
        expected, rel=1e-10
    )
    slope = jax.vmap(jax.grad(lambda p: nets["u"](p)[0]))(face)[:, 1]
    w = 1 / sigma**2
    expected = np.sum(w * (np.asarray(slope) - flux) ** 2) / w.sum() / np.var(flux)
    assert float(terms["data 1: Derivative(u(t, x), x)"]) == pytest.approx(
        expected, rel=1e-10
    )


def test_grad_norm_weights_balance_data_terms():
    u = sm.Field("u", [t, x], hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), 0.1 * u.diff(x, 2))], domain={t: (0, 1), x: (0, 1)}
    )
    ts, xs, us = _heat_data(50)
    result = sm.fit(
        model,
        sm.Data.points({t: ts, x: xs}, {u: us}),
        method=sm.PhysicsInformed(points=32, adaptive="grad_norm", adapt_every=5),
        steps=11,
        lbfgs_steps=0,
    )
    assert result.weights["equation 0"] == 1.0
    assert result.weights["data 0: u"] != 1.0


@pytest.mark.parametrize("network", [None, sm.nets.ModifiedMLP()])
def test_observed_fields_start_at_the_scale_of_their_data(network):
    # A field observed directly starts as mean + std × (the network drawn with
    # the same seed); a field observed only through an expression is left as
    # drawn.
    u = sm.Field("u", [t, x], hidden=[8, 8], network=network)
    v = sm.Field("v", [t, x], hidden=[8, 8], network=network)
    model = sm.Model(
        [sp.Eq(u.diff(t), v.diff(x, 2)), sp.Eq(v.diff(t), u)],
        domain={t: (0, 3), x: (0, 1)},
    )
    rng = np.random.default_rng(0)
    ts, xs = rng.uniform(0, 3, 40), rng.uniform(size=40)
    us = 25.0 + 8.0 * rng.standard_normal(40)
    data = [
        sm.Data.points({t: ts, x: xs}, {u: us}),
        sm.Data.points({t: ts, x: xs}, {u + v: us}),
    ]
    method = sm.PhysicsInformed(points=16)
    problem = method.prepare(model, data, seed=3, dtype=jnp.float64, init=None)
    drawn = sm.init_params(model, key=jr.PRNGKey(3), dtype=jnp.float64).networks
    pts = jnp.asarray(np.stack([ts, xs], axis=1))
    nets = problem.trainable.networks
    scaled = jax.vmap(nets["u"])(pts)[:, 0]
    plain = jax.vmap(drawn["u"])(pts)[:, 0]
    np.testing.assert_allclose(scaled, us.mean() + us.std() * plain, rtol=1e-12)
    np.testing.assert_allclose(
        jax.vmap(nets["v"])(pts), jax.vmap(drawn["v"])(pts), rtol=1e-12
    )


def _decay_inverse():
    # y' = R(y) with R unknown, y observed: R = -y on the fitted field.
    y = sm.Field("y", [t], hidden=[16, 16])
    r = sm.Unknown("R", [y], hidden=[8, 8], input_range=((0.0,), (1.0,)))
    model = sm.Model([sp.Eq(y.diff(t), r[0])], domain={t: (0, 2)})
    ts = np.linspace(0, 2, 41)
    return model, y, r, sm.Data(ts, {"y": np.exp(-ts)})


# Trains to accuracy twice (2000 + 600 steps): end to end, fit to discovery
# to refit.
@pytest.mark.slow
def test_unknown_samples_and_discovery_from_a_pinn_fit():
    model, y, r, data = _decay_inverse()
    result = sm.fit(
        model,
        data,
        method=sm.PhysicsInformed(points=128, sampling="grid"),
        steps=1000,
        learning_rate=1e-2,
        lbfgs_steps=1000,
    )
    samples = result.unknown_samples(64)
    inputs, outputs = samples["R"]
    assert inputs.shape == (64, 1) and outputs.shape == (64, 1)
    # The inputs are the fitted field over the domain: y = e^{-t}, t in [0, 2].
    assert inputs.min() > np.exp(-2) - 1e-2 and inputs.max() < 1 + 1e-2
    np.testing.assert_allclose(outputs[:, 0], -inputs[:, 0], atol=5e-3)
    found = sm.discover(result)
    assert list(found.terms[r[0]]) == [y]
    assert found.terms[r[0]][y] == pytest.approx(-1.0, abs=1e-2)
    # The recovered model refits as a field model with a trainable coefficient.
    refit = sm.fit(
        found.trainable_model(),
        data,
        method=sm.PhysicsInformed(points=128, sampling="grid"),
        steps=300,
        learning_rate=1e-2,
        lbfgs_steps=300,
    )
    ((symbol, value),) = refit.parameter_values().items()
    assert found.coefficient_terms()[symbol][1] == y
    assert value == pytest.approx(-1.0, abs=1e-2)


def test_point_data_and_fit_errors():
    u = sm.Field("u", [t, x], hidden=[8])
    model = sm.Model([sp.Eq(u.diff(t), u.diff(x, 2))], domain={t: (0, 1), x: (0, 1)})
    ts = np.array([0.1, 0.5])

    def fit(data):
        return sm.fit(
            model, data, method=sm.PhysicsInformed(points=8), steps=1, lbfgs_steps=0
        )

    with pytest.raises(sm.DataError, match=r"outside the domain: `x` = 1.5 at point 1"):
        fit(sm.Data.points({t: ts, x: [0.2, 1.5]}, {u: [0.0, 1.0]}))
    w = sm.Field("w", [t, x])
    with pytest.raises(sm.DataError, match=r"`w\(t, x\)`, not a field of the model"):
        fit(sm.Data.points({t: ts, x: ts}, {w: [0.0, 1.0]}))
    with pytest.raises(sm.DataError, match=r"observes `v`, which is not a field"):
        fit(sm.Data.points({t: ts, x: ts}, {"v": [0.0, 1.0]}))
    with pytest.raises(sm.DataError, match="one length"):
        sm.Data.points({t: ts, x: [0.1, 0.2, 0.3]}, {u: [0.0, 1.0]})
    with pytest.raises(sm.DataError, match=r"shape \(2, 2\); expected a 1-D array"):
        sm.Data.points({t: ts, x: ts}, {u: np.zeros((2, 2))})
    with pytest.raises(
        sm.DataError, match=r"observations of `u\(t, x\)` contain 1 non-finite"
    ):
        sm.Data.points({t: ts, x: ts}, {u: [0.0, np.nan]})
    with pytest.raises(sm.DataError, match="coordinates of `x` contain 1 non-finite"):
        sm.Data.points({t: ts, x: [0.0, np.inf]}, {u: [0.0, 1.0]})
    with pytest.raises(sm.DataError, match="`sigma` of `u.*` must be positive"):
        sm.Data.points({t: ts, x: ts}, {u: [0.0, 1.0]}, sigma=0.0)
    with pytest.raises(sm.DataError, match="no coordinates for `x`"):
        fit(sm.Data.points({t: ts}, {u: [0.0, 1.0]}))
    y = sp.Symbol("y")
    with pytest.raises(sm.DataError, match="coordinates for `y`, which are not"):
        fit(sm.Data.points({t: ts, x: ts, y: ts}, {u: [0.0, 1.0]}))
    with pytest.raises(sm.DataError, match="contains no field"):
        fit(sm.Data.points({t: ts, x: ts}, {t + x: [0.0, 1.0]}))
    with pytest.raises(sm.DataError, match="`symml.Data` on times only"):
        fit(sm.Data(ts, {"u": [0.0, 1.0]}))
    with pytest.raises(sm.DataError, match="must be `symml.Data.points"):
        fit({"u": [0.0, 1.0]})
    with pytest.raises(sm.FitError, match="no term of the loss"):
        sm.fit(model, method=sm.PhysicsInformed(weights={"data": 1.0}), steps=1)


# -- causal weighting -------------------------------------------------------------


def test_causal_weights_closed_form():
    losses = jnp.array([0.5, 0.25, 1.0, 0.0])
    w = causal_weights(losses, jnp.asarray(2.0))
    expected = np.exp(-2.0 * np.array([0.0, 0.5, 0.75, 1.75]))
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-14)
    # Constant in the gradient.
    g = jax.grad(lambda s: jnp.sum(causal_weights(s, jnp.asarray(2.0))))(losses)
    assert np.all(np.asarray(g) == 0)


def test_causal_loss_equals_hand_computed_loss():
    y = sm.Field("y", [t], hidden=[8])
    model = sm.Model([sp.Eq(y.diff(t), -y)], domain={t: (0, 2)})
    method = sm.PhysicsInformed(points=8, causal=sm.Causal(epsilon=3.0, chunks=4))
    problem = method.prepare(model, None, seed=0, dtype=jnp.float64, init=None)
    # Two points in each of the four slices of [0, 2].
    ts = np.array([0.1, 0.3, 0.6, 0.9, 1.1, 1.4, 1.6, 1.9])
    static = eqx.tree_at(
        lambda s: s.points, problem.static, (jnp.asarray(ts)[:, None],)
    )
    net = problem.trainable.networks["y"]
    value = np.asarray(jax.vmap(lambda s: net(s)[0])(ts[:, None]))
    slope = np.asarray(jax.vmap(jax.grad(lambda s: net(s)[0]))(ts[:, None]))[:, 0]
    r2 = ((slope + value) ** 2).reshape(4, 2).mean(axis=1)
    before = np.array([0.0, r2[0], r2[0] + r2[1], r2[0] + r2[1] + r2[2]])
    expected = np.mean(np.exp(-3.0 * before) * r2)
    loss, terms = eqx.filter_jit(problem.loss)(problem.trainable, static)
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert float(terms["equation 0"]) == pytest.approx(expected, rel=1e-12)


def test_causal_schedule_advances_when_weights_are_near_one():
    y = sm.Field("y", [t], hidden=[8])
    model = sm.Model(
        [sp.Eq(y.diff(t), -y)], conditions=[sp.Eq(y.subs(t, 0), 1)], domain={t: (0, 1)}
    )
    causal = sm.Causal(epsilon=(1e-3, 1e-2, 1.0), chunks=4, check_every=5)
    result = sm.fit(
        model,
        method=sm.PhysicsInformed(points=32, causal=causal),
        steps=11,
        lbfgs_steps=0,
    )
    # ε = 1e-3 and 1e-2 leave every weight above 0.99 on this easy problem.
    assert result.causal_weights.shape == (4,)
    problem = sm.PhysicsInformed(points=32, causal=causal).prepare(
        model, None, seed=0, dtype=jnp.float64, init=None
    )
    static = problem.between("adam", 5, problem.trainable, problem.static)
    assert int(static.stage) == 1 and float(static.epsilon) == pytest.approx(1e-2)


def test_causal_and_rad_options_are_validated():
    with pytest.raises(sm.FitError, match="`epsilon` of `Causal` must increase"):
        sm.Causal(epsilon=(1.0, 0.1))
    with pytest.raises(sm.FitError, match="`chunks` of `Causal` must be a positive"):
        sm.Causal(chunks=0)
    with pytest.raises(
        sm.FitError, match=r"`tolerance` of `Causal` must be in \(0, 1\)"
    ):
        sm.Causal(tolerance=1.5)
    with pytest.raises(sm.FitError, match="`k` of `RAD` must be a finite number"):
        sm.RAD(k=-1)
    with pytest.raises(sm.FitError, match="`candidates` of `RAD` must be at least 2"):
        sm.RAD(candidates=1)
    with pytest.raises(sm.FitError, match="`base='grid'` of `RAD` is not known"):
        sm.RAD(base="grid")
    with pytest.raises(sm.FitError, match="`causal` of `PhysicsInformed` must be"):
        sm.PhysicsInformed(causal=1.0)
    with pytest.raises(sm.FitError, match="`resample_every` a number"):
        sm.PhysicsInformed(sampling=sm.RAD(), resample_every=None)
    y = sm.Field("y", [t], hidden=[8])
    model = sm.Model([sp.Eq(y.diff(t), -y)], domain={t: (0, 1)})
    with pytest.raises(sm.FitError, match="`variable=s` of `Causal` is not a variable"):
        sm.fit(
            model, method=sm.PhysicsInformed(causal=sm.Causal(variable="s")), steps=1
        )


# -- residual-based adaptive sampling ---------------------------------------------


def test_rad_draw_follows_a_planted_residual():
    rng = np.random.default_rng(0)
    candidates = rng.uniform(size=(4000, 2))
    residual = np.where(candidates[:, 0] > 0.8, 10.0, 0.1)
    drawn = residual_draw(candidates, residual, 500, k=1.0, c=0.1, rng=rng)
    assert drawn.shape == (500, 2)
    # 20 % of the box holds ~ 90 % of the density.
    assert np.mean(drawn[:, 0] > 0.8) > 0.6
    uniform = residual_draw(candidates, residual, 500, k=0.0, c=1.0, rng=rng)
    assert np.mean(uniform[:, 0] > 0.8) < 0.3


def test_rad_resamples_where_the_residual_is_large():
    # u_t = s(t, x) with u starting near 0: the residual is about the source, a
    # narrow bump around x = 0.8.
    u = sm.Field("u", [t, x], hidden=[8])
    source = 50 * sp.exp(-((x - 0.8) ** 2) / 0.002)
    model = sm.Model([sp.Eq(u.diff(t), source)], domain={t: (0, 1), x: (0, 1)})
    method = sm.PhysicsInformed(
        points=256, sampling=sm.RAD(k=2.0, c=0.0, candidates=8), resample_every=10
    )
    problem = method.prepare(model, None, seed=0, dtype=jnp.float64, init=None)
    before = np.asarray(problem.static.points[0])
    static = problem.between("adam", 10, problem.trainable, problem.static)
    after = np.asarray(static.points[0])
    near = lambda p: np.mean(np.abs(p[:, 1] - 0.8) < 0.1)  # noqa: E731
    assert near(before) < 0.3 and near(after) > 0.9


# Four fits (two whole, one interrupted, one resumed), each compiled anew.
@pytest.mark.slow
def test_rad_fit_is_reproducible_and_resumes_bit_for_bit(tmp_path):
    u = sm.Field("u", [t, x], hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), 0.1 * u.diff(x, 2))],
        conditions=[sp.Eq(u.subs(t, 0), sp.sin(sp.pi * x))],
        domain={t: (0, 1), x: (0, 1)},
    )
    method = sm.PhysicsInformed(
        points=64,
        boundary_points=16,
        sampling=sm.RAD(),
        resample_every=5,
        causal=sm.Causal(epsilon=(0.1, 1.0), chunks=4, check_every=5),
    )
    kwargs = dict(method=method, steps=20, lbfgs_steps=0, seed=3)
    full = sm.fit(model, **kwargs)
    again = sm.fit(model, **kwargs)
    np.testing.assert_array_equal(full.history["adam"], again.history["adam"])
    with pytest.raises(KeyboardInterrupt):
        _interrupted_fit(model, kwargs, tmp_path)
    resumed = sm.fit(
        model, checkpoint=tmp_path, checkpoint_every=10, resume=tmp_path, **kwargs
    )
    np.testing.assert_array_equal(full.history["adam"], resumed.history["adam"])


def _interrupted_fit(model, kwargs, directory):
    from symml.training import _checkpoint

    original = _checkpoint.Checkpointer.__call__

    def write_then_stop(self, state):
        original(self, state)
        if state.step >= 10:
            raise KeyboardInterrupt

    _checkpoint.Checkpointer.__call__ = write_then_stop
    try:
        sm.fit(model, checkpoint=directory, checkpoint_every=10, **kwargs)
    finally:
        _checkpoint.Checkpointer.__call__ = original


# -- network options --------------------------------------------------------------


ARCHITECTURES = [
    sm.nets.StandardMLP(),
    sm.nets.StandardMLP(fourier=sm.nets.FourierFeatures(8, scale=2.0)),
    sm.nets.ModifiedMLP(),
    sm.nets.ModifiedMLP(fourier=sm.nets.FourierFeatures(8, scale=1.0)),
]


def _architecture_cases():
    # The Taylor rules meet each architecture's operations; JAX's own nested
    # AD differentiates any of them alike, so it runs on the first in the fast
    # subset and on the others in the full suite.
    for scheme in ("taylor", "forward", "reverse"):
        for i, architecture in enumerate(ARCHITECTURES):
            slow = scheme != "taylor" and i > 0
            marks = pytest.mark.slow if slow else ()
            yield pytest.param(
                architecture, scheme, marks=marks, id=f"{scheme}-architecture{i}"
            )


@pytest.mark.parametrize("architecture, scheme", list(_architecture_cases()))
@pytest.mark.slow
def test_network_options_derivatives_against_nested_jacfwd(
    architecture, scheme, getkey
):
    net = sm.nets.make_network(
        2,
        1,
        (12, 12),
        "tanh",
        key=getkey(),
        in_range=([0, -1], [1, 1]),
        network=architecture,
    )
    point = jnp.array([0.3, -0.4])
    indices = ((0, 0), (1, 0), (0, 2), (1, 1), (2, 1), (0, 3))
    # Compiled: eager nested derivatives dispatch one operation at a time.
    got = jax.jit(
        lambda p: sm.derivatives.get_scheme(scheme).derivatives(net, p, indices)
    )(point)

    def f(p):
        return net(p)[0]

    d1 = jax.jacfwd(f)
    d2 = jax.jacfwd(d1)
    d3 = jax.jacfwd(d2)

    @jax.jit
    def reference(p):
        return [
            f(p),
            d1(p)[0],
            d2(p)[1, 1],
            d2(p)[0, 1],
            d3(p)[0, 0, 1],
            d3(p)[1, 1, 1],
        ]

    expected = reference(point)
    for g, e in zip(got, expected, strict=True):
        assert float(g[0]) == pytest.approx(float(e), rel=1e-9, abs=1e-10)


def test_fourier_features_frozen_unless_trainable(getkey):
    frozen = sm.nets.make_network(
        1,
        1,
        (8,),
        key=getkey(),
        network=sm.nets.StandardMLP(sm.nets.FourierFeatures(4)),
    )
    grad = eqx.filter_grad(lambda n: n(jnp.array([0.2]))[0])(frozen)
    assert np.all(np.asarray(grad.embedding.frequencies) == 0)
    free = sm.nets.make_network(
        1,
        1,
        (8,),
        key=getkey(),
        network=sm.nets.StandardMLP(sm.nets.FourierFeatures(4, trainable=True)),
    )
    grad = eqx.filter_grad(lambda n: n(jnp.array([0.2]))[0])(free)
    assert np.any(np.asarray(grad.embedding.frequencies) != 0)


def test_network_declarations_and_their_errors():
    net = sm.nets.ModifiedMLP(fourier=sm.nets.FourierFeatures(16, scale=2.0))
    u = sm.Field("u", [t, x], hidden=[8, 8], network=net)
    model = sm.Model([sp.Eq(u.diff(t), u.diff(x, 2))], domain={t: (0, 1), x: (0, 1)})
    params = sm.init_params(model, key=jr.PRNGKey(0))
    assert isinstance(params.networks["u"], sm.nets.EmbeddedNetwork)
    assert isinstance(params.networks["u"].body, sm.nets.GatedMLP)
    r = sm.Unknown("R", [u], network=sm.nets.ModifiedMLP(), hidden=[4, 4])
    assert r.network == sm.nets.ModifiedMLP()
    with pytest.raises(
        sm.ModelError, match="`network` of `Field` 'v' must be a network"
    ):
        sm.Field("v", [t], network="modified")
    with pytest.raises(sm.ModelError, match="`scale` of `FourierFeatures` must be"):
        sm.nets.FourierFeatures(scale=-1.0)
    with pytest.raises(sm.ModelError, match="`fourier` of `ModifiedMLP` must be"):
        sm.nets.ModifiedMLP(fourier=3)
    w = sm.Field("w", [t], hidden=[8, 4], network=sm.nets.ModifiedMLP())
    bad = sm.Model([sp.Eq(w.diff(t), -w)], domain={t: (0, 1)})
    with pytest.raises(sm.ModelError, match="`ModifiedMLP` needs hidden layers of one"):
        sm.init_params(bad, key=jr.PRNGKey(0))


# -- conditions imposed by construction -------------------------------------------


def test_hard_dirichlet_conditions_hold_exactly():
    u = sm.Field("u", [t, x], hidden=[8, 8])
    model = sm.Model(
        [sp.Eq(u.diff(t) + u * u.diff(x), 0.01 * u.diff(x, 2))],
        conditions=[
            sp.Eq(u.subs(t, 0), -sp.sin(sp.pi * x)),
            sp.Eq(u.subs(x, -1), 0),
            sp.Eq(u.subs(x, 1), 0),
        ],
        domain={t: (0, 1), x: (-1, 1)},
    )
    result = sm.fit(
        model,
        method=sm.PhysicsInformed(points=64, hard_conditions=True),
        steps=5,
        lbfgs_steps=0,
    )
    assert result.hard_conditions == (0, 1, 2)
    assert result.weights == {"equation 0": 1.0}
    xs = np.linspace(-1, 1, 11)
    ts = np.linspace(0, 1, 11)
    np.testing.assert_allclose(
        result.predict(t=0.0, x=xs)["u"], -np.sin(np.pi * xs), rtol=0, atol=1e-14
    )
    for end in (-1.0, 1.0):
        np.testing.assert_allclose(result.predict(t=ts, x=end)["u"], 0, atol=1e-14)
    # The free network still moves the interior.
    assert np.abs(result.predict(t=0.5, x=0.3)["u"] + np.sin(0.3 * np.pi)) > 1e-6


@pytest.mark.slow
def test_hard_periodic_conditions_hold_exactly_and_incompatible_data_stay_soft():
    u = sm.Field("u", [t, x], hidden=[8, 8])
    conditions = [
        sp.Eq(u.subs(t, 0), x**2 * sp.cos(sp.pi * x)),
        sp.Eq(u.subs(x, -1), u.subs(x, 1)),
        sp.Eq(u.diff(x).subs(x, -1), u.diff(x).subs(x, 1)),
    ]
    model = sm.Model(
        [sp.Eq(u.diff(t), 1e-4 * u.diff(x, 2) - 5 * u**3 + 5 * u)],
        conditions=conditions,
        domain={t: (0, 1), x: (-1, 1)},
    )
    method = sm.PhysicsInformed(points=64, hard_conditions=True)
    problem = method.prepare(model, None, seed=0, dtype=jnp.float64, init=None)
    net = problem.trainable.networks["u"]
    assert isinstance(net, sm.nets.Constrained)
    # x² cos(πx) has u_x(−1) ≠ u_x(1): imposing it would break the periodic
    # derivative, so the initial condition stays a term of the loss.
    _, terms = eqx.filter_jit(problem.loss)(problem.trainable, problem.static)
    assert set(terms) == {"equation 0", "condition 0"}
    ts = jnp.linspace(0, 1, 7)
    lo = jax.vmap(lambda s: net(jnp.stack([s, -1.0]))[0])(ts)
    hi = jax.vmap(lambda s: net(jnp.stack([s, 1.0]))[0])(ts)
    np.testing.assert_allclose(lo, hi, rtol=0, atol=1e-14)
    scheme = sm.derivatives.Taylor()

    @jax.jit
    @jax.vmap
    def at_both_ends(s):
        return [
            jnp.ravel(jnp.stack(scheme.derivatives(net, jnp.stack([s, end]), alphas)))
            for end in (-1.0, 1.0)
        ]

    alphas = ((0, 1), (0, 2))
    for a, b in zip(*at_both_ends(ts), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # Asked to impose it anyway, the fit says why it cannot.
    with pytest.raises(sm.FitError, match="cannot impose `Eq\\(u\\(0, x\\)"):
        sm.PhysicsInformed(hard_conditions=[conditions[0], conditions[1]]).prepare(
            model, None, seed=0, dtype=jnp.float64, init=None
        )
    # Without the derivative condition, the initial condition is imposed too.
    model = sm.Model(
        model.equations, conditions=conditions[:2], domain={t: (0, 1), x: (-1, 1)}
    )
    problem = method.prepare(model, None, seed=0, dtype=jnp.float64, init=None)
    net = problem.trainable.networks["u"]
    xs = jnp.linspace(-1, 1, 9)
    at0 = jax.vmap(lambda s: net(jnp.stack([0.0, s]))[0])(xs)
    np.testing.assert_allclose(at0, xs**2 * jnp.cos(jnp.pi * xs), rtol=0, atol=1e-14)


def test_hard_conditions_errors():
    u = sm.Field("u", [t, x], hidden=[8])
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        conditions=[sp.Eq(u.diff(x).subs(x, 0), 0)],
        domain={t: (0, 1), x: (0, 1)},
    )
    with pytest.raises(
        sm.FitError, match="`hard_conditions` of `PhysicsInformed` must"
    ):
        sm.PhysicsInformed(hard_conditions="yes")
    with pytest.raises(sm.FitError, match="cannot impose `Eq\\(Subs"):
        sm.fit(model, method=sm.PhysicsInformed(hard_conditions=[0]), steps=1)
    with pytest.raises(sm.FitError, match="lists the index 3, but the model has 1"):
        sm.fit(model, method=sm.PhysicsInformed(hard_conditions=[3]), steps=1)
    # True imposes what it can: a Neumann condition stays a penalty.
    result = sm.fit(
        model,
        method=sm.PhysicsInformed(points=8, hard_conditions=True),
        steps=1,
        lbfgs_steps=0,
    )
    assert result.hard_conditions == () and "condition 0" in result.weights
