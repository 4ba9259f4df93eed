"""Stochastic models: SDE declarations and lowering, path simulation, the Euler
likelihood, the Monte Carlo reference and the deep BSDE method.

Each is checked against an independent reference: lowering against hand-written
drift and diffusion functions, Euler–Maruyama against the closed-form moments
of geometric Brownian motion, the Monte Carlo reference against closed forms
and quadrature, the deep BSDE method against the heat equation's exact
solution, the likelihood against its formula written out.
"""

import math
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp
from helpers import load_example

import symml as sm
from symml import ModelError, SDEError
from symml.sde import CompiledParabolicPDE

t = sp.Symbol("t")


def tree_allclose(x, y, *, rtol=1e-10, atol=1e-12):
    leaves_x, tree_x = jax.tree_util.tree_flatten(eqx.filter(x, eqx.is_array))
    leaves_y, tree_y = jax.tree_util.tree_flatten(eqx.filter(y, eqx.is_array))
    assert tree_x == tree_y
    for lx, ly in zip(leaves_x, leaves_y, strict=True):
        np.testing.assert_allclose(lx, ly, rtol=rtol, atol=atol)


def gbm(a=1.0, b=0.5) -> sm.SDE:
    (x,) = sm.states("x", t)
    a_, b_ = sp.symbols("a b")
    return sm.SDE([a_ * x], [b_ * x], states=[x], parameters={a_: a, b_: b})


# -- declarations ------------------------------------------------------------------


def test_sde_declaration_reads_like_an_ode():
    x, y = sm.states("x y", t)
    k = sp.Symbol("k")
    U = sm.Unknown("U", inputs=[x, y], outputs=1)
    sde = sm.SDE(
        {x: -k * x + U[0], y: x - y},
        [0.1, 0.2 * y],
        parameters={k: sm.trainable(1.0)},
    )
    assert sde.states == (x, y)
    assert sde.noise == "diagonal" and sde.n_noise == 2
    assert sde.unknowns == (U,)
    assert sde.trainable_parameters == {k: 1.0}
    assert sde.diffusion == sp.ImmutableMatrix([[0.1, 0], [0, 0.2 * y]])
    assert sde.equations[0] == sp.Eq(x.diff(t), -k * x + U[0], evaluate=False)
    assert not sde.additive
    general = sm.SDE(
        [x, y],
        sp.Matrix(
            [
                [1, x],
                [0, 1],
            ]
        ),
        states=[x, y],
    )
    assert general.noise == "general" and general.n_noise == 2
    scalar = sm.SDE([x, y], [1, 2], states=[x, y], noise="scalar")
    assert scalar.diffusion.shape == (2, 1) and scalar.additive


@pytest.mark.parametrize(
    "diffusion, noise, match",
    [
        (sp.Matrix([[1, 0], [0, 1]]), "diagonal", r"noise='diagonal'.*2×2 matrix"),
        ([1, 2], "general", r"noise='general'.*matrix with 2 rows"),
        ([1, 2, 3], None, r"one expression per state \(2\); got 3"),
        ([1], "scalar", r"scalar noise.*one expression per state \(2\); got 1"),
        (sp.Matrix([[1, 0], [0, 1], [1, 1]]), None, r"3×2 matrix but the SDE has 2"),
        ([[1, 0], [1]], None, r"not a matrix: its rows have different lengths"),
        ([1, 2], "colored", r"`noise` is 'colored'"),
    ],
)
def test_sde_noise_shape_errors(diffusion, noise, match):
    x, y = sm.states("x y", t)
    with pytest.raises(ModelError, match=match):
        sm.SDE([x, y], diffusion, states=[x, y], noise=noise)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda x, y: sm.SDE([x], [1], states=[x, y]), "1 entries for 2 states"),
        (lambda x, y: sm.SDE([x, y], [1, 1]), "needs `states="),
        (
            lambda x, y: sm.SDE([x, sp.Symbol("q") * y], [1, 1], states=[x, y]),
            r"`q`.*not declared",
        ),
        (
            lambda x, y: sm.SDE([x.diff(t), y], [1, 1], states=[x, y]),
            "derivative of a state",
        ),
        (
            lambda x, y: sm.SDE([x, y], [1, 1], states=[x, y], calculus="ito2"),
            "'ito' or 'stratonovich'",
        ),
        (
            lambda x, y: sm.SDE([x, y], [1, sp.Function("h")(t)], states=[x, y]),
            "`h.*` is not declared",
        ),
    ],
)
def test_sde_declaration_errors(build, match):
    x, y = sm.states("x y", t)
    with pytest.raises(ModelError, match=match):
        build(x, y)


def hjb(dim: int, lam: float = 1.0) -> sm.ParabolicPDE:
    u, lam_ = sp.symbols("u lambda")
    x, du = sp.MatrixSymbol("x", dim, 1), sp.MatrixSymbol("Du", dim, 1)
    return sm.ParabolicPDE(
        u,
        (t, x),
        terminal=sp.log((1 + sp.DotProduct(x, x)) / 2),
        horizon=1.0,
        x0=0.0,
        diffusion=sp.sqrt(2),
        nonlinearity=-lam_ * sp.DotProduct(du, du),
        gradient=du,
        parameters={lam_: lam},
    )


def test_parabolic_declaration_does_not_grow_with_the_dimension():
    small, large = hjb(3), hjb(1000)
    # The same sympy trees: nothing is expanded per dimension.
    for attr in ("terminal", "nonlinearity"):
        assert sp.count_ops(getattr(small, attr)) == sp.count_ops(getattr(large, attr))
        assert len(sp.srepr(getattr(large, attr))) < 200
    assert large.dim == 1000 and large.scalar_diffusion
    assert "Trace" in sp.srepr(large.equation)


def _pde(**overrides):
    d = 3
    u = sp.Symbol("u")
    x, du = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("Du", d, 1)
    options = dict(
        terminal=sp.DotProduct(x, x),
        horizon=1.0,
        x0=0.0,
        diffusion=1,
        nonlinearity=0,
        gradient=du,
    )
    options.update({k: v(x, du, u) if callable(v) else v for k, v in overrides.items()})
    return sm.ParabolicPDE(u, (t, x), **options)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"terminal": lambda x, du, u: t * sp.DotProduct(x, x)},
            r"terminal condition g\(x\).*depends on the time `t`",
        ),
        ({"terminal": lambda x, du, u: u + 1}, r"terminal condition.*contains `u`"),
        (
            {"diffusion": lambda x, du, u: sp.Identity(4)},
            r"diffusion σ has shape \(4, 4\); expected a \(3, m\) matrix",
        ),
        ({"diffusion": lambda x, du, u: x}, r"diffusion σ has shape \(3, 1\)"),
        ({"diffusion": 0}, "needs noise"),
        (
            {"drift": lambda x, du, u: sp.Identity(3)},
            r"drift μ has shape \(3, 3\); expected \(3, 1\)",
        ),
        ({"drift": 1}, "drift μ is `1`, a scalar"),
        ({"nonlinearity": lambda x, du, u: du}, r"nonlinearity.*a matrix.*scalar"),
        (
            {
                "nonlinearity": lambda x, du, u: sp.DotProduct(
                    sp.MatrixSymbol("v", 3, 1), x
                )
            },
            r"contains `v`.*`gradient=`",
        ),
        ({"x0": [0.0, 1.0]}, r"`x0` has 2 entries; the PDE is in 3 dimensions"),
        ({"horizon": -1.0}, r"`horizon` is -1.0"),
        (
            {"gradient": lambda x, du, u: sp.MatrixSymbol("G", 2, 1)},
            r"`gradient` is `G` of shape \(2, 1\)",
        ),
    ],
)
def test_parabolic_declaration_errors(overrides, match):
    with pytest.raises(ModelError, match=match):
        _pde(**overrides)


def test_parabolic_space_variable_must_be_a_vector():
    u, y = sp.symbols("u y")
    with pytest.raises(ModelError, match=r"column vector.*MatrixSymbol"):
        sm.ParabolicPDE(u, (t, y), terminal=y, horizon=1, x0=0)


# -- lowering ----------------------------------------------------------------------


def test_sde_lowering_matches_hand_written(getkey):
    x, y = sm.states("x y", t)
    k, s = sp.symbols("k s")
    U = sm.Unknown("U", inputs=[x, y], outputs=1, hidden=[8])
    sde = sm.SDE(
        [-k * x + U[0] + sp.sin(t), x * y - y],
        sp.Matrix([[s * x, 0.5], [0, s * sp.exp(-(y**2))]]),
        states=[x, y],
        parameters={k: sm.trainable(0.7), s: 0.3},
    )
    f, params = sm.lower_sde(sde, key=getkey())
    net = params.networks["U"]

    def drift(tt, u, p):
        return jnp.stack(
            [
                -p.values["k"] * u[0] + p.networks["U"](u)[0] + jnp.sin(tt),
                u[0] * u[1] - u[1],
            ]
        )

    def diffusion(tt, u, p):
        return jnp.array([[0.3 * u[0], 0.5], [0.0, 0.3 * jnp.exp(-(u[1] ** 2))]])

    points = jr.normal(getkey(), (5, 2))
    times = jnp.linspace(0.0, 1.0, 5)
    for tt, u in zip(times, points, strict=True):
        np.testing.assert_allclose(f(tt, u, params), drift(tt, u, params), rtol=1e-12)
        np.testing.assert_allclose(
            f.diffusion(tt, u, params), diffusion(tt, u, params), rtol=1e-12
        )
        np.testing.assert_allclose(
            f.diffusion_operator(tt, u, params).as_matrix(),
            diffusion(tt, u, params),
            rtol=1e-12,
        )
    # Pure under jit, vmap and grad (network weights and parameters included).
    batched = jax.jit(jax.vmap(f, in_axes=(0, 0, None)))(times, points, params)
    np.testing.assert_allclose(
        batched,
        jax.vmap(drift, in_axes=(0, 0, None))(times, points, params),
        rtol=1e-12,
    )
    g_symml = jax.grad(lambda p: f(0.3, points[0], p).sum())(params)
    g_hand = jax.grad(lambda p: drift(0.3, points[0], p).sum())(params)
    tree_allclose(g_symml, g_hand)
    assert f.jacobian_sparsity().toarray().tolist() == [[True, True], [True, True]]
    values = f.unknown_values(0.0, points[0], params)
    np.testing.assert_allclose(values["U"][1], net(points[0])[None], rtol=1e-12)
    assert isinstance(f, sm.AbstractSystem) and f.n == 2
    np.testing.assert_allclose(f.flatten({x: 1.0, y: 2.0}), [1.0, 2.0])


def test_stratonovich_drift_is_the_ito_correction():
    x, y = sm.states("x y", t)
    sde = sm.SDE([x, -y], sp.Matrix([[x * y, 1], [sp.sin(x), y]]), states=[x, y])
    f, params = sm.lower_sde(sde)
    u = jnp.array([0.4, -1.3])
    X, Y = u
    # μ^S_i = μ_i - ½ Σ_j Σ_k σ_kj ∂_k σ_ij, written out.
    sigma = np.array([[X * Y, 1.0], [np.sin(X), Y]])
    dsigma = np.zeros((2, 2, 2))  # [i, j, k] = ∂_k σ_ij
    dsigma[0, 0] = [Y, X]
    dsigma[1, 0] = [np.cos(X), 0.0]
    dsigma[1, 1] = [0.0, 1.0]
    correction = 0.5 * np.einsum("kj,ijk->i", sigma, dsigma)
    expected = np.array([X, -Y]) - correction
    np.testing.assert_allclose(
        f.drift(0.0, u, params, "stratonovich"), expected, rtol=1e-12
    )
    # And back again.
    strat = sm.SDE(
        list(sde.drift_for("stratonovich")),
        sde.diffusion,
        states=[x, y],
        calculus="stratonovich",
    )
    back = sp.simplify(sp.Matrix(strat.drift_for("ito")) - sp.Matrix(sde.drift))
    assert back == sp.zeros(2, 1)


def test_matrix_expressions_lower_without_expansion():
    d = 4
    u = sp.Symbol("u")
    x, du = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("Du", d, 1)
    A = sp.Matrix(np.arange(d * d).reshape(d, d) / 10.0)
    v = sp.Matrix([1.0, 2.0, 3.0, 4.0])
    pde = sm.ParabolicPDE(
        u,
        (t, x),
        terminal=sp.DotProduct(A * x, x) + sp.Trace(x * x.T),
        horizon=2.0,
        x0=[1, 2, 3, 4],
        drift=sp.DiagMatrix(v) * x + t * (A.T * x),
        diffusion=sp.Identity(d) * (1 + t) + sp.HadamardProduct(x, x) * x.T,
        nonlinearity=u * sp.DotProduct(du, x) - sp.exp(t),
        gradient=du,
    )
    c = CompiledParabolicPDE(pde)
    X = np.array([0.5, -1.0, 2.0, 0.3])
    G = np.array([1.0, 0.2, -0.4, 0.7])
    An, vn = np.asarray(A, float), np.asarray(v, float).ravel()
    np.testing.assert_allclose(c.terminal(jnp.asarray(X)), X @ An.T @ X + X @ X)
    np.testing.assert_allclose(c.drift(0.7, jnp.asarray(X)), vn * X + 0.7 * An.T @ X)
    sigma = 1.7 * np.eye(d) + np.outer(X * X, X)
    np.testing.assert_allclose(c.diffusion(0.7, jnp.asarray(X)), sigma, rtol=1e-12)
    dw = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(
        c.noise(0.7, jnp.asarray(X), jnp.asarray(dw)), sigma @ dw, rtol=1e-12
    )
    np.testing.assert_allclose(
        c.nonlinearity(0.7, jnp.asarray(X), 2.0, jnp.asarray(G)),
        2.0 * G @ X - math.exp(0.7),
    )


# -- simulation --------------------------------------------------------------------


@pytest.mark.slow
def test_simulate_is_seeded_and_paths_do_not_depend_on_their_number():
    sde = gbm()
    ts = jnp.linspace(0.0, 1.0, 5)
    a = sm.simulate(sde, ts, jnp.array([1.0]), key=jr.PRNGKey(3), paths=8, dt=0.05)
    b = sm.simulate(sde, ts, jnp.array([1.0]), key=jr.PRNGKey(3), paths=8, dt=0.05)
    c = sm.simulate(sde, ts, jnp.array([1.0]), key=jr.PRNGKey(3), paths=3, dt=0.05)
    assert a.shape == (8, 5, 1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:3], c)
    assert not np.allclose(a[0], a[1])


# 40 000 paths at three step sizes (each compiled): a statistical convergence
# study. The fast subset checks the seeded Euler–Maruyama paths above and the
# moments of Heun and Milstein below.
@pytest.mark.slow
def test_euler_maruyama_weak_order_one_on_gbm():
    """dX = aX dt + bX dW: E X_T = e^{aT}, Var X_T = e^{2aT}(e^{b²T} - 1).
    Euler–Maruyama's own moments are (1 + a dt)^N and ((1 + a dt)² + b² dt)^N
    - (1 + a dt)^{2N}: the sample moments must match those within their
    statistical error, and the error against the closed form must shrink
    like dt."""
    a, b, T, paths = 1.0, 0.5, 1.0, 40_000
    sde = gbm(a, b)
    ts = jnp.array([0.0, T])
    dts = [0.2, 0.1, 0.05]
    mean_exact = math.exp(a * T)
    var_exact = math.exp(2 * a * T) * (math.exp(b * b * T) - 1)
    mean_errors, var_errors = [], []
    for dt in dts:
        n = round(T / dt)
        # The same Brownian paths at every step size (a fixed tree resolution).
        xs = np.asarray(
            sm.simulate(
                sde,
                ts,
                jnp.array([1.0]),
                key=jr.PRNGKey(0),
                paths=paths,
                dt=dt,
                tol=dts[-1] / 4,
            )
        )[:, -1, 0]
        mean_em = (1 + a * dt) ** n
        var_em = ((1 + a * dt) ** 2 + b * b * dt) ** n - (1 + a * dt) ** (2 * n)
        se_mean = xs.std() / math.sqrt(paths)
        assert abs(xs.mean() - mean_em) < 4 * se_mean
        # The variance's standard error from the fourth moment.
        se_var = math.sqrt(np.mean((xs - xs.mean()) ** 4) - xs.var() ** 2) / math.sqrt(
            paths
        )
        assert abs(xs.var() - var_em) < 4 * se_var
        mean_errors.append(mean_exact - xs.mean())
        var_errors.append(var_exact - xs.var())
    for errors in (mean_errors, var_errors):
        slope = np.polyfit(np.log(dts), np.log(np.abs(errors)), 1)[0]
        assert 0.75 < slope < 1.25, (errors, slope)


@pytest.mark.parametrize("solver", ["heun", "milstein"])
@pytest.mark.slow
def test_every_solver_converges_to_the_declared_calculus(solver):
    """Heun converges to the Stratonovich solution; symml converts the Itô
    drift, so its mean is the Itô one, e^{aT}, not e^{(a + b²/2)T}."""
    a, b, paths = 1.0, 0.8, 20_000
    xs = np.asarray(
        sm.simulate(
            gbm(a, b),
            jnp.array([0.0, 1.0]),
            jnp.array([1.0]),
            key=jr.PRNGKey(1),
            paths=paths,
            dt=0.01,
            solver=solver,
            brownian="unsafe",
        )
    )[:, -1, 0]
    se = xs.std() / math.sqrt(paths)
    assert abs(xs.mean() - math.exp(a)) < 4 * se + 0.02
    assert abs(xs.mean() - math.exp(a + b * b / 2)) > 10 * se


def test_simulate_errors():
    x, y = sm.states("x y", t)
    multiplicative = sm.SDE([x, y], [x, 1], states=[x, y])
    general = sm.SDE([x, y], sp.Matrix([[1, x], [y, 1]]), states=[x, y])
    ts, y0, key = jnp.array([0.0, 1.0]), jnp.zeros(2), jr.PRNGKey(0)
    with pytest.raises(SDEError, match="'shark' is for additive noise"):
        sm.simulate(multiplicative, ts, y0, key=key, solver="shark")
    with pytest.raises(SDEError, match="needs commutative noise"):
        sm.simulate(general, ts, y0, key=key, solver="milstein")
    with pytest.raises(SDEError, match="`solver` is 'rk45'; expected one of"):
        sm.simulate(general, ts, y0, key=key, solver="rk45")
    with pytest.raises(SDEError, match=r"`y0` has shape \(3,\); expected \(2,\)"):
        sm.simulate(general, ts, jnp.zeros(3), key=key)
    with pytest.raises(SDEError, match="strictly increasing"):
        sm.simulate(general, jnp.array([1.0, 0.0]), y0, key=key)
    U = sm.Unknown("U", inputs=[x], outputs=1)
    with pytest.raises(SDEError, match="pass their values as `params=`"):
        sm.simulate(sm.SDE([U[0], y], [1, 1], states=[x, y]), ts, y0, key=key)
    compiled, _ = sm.lower_sde(general)
    with pytest.raises(SDEError, match="Draw paths with `symml.simulate"):
        sm.solve(compiled, y0, saveat=ts)


# -- the Euler likelihood ------------------------------------------------------------


@pytest.mark.slow
def test_euler_likelihood_is_the_gaussian_increment_likelihood():
    """An Ornstein–Uhlenbeck process dX = -θX dt + s dW with θ trainable: the
    loss is the Gaussian negative log-likelihood of the increments, and its
    minimiser is the closed-form least-squares estimate."""
    (x,) = sm.states("x", t)
    theta, s = sp.symbols("theta s")
    truth = sm.SDE([-theta * x], [s], states=[x], parameters={theta: 1.5, s: 0.4})
    ts = np.linspace(0.0, 2.0, 201)
    paths = np.asarray(
        sm.simulate(
            truth,
            ts,
            jnp.array([1.0]),
            key=jr.PRNGKey(0),
            paths=4,
            dt=0.001,
            brownian="unsafe",
        )
    )
    data = [sm.Data(ts, {x: p[:, 0]}) for p in paths]
    model = sm.SDE(
        [-theta * x], [s], states=[x], parameters={theta: sm.trainable(1.0), s: 0.4}
    )
    problem = sm.EulerLikelihood().prepare(
        model, data, seed=0, dtype=jnp.float64, init=None
    )
    loss_fn, params, static = problem.loss, problem.trainable, problem.static
    X = np.concatenate([p[:-1, 0] for p in paths])
    dX = np.concatenate([np.diff(p[:, 0]) for p in paths])
    dt = 0.01

    def hand(th):
        r = dX + th * X * dt
        s2 = 0.4**2 * dt
        return np.mean(0.5 * r * r / s2 + 0.5 * np.log(s2))

    for th in (0.5, 1.5):
        p = eqx.tree_at(lambda p: p.values["theta"], params, jnp.asarray(th))
        np.testing.assert_allclose(loss_fn(p, static)[0], hand(th), rtol=1e-12)
    best = -np.sum(X * dX) / (np.sum(X * X) * dt)
    p = eqx.tree_at(lambda p: p.values["theta"], params, jnp.asarray(best))
    grad = jax.grad(lambda p: loss_fn(p, static)[0])(p)
    assert abs(float(grad.values["theta"])) < 1e-9


def test_fit_of_an_sde_errors():
    (x,) = sm.states("x", t)
    model = sm.SDE([-x], [1], states=[x])
    with pytest.raises(sm.DataError, match="one per observed path"):
        sm.fit(model, np.zeros((3, 2)))
    y = sm.states("y", t)[0]
    with pytest.raises(sm.DataError, match="not a state of the model"):
        sm.fit(model, [sm.Data([0, 1], {y: [0, 1]})])
    with pytest.raises(sm.FitError, match="`batch_size` of `EulerLikelihood`"):
        sm.EulerLikelihood(batch_size=0)
    data = [sm.Data([0, 0.1, 0.2], {x: [0, 0.1, 0.0]})]
    with pytest.raises(sm.FitError, match="needs a deterministic loss"):
        sm.fit(model, data, method=sm.EulerLikelihood(batch_size=2), lbfgs_steps=5)


# 300 training steps, then discovery: end to end. The fast subset fits SDEs
# (the minibatched likelihood below) and discovers from other fits.
@pytest.mark.slow
def test_discovery_from_an_sde_fit_rebuilds_an_sde():
    """The recovered model of a universal SDE is an SDE: the unknown drift
    replaced by the recovered expression, the diffusion kept, and it
    simulates."""
    (x,) = sm.states("x", t)
    theta, s = sp.symbols("theta s")
    truth = sm.SDE([-theta * x], [s], states=[x], parameters={theta: 1.5, s: 0.2})
    ts = np.linspace(0.0, 2.0, 101)
    paths = np.asarray(
        sm.simulate(truth, ts, jnp.array([1.0]), key=jr.PRNGKey(0), paths=8, dt=0.005)
    )
    data = [sm.Data(ts, {x: p[:, 0]}) for p in paths]
    U = sm.Unknown("U", inputs=[x], hidden=[8], activation="tanh")
    ude = sm.SDE([U[0]], [s], states=[x], parameters={s: 0.2})
    result = sm.fit(ude, data, steps=300, learning_rate=1e-2, lbfgs_steps=0, seed=0)
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=1))
    recovered = found.model
    assert isinstance(recovered, sm.SDE)
    assert recovered.drift == (found.expressions[U[0]],)
    assert recovered.diffusion == ude.diffusion
    assert not recovered.unknowns
    out = sm.simulate(recovered, ts, jnp.array([1.0]), key=jr.PRNGKey(1), paths=2)
    assert np.all(np.isfinite(np.asarray(out)))


@pytest.mark.slow
def test_minibatched_likelihood_draws_a_new_batch_every_step():
    (x,) = sm.states("x", t)
    theta = sp.Symbol("theta")
    model = sm.SDE(
        [-theta * x], [0.5], states=[x], parameters={theta: sm.trainable(0.5)}
    )
    ts = np.linspace(0.0, 1.0, 101)
    path = np.asarray(
        sm.simulate(
            sm.SDE([-2 * x], [0.5], states=[x]),
            ts,
            jnp.array([1.0]),
            key=jr.PRNGKey(0),
            dt=0.001,
            brownian="unsafe",
        )
    )[0, :, 0]
    method = sm.EulerLikelihood(batch_size=10)
    result = sm.fit(model, sm.Data(ts, {x: path}), method=method, steps=20, seed=0)
    again = sm.fit(model, sm.Data(ts, {x: path}), method=method, steps=20, seed=0)
    losses = result.history["adam"]
    assert len(set(np.round(losses, 12))) > 15  # a different batch each step
    np.testing.assert_array_equal(losses, again.history["adam"])
    assert isinstance(result, sm.SDEFitResult) and result.method is method


# -- the Monte Carlo reference -------------------------------------------------------


def test_hjb_reference_against_the_closed_form_of_a_quadratic():
    """For g = ‖x‖², E exp(-λ‖x0 + √(2T) ξ‖²) is a Gaussian integral:
    u = (d/2λ) ln(1 + 4λT) + ‖x0‖² / (1 + 4λT)."""
    x0 = jnp.array([0.3, -1.0, 0.5])
    lam, T = 0.7, 0.5
    value, se = sm.hjb_reference(
        lambda z: jnp.sum(z * z),
        x0,
        key=jr.PRNGKey(0),
        lam=lam,
        horizon=T,
        samples=2**18,
    )
    exact = 3 / (2 * lam) * math.log(1 + 4 * lam * T) + float(x0 @ x0) / (
        1 + 4 * lam * T
    )
    assert se < 5e-3
    assert abs(value - exact) < 4 * se
    # λ → 0: the plain expectation E g = ‖x0‖² + 2dT.
    small, _ = sm.hjb_reference(
        lambda z: jnp.sum(z * z),
        x0,
        key=jr.PRNGKey(0),
        lam=1e-8,
        horizon=T,
        samples=2**16,
    )
    assert abs(small - (float(x0 @ x0) + 2 * 3 * T)) < 0.05


def test_hjb_reference_at_d100_against_quadrature():
    """At x0 = 0, ‖√2 W_1‖² = 2χ²₁₀₀: the expectation is a one-dimensional
    integral against the chi-square density."""
    from scipy import integrate, stats

    def weight(q):
        return 2 / (1 + 2 * q) * stats.chi2.pdf(q, 100)

    exact = -math.log(integrate.quad(weight, 0, np.inf, limit=200)[0])
    value, se = sm.hjb_reference(
        hjb(100), jnp.zeros(100), key=jr.PRNGKey(0), samples=2**18
    )
    assert abs(exact - 4.5901) < 5e-4
    assert abs(value - exact) < 4 * se


def test_hjb_reference_errors():
    with pytest.raises(SDEError, match="`lam` is -1"):
        sm.hjb_reference(lambda z: z @ z, jnp.zeros(2), key=jr.PRNGKey(0), lam=-1)
    with pytest.raises(SDEError, match="expected a function g"):
        sm.hjb_reference(3.0, jnp.zeros(2), key=jr.PRNGKey(0))


# -- the deep BSDE method --------------------------------------------------------------


@pytest.mark.slow
def test_deep_bsde_solves_the_heat_equation_to_one_percent():
    """u_t + ½Δu = 0, u(T, x) = ‖x‖²: u(0, x) = ‖x‖² + dT."""
    d, T = 4, 1.0
    u = sp.Symbol("u")
    x = sp.MatrixSymbol("x", d, 1)
    x0 = [0.5, -0.5, 1.0, 0.0]
    pde = sm.ParabolicPDE(
        u, (t, x), terminal=sp.DotProduct(x, x), horizon=T, x0=x0, diffusion=1
    )
    # A small pilot: training starts a few per cent away from the answer.
    method = sm.DeepBSDE(time_steps=10, batch_size=64, hidden=(16, 16), pilot_paths=64)
    result = sm.fit(pde, method=method, steps=300, seed=0)
    exact = sum(v * v for v in x0) + d * T
    assert abs(result.estimate - exact) / exact < 0.01
    assert result.history["adam"][-1] < result.history["adam"][0]
    assert len(result.estimates) == 300
    # The same seed gives the same result; the default method of a
    # `ParabolicPDE` is the deep BSDE method.
    again = sm.fit(pde, method=method, steps=300, seed=0)
    np.testing.assert_array_equal(result.estimates, again.estimates)
    assert isinstance(sm.fit(pde, steps=2), sm.BSDEResult)


def test_deep_bsde_errors():
    with pytest.raises(sm.FitError, match="`networks='global'` of `DeepBSDE`"):
        sm.DeepBSDE(networks="global")
    with pytest.raises(sm.FitError, match="`time_steps` of `DeepBSDE` must be a pos"):
        sm.DeepBSDE(time_steps=0)
    with pytest.raises(sm.FitError, match="leave out `data`"):
        sm.fit(hjb(2), sm.Data([0, 1], {"x": [0, 1]}), method=sm.DeepBSDE())
    with pytest.raises(sm.FitError, match="no L-BFGS phase"):
        sm.fit(hjb(2), lbfgs_steps=10)
    with pytest.raises(sm.FitError, match="solves a `symml.ParabolicPDE`"):
        sm.fit(gbm(), [sm.Data([0, 1], {"x": [0, 1]})], method=sm.DeepBSDE())


# -- examples and the benchmark ------------------------------------------------


def test_hjb_example_quick(tmp_path):
    import json

    summary = load_example("hjb_deep_bsde").main(
        ["--quick", "--out", str(tmp_path), "--seed", "1"]
    )
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("estimate", "reference", "relative_error", "dim", "wall_seconds"):
        assert key in on_disk
    assert on_disk["relative_error"] == summary["relative_error"] < 0.05
    assert (tmp_path / "training.png").exists()


def test_stochastic_ude_example_quick(tmp_path):
    summary = load_example("stochastic_ude").main(
        ["--quick", "--out", str(tmp_path), "--no-plot"]
    )
    assert (tmp_path / "summary.json").exists()
    assert set(summary["unknowns"]) == {"U_0(x(t), y(t))", "U_1(x(t), y(t))"}
    assert summary["wall_seconds"] > 0


def test_bsde_benchmark_quick(tmp_path):
    bench = Path(__file__).parents[1] / "benchmarks" / "bsde.py"
    out = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--quick",
            "--repeats",
            "3",
            "--dim",
            "20",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    agreement = float(
        out.stdout.split("loss agreement |symml - hand| / hand = ")[1][:7]
    )
    # float32: the two losses agree to rounding before they are timed.
    assert agreement < 1e-5
    assert "ratio" in out.stdout and (tmp_path / "summary.json").exists()
