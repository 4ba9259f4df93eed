"""Lowering sympy → JAX, checked against `sympy.lambdify` and hand-written JAX.

Expressions come from a seeded random generator over every supported function,
with each function's domain respected (log and sqrt of positive arguments,
acosh of arguments >= 1, atanh of arguments in (-1, 1), ...).
"""

import random

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp

import symml
from symml import LoweringError, ModelError
from symml.lowering import ELEMENTWISE, Compiler, Env

t = sp.Symbol("t")
a, b = sp.symbols("a b")
A_VALUE, B_VALUE = 1.3, 0.7
# Real symbols for the reference: sympy.diff of Abs, Min, ... is then real.
X, Y, T, A, B = sp.symbols("X Y T A B", real=True)


def tree_allclose(x, y, *, rtol=1e-10, atol=1e-12):
    leaves_x, tree_x = jax.tree_util.tree_flatten(eqx.filter(x, eqx.is_array))
    leaves_y, tree_y = jax.tree_util.tree_flatten(eqx.filter(y, eqx.is_array))
    assert tree_x == tree_y
    for lx, ly in zip(leaves_x, leaves_y, strict=True):
        np.testing.assert_allclose(lx, ly, rtol=rtol, atol=atol)


# -- a seeded random expression generator ---------------------------------------


def _pos(e):
    """A positive expression built from `e` (a domain guard)."""
    return e**2 + sp.Rational(1, 2)


def _unit(e):
    """An expression in (-1/2, 1/2) built from `e`."""
    return e / (2 + e**2)


# {function: how to put an arbitrary expression into its domain}
DOMAINS = {
    sp.exp: lambda e: sp.sin(e),
    sp.log: _pos,
    sp.sin: lambda e: e,
    sp.cos: lambda e: e,
    sp.tan: _unit,
    sp.cot: lambda e: 1 + _unit(e),
    sp.sec: _unit,
    sp.csc: lambda e: 1 + _unit(e),
    sp.asin: _unit,
    sp.acos: _unit,
    sp.atan: lambda e: e,
    sp.acot: _pos,
    sp.asec: lambda e: 1 + _pos(e),
    sp.acsc: lambda e: 1 + _pos(e),
    sp.sinh: _unit,
    sp.cosh: _unit,
    sp.tanh: lambda e: e,
    sp.coth: lambda e: 1 + _unit(e),
    sp.sech: lambda e: e,
    sp.csch: lambda e: 1 + _unit(e),
    sp.asinh: lambda e: e,
    sp.acosh: lambda e: 1 + _pos(e),
    sp.atanh: _unit,
    sp.acoth: lambda e: 1 + _pos(e),
    sp.asech: lambda e: 1 / (1 + _pos(e)),
    sp.acsch: _pos,
    sp.Abs: lambda e: e,
    sp.sign: lambda e: e,
    sp.erf: lambda e: e,
    sp.erfc: lambda e: e,
    sp.floor: lambda e: 3 * e,
    sp.ceiling: lambda e: 3 * e,
    sp.gamma: lambda e: 1 + _pos(e),
    sp.loggamma: lambda e: 1 + _pos(e),
    sp.Heaviside: lambda e: e,
}
# Functions whose derivative is zero almost everywhere (sympy: DiracDelta, or
# no derivative at all); left out of the gradient checks.
STEP_FUNCTIONS = {sp.sign, sp.floor, sp.ceiling, sp.Heaviside}


# Parts of complex numbers, of real values: sympy writes them where a symbol is
# not declared real. Kept out of the random expressions, whose seeded cases
# they would all change.
COMPLEX_PARTS = (sp.re, sp.im, sp.conjugate, sp.arg)


def test_domains_cover_every_elementwise_rule():
    assert set(ELEMENTWISE) <= set(DOMAINS) | set(COMPLEX_PARTS)


@pytest.mark.parametrize("fn", COMPLEX_PARTS)
def test_parts_of_real_values_lower_as_lambdify(fn):
    # Against `sympy.lambdify` (numpy), at negative, zero and positive values.
    x, y = symml.states("x y", t)
    a = sp.Symbol("a")  # not declared real: sympy keeps `re` and `im` of it
    rhs = [fn(x * y - a), fn(sp.exp(a * x)) + y]
    model = symml.Model(
        [sp.Eq(x.diff(t), rhs[0]), sp.Eq(y.diff(t), rhs[1])], parameters={a: 0.5}
    )
    f, _ = symml.lower(model)
    reference = sp.lambdify([x, y], [r.subs(a, 0.5) for r in rhs], "numpy")
    for point in [(1.0, -2.0), (0.5, 1.0), (-3.0, 0.25)]:
        np.testing.assert_array_equal(
            np.asarray(f(0.0, jnp.array(point))),
            np.real(np.asarray(reference(*point), dtype=complex)),
        )


def test_abs_of_exp_of_a_complex_symbol_lowers():
    # `Abs(exp(a x))` of a symbol not declared real is `exp(re(a x))`.
    (x,) = symml.states("x", t)
    a = sp.Symbol("a")
    expr = sp.Abs(sp.exp(a * x))
    assert expr.has(sp.re)
    f, _ = symml.lower(symml.Model(sp.Eq(x.diff(t), expr), parameters={a: -0.3}))
    np.testing.assert_allclose(f(0.0, jnp.array([2.0])), [np.exp(-0.6)], rtol=1e-12)


class ExpressionGenerator:
    """Random expressions in X, Y, T (points) and A, B (parameters)."""

    def __init__(self, seed: int, *, smooth: bool = False):
        self.rng = random.Random(seed)
        self.functions = [f for f in DOMAINS if not (smooth and f in STEP_FUNCTIONS)]

    def leaf(self):
        r = self.rng
        return r.choice(
            [
                X,
                Y,
                T,
                A,
                B,
                X,
                Y,
                sp.Integer(r.randint(-3, 3)),
                sp.Rational(r.randint(1, 5), r.randint(2, 7)),
                sp.Float(round(r.uniform(-2, 2), 3)),
                sp.pi,
                sp.E,
            ]
        )

    def poly(self):
        """A polynomial for a Piecewise condition."""
        r = self.rng
        return r.choice([X, Y, T, A]) * r.choice([X, Y, T, 1]) + self.leaf()

    def __call__(self, depth: int):
        if depth == 0:
            return self.leaf()
        r = self.rng
        sub = lambda: self(depth - 1)  # noqa: E731
        kind = r.choice(
            ["add", "mul", "div", "ipow", "npow", "rpow", "fpow", "ppow"]
            + ["sqrt", "fn", "fn", "fn", "fn", "atan2", "minmax", "piecewise"]
        )
        if kind == "add":
            return sub() + sub()
        if kind == "mul":
            return sub() * sub()
        if kind == "div":
            return sub() / _pos(sub())
        if kind == "ipow":
            return sub() ** r.randint(2, 4)
        if kind == "npow":
            return _pos(sub()) ** -r.randint(1, 3)
        if kind == "rpow":
            return _pos(sub()) ** sp.Rational(r.choice([1, 2, -1, -3, 5]), 3)
        if kind == "fpow":
            return _pos(sub()) ** sp.Float(r.choice([1.7, -0.4, 2.5]))
        if kind == "ppow":
            return _pos(sub()) ** B  # a power that is a trainable parameter
        if kind == "sqrt":
            return sp.sqrt(_pos(sub()))
        if kind == "atan2":
            return sp.atan2(sub(), sub())
        if kind == "minmax":
            return r.choice([sp.Min, sp.Max])(sub(), sub(), sub())
        if kind == "piecewise":
            return sp.Piecewise(
                (sub(), self.poly() > self.poly()),
                (sub(), sp.Ge(self.poly(), 0.3)),
                (sub(), True),
            )
        fn = r.choice(self.functions)
        return fn(DOMAINS[fn](sub()))


# lambdify prints coth and csch through `exp(2*log(z))` for z**2, which is NaN
# for negative z: give it the reciprocals instead (the same functions).
_RECIPROCALS = {sp.coth: sp.tanh, sp.csch: sp.sinh, sp.sech: sp.cosh}


def _lambdify(expr):
    for fn, inverse in _RECIPROCALS.items():
        expr = expr.replace(fn, lambda z, inverse=inverse: 1 / inverse(z))
    return sp.lambdify((X, Y, T, A, B), expr, modules=["scipy", "numpy"])


def _points(seed: int, n: int):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2, 2, n)
    ys = rng.uniform(-2, 2, n)
    ts = rng.uniform(0, 3, n)
    return xs, ys, ts


def _reference(expr, xs, ys, ts):
    """Lambdified `expr` point by point (NaN where it is not real)."""
    fn = _lambdify(expr)
    out = np.empty(np.shape(xs))
    with np.errstate(all="ignore"):
        for i, point in enumerate(zip(xs, ys, ts, strict=True)):
            args = [np.array([v]) for v in (*point, A_VALUE, B_VALUE)]
            value = complex(np.asarray(fn(*args)).reshape(-1)[0])
            out[i] = value.real if value.imag == 0 else np.nan
    return out


def _derivatives(expr):
    """d expr / d (X, Y, B), with DiracDelta (of sign, Heaviside) as zero."""
    return [
        sp.diff(expr, s).replace(sp.DiracDelta, lambda *args: sp.Integer(0))
        for s in (X, Y, B)
    ]


def _cases(seed: int, count: int, *, n_points: int = 16, smooth: bool = False):
    """`count` random expressions and their lambdified references at
    `n_points` random points: `[value]`, or with `smooth` `[value, d/dX, d/dY,
    d/dB]`. Expressions whose references are not all finite and moderate at
    the points are drawn again."""
    gen = ExpressionGenerator(seed, smooth=smooth)
    points = _points(seed, n_points)
    out = []
    while len(out) < count:
        expr = gen(gen.rng.randint(1, 3 if smooth else 4))
        exprs = [expr]
        if smooth:
            exprs += _derivatives(expr)
            # lambdify takes seconds to print a large derivative.
            if any(sp.count_ops(d) > 60 for d in exprs[1:]):
                continue
        try:
            refs = [_reference(e, *points) for e in exprs]
        except (TypeError, ValueError, ZeroDivisionError):
            continue  # lambdify cannot evaluate it: no reference
        if all(np.all(np.isfinite(r)) and np.all(np.abs(r) < 1e6) for r in refs):
            out.append((expr, refs))
    return points, out


def _model(expr):
    """A model whose first equation has `expr` as right-hand side."""
    x, y = symml.states("x y", t)
    rhs = expr.xreplace({X: x, Y: y, T: t, A: a, B: b})
    return symml.Model(
        [sp.Eq(x.diff(t), rhs), sp.Eq(y.diff(t), -x)],
        parameters={a: A_VALUE, b: symml.trainable(B_VALUE)},
    )


def _pack(f, xs, ys):
    """States in `f`'s order from arrays of x and y."""
    cols = {"x": xs, "y": ys}
    return jnp.stack([jnp.asarray(cols[n]) for n in f.state_names], axis=-1)


# -- values against lambdify ----------------------------------------------------


def _seeds(seeds, fast):
    """Random draws of the same code path: the first `fast` run in the fast
    subset, the rest only in the full suite (each draw compiles anew)."""
    return [
        pytest.param(s, marks=pytest.mark.slow) if i >= fast else s
        for i, s in enumerate(seeds)
    ]


@pytest.mark.parametrize("seed", _seeds(range(4), 2))
def test_random_expressions_through_model(seed):
    (xs, ys, ts), cases = _cases(seed, 15)
    lowered = [symml.lower(_model(expr)) for expr, _ in cases]

    @jax.jit
    def evaluate(ts, xs, ys, params):
        return [
            jax.vmap(f, in_axes=(0, 0, None))(ts, _pack(f, xs, ys), p)[
                :, f.state_names.index("x")
            ]
            for (f, _), p in zip(lowered, params, strict=True)
        ]

    got = evaluate(ts, xs, ys, [p for _, p in lowered])
    for value, (expr, (ref,)) in zip(got, cases, strict=True):
        np.testing.assert_allclose(
            value, ref, rtol=1e-12, atol=1e-12, err_msg=str(expr)
        )


@pytest.mark.parametrize("seed", _seeds(range(100, 106), 3))
def test_random_expressions_through_compiler(seed):
    (xs, ys, ts), cases = _cases(seed, 30, n_points=32)
    # One compiler for all: compiled expressions do not interfere.
    compiler = Compiler(bound=[X, Y, T, B], constants={A: A_VALUE})
    evaluators = [compiler(expr) for expr, _ in cases]

    @jax.jit
    def evaluate(xs, ys, ts, b):
        env = Env({X: xs, Y: ys, T: ts, B: b}, {}, compiler.requests)
        return [jnp.broadcast_to(e(env), xs.shape) for e in evaluators]

    got = evaluate(xs, ys, ts, jnp.asarray(B_VALUE))
    for value, (expr, (ref,)) in zip(got, cases, strict=True):
        np.testing.assert_allclose(
            value, ref, rtol=1e-12, atol=1e-12, err_msg=str(expr)
        )


@pytest.mark.parametrize("fn", list(DOMAINS), ids=lambda fn: fn.__name__)
def test_every_function_value_and_derivative(fn):
    # Each function on its own, so none depends on the random draw.
    expr = fn(DOMAINS[fn](X * Y + T - 1))
    xs, ys, ts = _points(11, 64)
    compiler = Compiler(bound=[X, Y, T])
    evaluate = compiler(expr)

    def value(x, y, t):
        return evaluate(Env({X: x, Y: y, T: t}, {}, compiler.requests))

    values, dx = jax.jit(
        lambda *p: (jax.vmap(value)(*p), jax.vmap(jax.grad(value))(*p))
    )(xs, ys, ts)
    np.testing.assert_allclose(
        values, _reference(expr, xs, ys, ts), rtol=1e-12, atol=1e-12
    )
    want = 0.0 if fn in STEP_FUNCTIONS else _reference(sp.diff(expr, X), xs, ys, ts)
    np.testing.assert_allclose(
        dx, np.broadcast_to(want, xs.shape), rtol=1e-10, atol=1e-10
    )


def _special_cases():
    return [
        sp.Piecewise((X, X > 0), (-2 * X, Y < 0), (sp.sin(X), True)),
        sp.Piecewise(
            (X**2, sp.And(X > 0, Y > 0)), (1, sp.Or(X < -1, Y > 1)), (0, True)
        ),
        sp.Piecewise((X, sp.Not(X > 0)), (T, True)),
        # A Piecewise in a condition becomes an if-then-else (ITE).
        sp.Piecewise((1, sp.Piecewise((X, Y > 0), (Y, True)) > 0.5), (T, True)),
        sp.Piecewise((X, sp.Xor(X > 0, Y > 0)), (Y, True)),
        sp.Heaviside(X),
        sp.Heaviside(X, 0),
        sp.Heaviside(X - sp.Rational(1, 2), 1),
        sp.Min(X, Y),
        sp.Max(X, Y, T - 1),
        sp.atan2(Y, X),
        sp.erf(X * Y),
        sp.sign(X) * sp.Abs(Y),
        _pos(X) ** sp.Rational(1, 3),
        _pos(X) ** sp.Rational(-3, 2),
        _pos(X) ** sp.Rational(1, 2),
        _pos(X) ** sp.Rational(-1, 2),
        _pos(X) ** 2.5,
        _pos(X) ** B,
        B**X,
        X**3 - Y**-2 + X**-1,
        sp.exp(X) + 2**X + sp.E**Y,
        sp.pi * X + sp.E * Y + sp.EulerGamma + sp.GoldenRatio,
        sp.log(_pos(X), 3),
        A * X + B * Y + sp.Integer(7),
        sp.Integer(3_000_000_000) * X,
        sp.Rational(1, 3) * X + sp.Float(0.1),
    ]


@pytest.mark.parametrize("expr", _special_cases(), ids=str)
def test_special_constructs(expr):
    xs, ys, ts = _points(7, 64)
    # Points on the boundaries of Heaviside, sign, Piecewise and Min/Max.
    xs[:4], ys[:4] = 0.0, [0.0, 0.5, -1.0, 2.0]
    ref = _reference(expr, xs, ys, ts)
    compiler = Compiler(bound=[X, Y, T, B], constants={A: A_VALUE})
    evaluate = compiler(expr)

    @jax.jit
    def direct(xs, ys, ts):
        values = {X: xs, Y: ys, T: ts, B: jnp.asarray(B_VALUE)}
        return jnp.broadcast_to(evaluate(Env(values, {}, {})), xs.shape)

    np.testing.assert_allclose(direct(xs, ys, ts), ref, rtol=1e-12, atol=1e-12)
    # And through the public path, at interior points.
    f, params = symml.lower(_model(expr))
    xs, ys = xs[4:], ys[4:]
    rhs = jax.jit(jax.vmap(f, in_axes=(0, 0, None)))
    got = rhs(ts[4:], _pack(f, xs, ys), params)
    np.testing.assert_allclose(
        got[:, f.state_names.index("x")], ref[4:], rtol=1e-12, atol=1e-12
    )


def test_piecewise_without_otherwise_is_nan_outside():
    expr = sp.Piecewise((X, X > 0))
    compiler = Compiler(bound=[X])
    got = compiler(expr)(Env({X: jnp.array([1.0, -1.0])}, {}, {}))
    np.testing.assert_array_equal(np.isnan(got), [False, True])


# -- gradients against lambdified sympy.diff ------------------------------------


@pytest.mark.parametrize("seed", _seeds(range(200, 203), 1))
def test_gradients_against_sympy_diff(seed):
    (xs, ys, ts), cases = _cases(seed, 10, n_points=8, smooth=True)
    lowered = [symml.lower(_model(expr)) for expr, _ in cases]

    def gradients(f, params, ts, xs, ys):
        """d f_x / d(x, y) and d f_x / d b at each point."""
        i = f.state_names.index("x")

        def rhs_x(t, u, b):
            p = eqx.tree_at(lambda p: p.values["b"], params, b)
            return f(t, u, p)[i]

        grad = jax.vmap(jax.grad(rhs_x, argnums=(1, 2)), in_axes=(0, 0, None))
        du, db = grad(ts, _pack(f, xs, ys), params.values["b"])
        return [du[:, f.state_names.index(n)] for n in ("x", "y")] + [db]

    @jax.jit
    def evaluate(ts, xs, ys, params):
        return [
            gradients(f, p, ts, xs, ys)
            for (f, _), p in zip(lowered, params, strict=True)
        ]

    got = evaluate(ts, xs, ys, [p for _, p in lowered])
    for grads, (expr, refs) in zip(got, cases, strict=True):
        for what, value, ref in zip("xyb", grads, refs[1:], strict=True):
            np.testing.assert_allclose(
                value, ref, rtol=1e-10, atol=1e-10, err_msg=f"d/d{what} {expr}"
            )


# -- networks: jit, vmap, grad, dtype, one evaluation per call ------------------


def _network_model(hidden=(8, 8)):
    x, y = symml.states("x y", t)
    U = symml.Unknown("U", [x, y], 2, hidden=hidden)
    model = symml.Model(
        [sp.Eq(x.diff(t), a * x + U[0]), sp.Eq(y.diff(t), -b * y + U[1] * U[0])],
        parameters={a: A_VALUE, b: symml.trainable(B_VALUE)},
    )
    return model


def _hand_rhs(t, u, params):
    x, y = u
    out = params.networks["U"](jnp.stack([x, y]))
    bv = params.values["b"]
    return jnp.stack([A_VALUE * x + out[0], -bv * y + out[1] * out[0]])


def test_network_rhs_matches_hand_written(getkey):
    f, params = symml.lower(_network_model(), key=getkey())
    assert f.state_names == ("x", "y")
    u = jnp.array([0.3, -1.2])
    want = jax.jit(_hand_rhs)(0.5, u, params)
    tree_allclose(jax.jit(f)(0.5, u, params), want, rtol=1e-14)


def test_network_rhs_vmap_over_states(getkey):
    f, params = symml.lower(_network_model(), key=getkey())
    us = jr.normal(getkey(), (10, 2))
    got = jax.jit(jax.vmap(f, in_axes=(None, 0, None)))(0.1, us, params)
    want = jax.jit(jax.vmap(_hand_rhs, in_axes=(None, 0, None)))(0.1, us, params)
    tree_allclose(got, want, rtol=1e-13)


def test_grad_wrt_network_weights_and_parameters(getkey):
    f, params = symml.lower(_network_model(), key=getkey())
    us = jr.normal(getkey(), (5, 2))

    def loss(rhs):
        def fn(params):
            out = jax.vmap(rhs, in_axes=(None, 0, None))(0.2, us, params)
            return jnp.sum(out**2)

        return fn

    got = jax.jit(jax.grad(loss(f)))(params)
    want = jax.jit(jax.grad(loss(_hand_rhs)))(params)
    tree_allclose(got, want, rtol=1e-12)
    # Not all zero: the gradient reaches every layer.
    for w in got.networks["U"].weights:
        assert jnp.any(w != 0)
    assert got.values["b"] != 0


def test_grad_wrt_states(getkey):
    f, params = symml.lower(_network_model(), key=getkey())
    u = jnp.array([0.4, 0.9])
    got = jax.jit(jax.jacrev(f, argnums=1))(0.0, u, params)
    want = jax.jit(jax.jacfwd(_hand_rhs, argnums=1))(0.0, u, params)
    tree_allclose(got, want, rtol=1e-12)


def test_unknown_inputs_are_expressions(getkey):
    x, y = symml.states("x y", t)
    U = symml.Unknown("U", [x * y, sp.sin(t), a])
    model = symml.Model(
        [sp.Eq(x.diff(t), U[0]), sp.Eq(y.diff(t), -y)], parameters={a: A_VALUE}
    )
    f, params = symml.lower(model, key=getkey())
    u = jnp.array([0.7, -0.3])
    net = params.networks["U"]
    want = jax.jit(lambda z: net(z))(jnp.array([0.7 * -0.3, np.sin(1.1), A_VALUE]))[0]
    tree_allclose(jax.jit(f)(1.1, u, params)[0], want, rtol=1e-14)


def test_float32_stays_float32(getkey):
    f, params = symml.lower(_network_model(), key=getkey(), dtype=jnp.float32)
    assert params.values["b"].dtype == jnp.float32
    assert all(w.dtype == jnp.float32 for w in params.networks["U"].weights)
    t32 = jnp.float32(0.5)
    u = jnp.array([0.3, -1.2], jnp.float32)
    out = jax.jit(f)(t32, u, params)
    assert out.dtype == jnp.float32
    want = jax.jit(_hand_rhs)(t32, u, params)
    tree_allclose(out, want, rtol=1e-5, atol=1e-6)
    # No float64 anywhere inside, not just a cast at the end.
    jaxpr = jax.make_jaxpr(f)(t32, u, params)
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            assert v.aval.dtype != jnp.float64, eqn
    grads = jax.jit(jax.grad(lambda p: jnp.sum(f(t32, u, p))))(params)
    assert grads.values["b"].dtype == jnp.float32
    assert all(w.dtype == jnp.float32 for w in grads.networks["U"].weights)


def test_float32_with_elementary_functions():
    x, y = symml.states("x y", t)
    rhs = sp.Piecewise((sp.sqrt(x**2 + 1), x > 0), (sp.exp(-y), True)) + a * x**3
    model = symml.Model(
        [sp.Eq(x.diff(t), rhs + sp.pi), sp.Eq(y.diff(t), sp.atan2(x, y) / x)],
        parameters={a: 0.5},
    )
    f, params = symml.lower(model, dtype=jnp.float32)
    u = jnp.array([0.3, -1.2], jnp.float32)
    jaxpr = jax.make_jaxpr(f)(jnp.float32(0.0), u, params)
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            assert v.aval.dtype != jnp.float64, eqn
    rhs = jax.jit(f)
    out = rhs(jnp.float32(0.0), u, params)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, rhs(0.0, u.astype(jnp.float64), params), rtol=1e-6)


def _dot_generals(f, params, n_states):
    u = jnp.ones(n_states)
    jaxpr = jax.make_jaxpr(f)(0.0, u, params)
    return str(jaxpr).count("dot_general")


@pytest.mark.parametrize("hidden, n_dots", [((8, 8), 3), ((8,), 2), ((4, 4, 4), 4)])
def test_one_network_evaluation_per_call(getkey, hidden, n_dots):
    # U[0] appears twice and U[1] once: one evaluation serves all three.
    f, params = symml.lower(_network_model(hidden), key=getkey())
    assert _dot_generals(f, params, 2) == n_dots


def test_one_evaluation_per_unknown(getkey):
    x, y = symml.states("x y", t)
    U = symml.Unknown("U", [x, y], 2, hidden=(8, 8))
    V = symml.Unknown("V", [x], 1, hidden=(8, 8))
    model = symml.Model(
        [
            sp.Eq(x.diff(t), U[0] + V[0] * U[1]),
            sp.Eq(y.diff(t), sp.sin(U[1]) + V[0] ** 2),
        ]
    )
    f, params = symml.lower(model, key=getkey())
    assert _dot_generals(f, params, 2) == 6


def test_one_evaluation_counted_by_calls(getkey):
    f, params = symml.lower(_network_model(), key=getkey())
    calls = []

    class Counting(eqx.Module):
        net: eqx.Module

        def __call__(self, z):
            calls.append(z)
            return self.net(z)

    wrapped = eqx.tree_at(
        lambda p: p.networks["U"], params, Counting(params.networks["U"])
    )
    f(0.0, jnp.array([0.1, 0.2]), wrapped)
    assert len(calls) == 1
    f(0.0, jnp.array([0.1, 0.2]), wrapped)
    assert len(calls) == 2  # a fresh evaluation per call, no stale cache


# -- user rules -----------------------------------------------------------------


class softclip(sp.Function):
    """A user function with a registered rule."""


class unregistered(sp.Function):
    """A user function without a rule."""


def test_register_function():
    symml.register_function(softclip, lambda z: z / (1 + jnp.abs(z)))
    x, y = symml.states("x y", t)
    model = symml.Model([sp.Eq(x.diff(t), softclip(2 * x)), sp.Eq(y.diff(t), -x)])
    f, params = symml.lower(model)
    out = f(0.0, _pack(f, jnp.array(-1.5), jnp.array(0.0)), params)
    np.testing.assert_allclose(out[f.state_names.index("x")], -3.0 / 4.0, rtol=1e-14)


def test_register_rule_and_per_call_rules():
    class twice(sp.Function):
        pass

    def rule(expr, compile):
        (arg,) = (compile(e) for e in expr.args)
        return lambda env: 2 * arg(env)

    x, y = symml.states("x y", t)
    model = symml.Model([sp.Eq(x.diff(t), twice(x)), sp.Eq(y.diff(t), -x)])
    f, params = symml.lower(model, rules={twice: rule})
    u = _pack(f, jnp.array(1.5), jnp.array(0.0))
    assert f(0.0, u, params)[f.state_names.index("x")] == 3.0
    # The per-call table leaves the global one untouched.
    with pytest.raises(LoweringError, match="twice"):
        symml.lower(model)
    symml.register_rule(twice, rule)
    f, params = symml.lower(model)
    assert f(0.0, u, params)[f.state_names.index("x")] == 3.0


# -- lowering errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, match",
    [
        (unregistered(X), r"cannot lower `unregistered\(X\)`.*register_function"),
        (sp.besselj(0, X), r"cannot lower `besselj\(0, X\)`"),
        (sp.Integral(sp.exp(-(X**2)) * sp.cos(X**3), (X, 0, Y)), "Integral"),
        (sp.I * X, "imaginary unit"),
        (sp.zoo * X, "undefined number"),
        (sp.nan * X, "undefined number"),
        (X + sp.Symbol("q"), r"symbol `q` has no value"),
        (sp.Derivative(sp.sin(X), X, evaluate=False), "cannot lower the derivative"),
    ],
    ids=str,
)
def test_unsupported_construct(expr, match):
    with pytest.raises(LoweringError, match=match):
        Compiler(bound=[X, Y])(expr)


def test_unsupported_function_through_lower():
    x, y = symml.states("x y", t)
    model = symml.Model([sp.Eq(x.diff(t), unregistered(x)), sp.Eq(y.diff(t), -x)])
    with pytest.raises(LoweringError, match="unregistered"):
        symml.lower(model)


def test_lower_needs_key_for_unknowns():
    with pytest.raises(LoweringError, match="needs `key=`"):
        symml.lower(_network_model())


def test_lower_needs_a_model():
    with pytest.raises(LoweringError, match="needs a symml `Model`"):
        symml.lower(sp.Eq(X, 1))


def test_unknown_activation_name(getkey):
    (x,) = symml.states("x", t)
    U = symml.Unknown("U", [x], activation="swishy")
    model = symml.Model(sp.Eq(x.diff(t), U[0]))
    with pytest.raises(ModelError, match="Unknown activation 'swishy'"):
        symml.lower(model, key=getkey())


def test_network_derivative_default_scheme_and_bad_scheme(getkey):
    (x,) = symml.states("x", t)
    U = symml.Unknown("U", [x, t])
    model = symml.Model(sp.Eq(x.diff(t), -x + U[0].diff(t)))
    f, params = symml.lower(model, key=getkey())
    net = params.networks["U"]
    u, tt = 0.7, 0.3
    # d/dt U(x(t), t) = U_x x' + U_t, so x' = (-x + U_t) / (1 - U_x).
    U_x, U_t = jax.jacfwd(net)(jnp.array([u, tt]))[0]
    expected = (-u + U_t) / (1 - U_x)
    got = jax.jit(f)(tt, jnp.array([u]), params)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(LoweringError, match="`derivatives='magic'` is not a deriv"):
        symml.lower(model, key=getkey(), derivatives="magic")


def test_lowering_error_is_a_value_error():
    assert issubclass(LoweringError, ValueError)
    assert issubclass(LoweringError, symml.SymmlError)


def test_symbolic_jacobian_sparsity_matches_dense_jacobian(getkey):
    a, b, c = symml.states("a b c", t)
    U = symml.Unknown("U", [a, t], hidden=[4])
    model = symml.Model(
        [
            sp.Eq(a.diff(t), -a + U[0]),
            sp.Eq(b.diff(t), sp.sin(a) * b),
            sp.Eq(c.diff(t), sp.exp(-t)),
        ]
    )
    f, params = symml.lower(model, key=getkey())
    pattern = symml.jacobian_sparsity(f).toarray()
    dense = np.zeros_like(pattern)
    jacobian = jax.jit(jax.jacfwd(f, argnums=1))
    for seed in range(3):
        u = jr.normal(jr.PRNGKey(seed), (3,))
        dense |= np.asarray(jacobian(0.3, u, params)) != 0
    np.testing.assert_array_equal(pattern, dense)
    traced = symml.jacobian_sparsity(lambda u: f(0.3, u, params), jnp.ones(3))
    np.testing.assert_array_equal(pattern, traced.toarray())
    with pytest.raises(symml.SparsityError, match="needs a point `x`"):
        symml.jacobian_sparsity(lambda u: u)
