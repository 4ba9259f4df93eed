import functools
import math

import equinox as eqx
import jax
import jax.extend.core.primitives as prims
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

from symml._errors import DerivativeError
from symml._jaxpr import CALL_PRIMITIVES
from symml.derivatives import (
    TAYLOR_RULES,
    AbstractScheme,
    FiniteDifference,
    Forward,
    Reverse,
    Taylor,
    central_stencil,
    fd_step,
    get_scheme,
    taylor_coefficients,
    zero_derivative_order,
)
from symml.nets import get_activation, make_network

jax.config.update("jax_enable_x64", True)

AD_SCHEMES = [Reverse(), Forward(), Taylor()]
ALL_SCHEMES = [*AD_SCHEMES, FiniteDifference()]
MULTI = (
    (0, 0),
    (1, 0),
    (0, 1),
    (2, 0),
    (0, 2),
    (0, 3),
    (0, 4),
    (1, 1),
    (2, 1),
    (1, 2),
    (2, 2),
)


def _name(scheme: AbstractScheme) -> str:
    return type(scheme).__name__


def _partial_i(h, i, z):
    return jax.jacfwd(h)(z)[..., i]


def _jvp_along(h, v, z):
    return jax.jvp(h, (z,), (v,))[1]


def nested_jacfwd(fn, x, alpha):
    """∂^α fn(x) by nested `jax.jacfwd`, one input at a time (the reference)."""
    g = fn
    for i, n in enumerate(alpha):
        for _ in range(n):
            g = functools.partial(_partial_i, g, i)
    return g(x)


def derivs(scheme, fn, x, alphas):
    """`scheme.derivatives` under `jit` (eager nested AD dispatches slowly)."""
    return jax.jit(lambda z: scheme.derivatives(fn, z, alphas))(x)


def reference(fn, x, alphas):
    return jax.jit(lambda z: tuple(nested_jacfwd(fn, z, a) for a in alphas))(x)


def fd_tolerance(alpha, dtype) -> float:
    """Relative tolerance of a central difference with the default step.

    Truncation `O(h²)` and rounding `O(eps / h^k)` are both `eps^(2/(2+k))` with
    `h = eps^(1/(2+k))`; the constant covers the higher derivatives of the test
    functions (of order one to ten).
    """
    k = max(sum(alpha), 1)
    return 200 * float(jnp.finfo(dtype).eps) ** (2 / (2 + k))


def assert_close(got, want, rtol, scale=None):
    got, want = np.asarray(got), np.asarray(want)
    scale = np.max(np.abs(want)) + 1e-3 if scale is None else scale
    err = np.max(np.abs(got - want)) / scale
    assert err <= rtol, f"relative error {err:.3e} > {rtol:.1e}"


# ------------------------------------------------------------ accuracy


def _analytic(alpha, t, x, a=1.7, b=0.6):
    i, j = alpha
    return a**i * math.sin(a * t + i * math.pi / 2) * b**j * math.exp(b * x)


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=_name)
def test_analytic(scheme):
    def fn(z):
        return jnp.stack([jnp.sin(1.7 * z[0]) * jnp.exp(0.6 * z[1])])

    t, x = 0.4, -0.3
    got = derivs(scheme, fn, jnp.array([t, x]), MULTI)
    for alpha, g in zip(MULTI, got, strict=True):
        want = _analytic(alpha, t, x)
        rtol = (
            fd_tolerance(alpha, jnp.float64)
            if isinstance(scheme, FiniteDifference)
            else 1e-10
        )
        # Relative to the size of the derivatives of this order.
        assert_close(g, [want], rtol, scale=1.7 ** sum(alpha))


@functools.cache
def _mlp_case(activation: str):
    """A 2-output MLP, a point and its reference derivatives, built once."""
    net = make_network(2, 2, [16, 16], activation, key=jr.PRNGKey(7), dtype=jnp.float64)
    x = jnp.array([0.3, -0.7])
    return net, x, reference(net, x, MULTI)


def _mlp_cases():
    # The activation matters to the Taylor rules only: JAX's own AD and finite
    # differences take the same path for both, so their sigmoid cases are slow.
    for scheme in ALL_SCHEMES:
        for activation in ("tanh", "sigmoid"):
            marks = ()
            if activation == "sigmoid" and not isinstance(scheme, Taylor):
                marks = pytest.mark.slow
            yield pytest.param(
                scheme, activation, marks=marks, id=f"{_name(scheme)}-{activation}"
            )


# One worker runs these cases (`--dist loadgroup`): it computes each
# activation's reference derivatives once.
@pytest.mark.xdist_group("mlp_reference")
@pytest.mark.parametrize("scheme, activation", list(_mlp_cases()))
def test_mlp_against_nested_jacfwd(scheme, activation):
    net, x, wants = _mlp_case(activation)
    got = derivs(scheme, net, x, MULTI)
    for alpha, g, want in zip(MULTI, got, wants, strict=True):
        if isinstance(scheme, FiniteDifference):
            assert_close(g, want, fd_tolerance(alpha, jnp.float64), scale=1.0)
        else:
            assert_close(g, want, 1e-10)


@pytest.mark.parametrize(
    "activation",
    [
        # Their primitives (`erf`, `custom_jvp_call`) have rule tests of their
        # own, and gelu is checked against `jet` below: slow here.
        pytest.param("softplus", marks=pytest.mark.slow),
        pytest.param("gelu", marks=pytest.mark.slow),
        "sin",
        "swish",
        "elu",
        "relu",
        "identity",
    ],
)
def test_taylor_every_activation(activation, getkey):
    net = make_network(2, 1, [8, 8], activation, key=getkey(), dtype=jnp.float64)
    x = jnp.array([0.21, -0.37])
    alphas = ((1, 0), (0, 2), (2, 1), (0, 4))
    got, want = derivs(Taylor(), net, x, alphas), reference(net, x, alphas)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, 1e-10)


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=_name)
def test_jit_vmap_float32(scheme, getkey):
    net64 = make_network(2, 1, [16, 16], "tanh", key=getkey(), dtype=jnp.float64)
    net32 = jtu.tree_map(
        lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net64
    )
    pts = jr.uniform(getkey(), (8, 2), jnp.float64, -1.0, 1.0)
    alphas = ((0, 1), (0, 2), (1, 1))

    @eqx.filter_jit
    def run(net, pts):
        return jax.vmap(lambda z: scheme.derivatives(net, z, alphas))(pts)

    got = run(net32, pts.astype(jnp.float32))
    for alpha, g in zip(alphas, got, strict=True):
        assert g.dtype == jnp.float32 and g.shape == (8, 1)
        want = jax.jit(jax.vmap(lambda z, a=alpha: nested_jacfwd(net64, z, a)))(pts)
        if isinstance(scheme, FiniteDifference):
            rtol = fd_tolerance(alpha, jnp.float32)
        else:
            rtol = 1e-5
        assert_close(g, want, rtol, scale=1.0)


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=_name)
def test_laplacian_against_hessian_trace(scheme, getkey):
    net = make_network(4, 2, [16, 16], "tanh", key=getkey(), dtype=jnp.float64)
    x = jr.normal(getkey(), (4,), jnp.float64)
    hess = jax.jit(jax.hessian(net))(x)
    rtol = 1e-5 if isinstance(scheme, FiniteDifference) else 1e-10
    got = jax.jit(lambda z: scheme.laplacian(net, z))(x)
    assert_close(got, jnp.trace(hess, axis1=1, axis2=2), rtol)
    got = jax.jit(lambda z: scheme.laplacian(net, z, indices=(1, 3)))(x)
    assert_close(got, hess[:, 1, 1] + hess[:, 3, 3], rtol)


# ------------------------------------------------------------ outer gradient


def _net_call(params, x):
    return params(x)


def _closure_cases():
    # JAX's own AD sees through either closure alike; the Taylor interpreter
    # and finite differences handle the weights themselves, so they take both
    # fast, and the other schemes' `partial` cases are slow.
    for scheme in ALL_SCHEMES:
        for closure in ("lambda", "partial"):
            marks = ()
            if closure == "partial" and isinstance(scheme, Reverse | Forward):
                marks = pytest.mark.slow
            yield pytest.param(
                scheme, closure, marks=marks, id=f"{_name(scheme)}-{closure}"
            )


@pytest.mark.parametrize("scheme, closure", list(_closure_cases()))
@pytest.mark.slow
def test_weight_gradient_of_pinn_loss(scheme, closure, getkey):
    """The gradient of a Burgers residual loss equals float64 central differences."""
    net = make_network(2, 1, [8, 8], "tanh", key=getkey(), dtype=jnp.float64)
    pts = jr.uniform(getkey(), (16, 2), jnp.float64, -1.0, 1.0)
    alphas = ((0, 0), (1, 0), (0, 1), (0, 2))

    def loss(params):
        if closure == "lambda":
            fn = lambda z: params(z)  # noqa: E731
        else:
            fn = functools.partial(_net_call, params)

        def residual(z):
            u, u_t, u_x, u_xx = scheme.derivatives(fn, z, alphas)
            return u_t + u * u_x - 0.01 * u_xx

        return jnp.mean(jax.vmap(residual)(pts) ** 2)

    # The input map is frozen (`stop_gradient`): perturb weights and biases only.
    params = (net.weights, net.biases)

    def flat_loss(p):
        return loss(eqx.tree_at(lambda n: (n.weights, n.biases), net, p))

    grad = jax.jit(jax.grad(flat_loss))(params)
    flat_loss = jax.jit(flat_loss)
    # The loss of `FiniteDifference` carries rounding noise ~eps/h^k, which the
    # central difference in weight space amplifies: its reference is noisier.
    rtol = 1e-4 if isinstance(scheme, FiniteDifference) else 1e-6
    eps = 1e-5
    for _ in range(3):
        leaves, treedef = jtu.tree_flatten(params)
        keys = jr.split(getkey(), len(leaves))
        direction = jtu.tree_unflatten(
            treedef,
            [jr.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)],
        )
        plus = jtu.tree_map(lambda p, v: p + eps * v, params, direction)
        minus = jtu.tree_map(lambda p, v: p - eps * v, params, direction)
        numeric = (flat_loss(plus) - flat_loss(minus)) / (2 * eps)
        analytic = sum(
            jnp.vdot(g, v)
            for g, v in zip(
                jtu.tree_leaves(grad), jtu.tree_leaves(direction), strict=True
            )
        )
        assert abs(analytic - numeric) <= rtol * abs(numeric)


# ------------------------------------------------------------ Taylor rules

_W = np.array([[0.3, -1.2], [0.8, 0.5], [-0.4, 0.9]])


def _custom_vjp_sin():
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    f.defvjp(lambda x: (f(x), x), lambda x, g: (g * jnp.cos(x),))
    return f


# Emitted by JAX internals only (no public function binds it); its rule is the
# same recursion into the inner jaxpr as `jit`'s.
NO_PUBLIC_EXAMPLE = {"closed_call", "call"}


# One example per registered primitive: (function of z ∈ R², relative tolerance
# [, reference function when nested `jvp` cannot differentiate the example]).
RULE_EXAMPLES = {
    "add": (lambda z: z + z[::-1] + 1.0, 1e-10),
    "sub": (lambda z: z - z[::-1] ** 2 - 1.0, 1e-10),
    "mul": (lambda z: z * z[::-1] * 3.0, 1e-10),
    "div": (lambda z: (z + 3.0) / (z[::-1] + 2.5) + 1.0 / (z + 3.0), 1e-10),
    "neg": (lambda z: -jnp.sin(z), 1e-10),
    "dot_general": (
        lambda z: jnp.concatenate([jnp.dot(_W, z), jnp.dot(z, z) * z]),
        1e-10,
    ),
    "tanh": (jnp.tanh, 1e-10),
    "logistic": (jax.nn.sigmoid, 1e-10),
    "exp": (jnp.exp, 1e-10),
    "expm1": (jnp.expm1, 1e-10),
    "log": (lambda z: jnp.log(z + 2.0), 1e-10),
    "log1p": (jnp.log1p, 1e-10),
    "sin": (jnp.sin, 1e-10),
    "cos": (jnp.cos, 1e-10),
    "sinh": (jnp.sinh, 1e-10),
    "cosh": (jnp.cosh, 1e-10),
    "sqrt": (lambda z: jnp.sqrt(z + 2.0), 1e-10),
    "rsqrt": (lambda z: jax.lax.rsqrt(z + 2.0), 1e-10),
    "square": (jnp.square, 1e-10),
    "integer_pow": (lambda z: z**3 + (z + 2.0) ** -2 + z**5, 1e-10),
    "pow": (lambda z: (z + 2.0) ** 2.5 + (z + 2.0) ** z[::-1] + 2.0**z, 1e-10),
    "erf": (jax.scipy.special.erf, 1e-10),
    "max": (lambda z: jnp.maximum(z, 0.0) + jnp.maximum(z, z[::-1] ** 2), 1e-10),
    "min": (lambda z: jnp.minimum(z, 0.0) + jnp.minimum(z, z[::-1] ** 2), 1e-10),
    "select_n": (lambda z: jnp.where(z > 0, z**2, jnp.sin(z)), 1e-10),
    "abs": (lambda z: jnp.abs(z) ** 3, 1e-10),
    "sign": (lambda z: jnp.sign(z) * z**2, 1e-10),
    "floor": (lambda z: jnp.floor(3 * z) + z**2, 1e-10),
    "ceil": (lambda z: jnp.ceil(3 * z) + z**2, 1e-10),
    "round": (lambda z: jnp.round(3 * z) + z**2, 1e-10),
    "stop_gradient": (lambda z: jax.lax.stop_gradient(z) * z, 1e-10),
    "broadcast_in_dim": (lambda z: jnp.broadcast_to(z[0], (2,)) * z, 1e-10),
    "reshape": (lambda z: jnp.sin(z.reshape(2, 1)).reshape(2), 1e-10),
    "convert_element_type": (
        lambda z: jnp.exp(z.astype(jnp.float32)).astype(jnp.float64),
        1e-5,
    ),
    "squeeze": (lambda z: jnp.squeeze(jnp.sin(z[None, :]), 0), 1e-10),
    "concatenate": (lambda z: jnp.concatenate([z**2, jnp.ones(1), z]), 1e-10),
    "slice": (lambda z: jnp.sin(z[1:]) * z[:1], 1e-10),
    "reduce_sum": (lambda z: jnp.sum(z**3, keepdims=True), 1e-10),
    "transpose": (lambda z: jnp.outer(z, z**2).T.reshape(4), 1e-10),
    "rev": (lambda z: jax.lax.rev(jnp.sin(z), (0,)), 1e-10),
    "copy": (lambda z: jnp.array(z**2, copy=True), 1e-10),
    "cumsum": (lambda z: jnp.cumsum(jnp.exp(z)), 1e-10),
    "add_any": (lambda z: prims.add_jaxvals_p.bind(z**2, jnp.sin(z)), 1e-10),
    "reduce_precision": (
        lambda z: jax.lax.reduce_precision(z**2, exponent_bits=11, mantissa_bits=52),
        1e-10,
    ),
    "pad": (lambda z: jax.lax.pad(z**2, 0.0, [(1, 2, 1)]), 1e-10),
    "dynamic_slice": (lambda z: jax.lax.dynamic_slice(jnp.exp(z), (1,), (1,)), 1e-10),
    "gather": (lambda z: jnp.exp(z)[jnp.array([1, 0, 1])], 1e-10),
    "jit": (lambda z: jax.jit(jnp.sin)(z), 1e-10),
    "custom_jvp_call": (lambda z: jax.nn.softplus(z) + jax.nn.relu(z), 1e-10),
    "custom_vjp_call": (lambda z: _custom_vjp_sin()(z), 1e-10, jnp.sin),
    "remat2": (lambda z: jax.checkpoint(jnp.tanh)(z), 1e-10),
    "stack": (lambda z: jnp.stack([z[0] ** 2, z[1] * z[0]]), 1e-10),
    "unstack": (lambda z: jnp.stack(jax.lax.unstack(jnp.sin(z))[::-1]), 1e-10),
}


def _rule_id(prim) -> str:
    return prim.name


# Call-like primitives are walked by the shared interpreter, not by a rule.
@pytest.mark.parametrize(
    "prim", sorted({*TAYLOR_RULES, *CALL_PRIMITIVES}, key=_rule_id), ids=_rule_id
)
def test_taylor_rule_against_nested_jacfwd(prim):
    """Directional derivatives of orders 0–4 along two directions at once."""
    if prim.name in NO_PUBLIC_EXAMPLE:
        pytest.skip(f"no public JAX function emits `{prim.name}`")
    assert prim.name in RULE_EXAMPLES, f"add an example for `{prim.name}`"
    fn, rtol, *ref = RULE_EXAMPLES[prim.name]
    ref = ref[0] if ref else fn
    x = jnp.array([0.37, -0.61])
    names = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(x).jaxpr)
    assert prim.name in names, f"the example does not use `{prim.name}`"

    dirs = np.array([[1.0, 0.0], [0.6, -1.3]])
    coeffs = jax.jit(lambda z: taylor_coefficients(fn, z, dirs, 4))(x)

    def nested_jvp(z):
        out = []
        for v in jnp.asarray(dirs):
            g = ref
            for _ in range(5):
                out.append(g(z))
                g = functools.partial(_jvp_along, g, v)
        return out

    wants = jax.jit(nested_jvp)(x)
    for n in range(len(dirs)):
        for k in range(5):
            want = wants[5 * n + k]
            got = coeffs[k][0 if k == 0 else n] * math.factorial(k)
            assert_close(got, want, rtol, scale=np.max(np.abs(want)) + 1.0)


def test_taylor_collapsed_matches_per_direction():
    def fn(z):
        return jnp.stack([jnp.tanh(z @ z) * jnp.exp(z[0]), jnp.log1p(z[1] ** 2)])

    x = jnp.array([0.3, -0.2, 0.5])
    dirs = np.eye(3)
    full = taylor_coefficients(fn, x, dirs, 2)
    collapsed = taylor_coefficients(fn, x, dirs, 2, collapsed=True)
    assert collapsed[2].shape == (1, 2)
    assert_close(collapsed[1], full[1], 1e-12)
    assert_close(collapsed[2][0], full[2].sum(0), 1e-12)


def test_taylor_orders_per_direction():
    """Directions carried to different orders (`orders=`) give, for each order,
    the coefficients of the directions carried that far, equal to nested
    forward-mode derivatives; a bad `orders` is an error."""

    def fn(z):
        h = jnp.tanh(jnp.array([[0.7, -0.4, 0.2], [0.3, 0.9, -0.5]]) @ z)
        return jnp.stack([jnp.sum(jnp.exp(h) * z[:2]), jnp.sqrt(2 + h @ h)])

    x = jnp.array([0.3, -0.2, 0.5])
    dirs = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    coeffs = jax.jit(lambda z: taylor_coefficients(fn, z, dirs, 3, orders=(3, 2, 1)))(x)
    assert [c.shape[0] for c in coeffs] == [1, 3, 2, 1]
    for n, v in enumerate(jnp.asarray(dirs)):
        g = fn
        for k in range(4):
            if k == 0 or n < coeffs[k].shape[0]:
                got = coeffs[k][0 if k == 0 else n] * math.factorial(k)
                assert_close(got, g(x), 1e-12)
            g = functools.partial(_jvp_along, g, v)
    for orders in [(1, 2, 3), (3, 2), (2, 2, 1)]:
        with pytest.raises(DerivativeError, match="`orders` must give each"):
            taylor_coefficients(fn, x, dirs, 3, orders=orders)


def _exp_net(net):
    """A network ending in `exp`, so the Taylor rule for `exp` is exercised too."""
    return lambda z: jnp.exp(0.5 * net(z))


def _check_weight_derivatives(activation, n_in, taylor, reference, fwd_over_rev, key):
    """Weight gradient, and its forward mode, of `mean(D[u]²)` for two schemes.

    `taylor(fn, z)` and `reference(fn, z)` compute the same derivative `D[u]`;
    the reference is differentiated by JAX itself. Compares the weight
    gradient, its jvp along a random direction and, if `fwd_over_rev`, the jvp
    of the gradient (a Hessian-vector product in the weights).
    """
    keys = iter(jr.split(key, 4))
    act = "tanh" if activation == "exp" else activation
    net = make_network(n_in, 1, [8, 8], act, key=next(keys), dtype=jnp.float64)
    pts = jr.uniform(next(keys), (8, n_in), jnp.float64, -1.0, 1.0)

    def loss(n, deriv):
        fn = _exp_net(n) if activation == "exp" else n
        values = jax.vmap(lambda z: deriv(fn, z))(pts)
        return jnp.mean(values**2)

    params, static = eqx.partition(net, eqx.is_inexact_array)

    def flat(deriv):
        return lambda p: loss(eqx.combine(p, static), deriv)

    grad_t = jax.jit(jax.grad(flat(taylor)))(params)
    grad_n = jax.jit(jax.grad(flat(reference)))(params)
    for got, want in zip(jtu.tree_leaves(grad_t), jtu.tree_leaves(grad_n), strict=True):
        assert_close(got, want, 1e-10)

    leaves, treedef = jtu.tree_flatten(params)
    direction = jtu.tree_unflatten(
        treedef,
        [
            jr.normal(k, a.shape, a.dtype)
            for k, a in zip(jr.split(next(keys), len(leaves)), leaves, strict=True)
        ],
    )

    def tangent(wrap, deriv):
        return jax.jit(lambda p, v: jax.jvp(wrap(deriv), (p,), (v,))[1])(
            params, direction
        )

    wraps = [flat] + ([lambda d: jax.grad(flat(d))] if fwd_over_rev else [])
    for wrap in wraps:
        got, want = tangent(wrap, taylor), tangent(wrap, reference)
        for g, w in zip(jtu.tree_leaves(got), jtu.tree_leaves(want), strict=True):
            assert_close(g, w, 1e-9)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "sin", "gelu", "swish"])
def test_taylor_coefficients_against_jet(activation, getkey):
    """Our propagation rules against JAX's own Taylor mode, `jax.experimental.jet`,
    along a random direction to order 4 (jet takes and gives derivatives
    `D_v^k f`; `taylor_coefficients` gives `D_v^k f / k!`)."""
    from jax.experimental import jet

    net = make_network(3, 2, [16, 16], activation, key=getkey(), dtype=jnp.float64)
    x = jnp.array([0.3, -0.5, 0.8])
    v = jr.normal(getkey(), (3,), jnp.float64)
    order = 4
    # Both compiled: eager Taylor series dispatch every operation on its own.
    ours = jax.jit(lambda z: taylor_coefficients(net, z, np.asarray(v)[None], order))(x)
    value, series = jax.jit(
        lambda z: jet.jet(net, (z,), ((v, *[jnp.zeros(3)] * (order - 1)),))
    )(x)
    assert_close(ours[0][0], value, 1e-13)
    for k in range(1, order + 1):
        assert_close(ours[k][0] * math.factorial(k), series[k - 1], 1e-11)


@pytest.mark.parametrize(
    "activation, order",
    [
        # Order 2 (with forward over reverse) and exp run in the fast subset;
        # the same stacked-orders rule at other orders, and the same
        # output-polynomial linearisation with another polynomial, are slow
        # (their nested-`jacfwd` references are the costliest to compile).
        pytest.param("tanh", 1, marks=pytest.mark.slow),
        ("tanh", 2),
        pytest.param("tanh", 4, marks=pytest.mark.slow),
        pytest.param("sigmoid", 3, marks=pytest.mark.slow),
        ("exp", 2),
    ],
)
@pytest.mark.slow
def test_taylor_one_direction_weight_derivatives(activation, order, getkey):
    """A pure derivative `∂_x^k u` takes one direction, where Taylor rules carry
    the orders stacked in one array and linearise tanh/logistic/exp through
    their output (a custom JVP). The reference is nested `jax.jacfwd`; forward
    over reverse is checked at low order, where the reference compiles quickly.
    """
    alpha = (0, order)
    _check_weight_derivatives(
        activation,
        2,
        lambda fn, z: Taylor().derivatives(fn, z, (alpha,))[0],
        lambda fn, z: nested_jacfwd(fn, z, alpha),
        order <= 2,
        getkey(),
    )


@pytest.mark.parametrize(
    "activation",
    [
        "tanh",
        # One custom JVP with the output polynomial of each activation: tanh's
        # in the fast subset, the others in the full suite.
        pytest.param("sigmoid", marks=pytest.mark.slow),
        pytest.param("exp", marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_taylor_collapsed_laplacian_weight_derivatives(activation, getkey):
    """The collapsed Laplacian's own rule for tanh/logistic/exp (a custom JVP
    written with per-point factors) against the trace of `jax.hessian`."""
    _check_weight_derivatives(
        activation,
        3,
        lambda fn, z: Taylor().laplacian(fn, z),
        lambda fn, z: jnp.trace(jax.hessian(lambda y: fn(y)[0])(z))[None],
        True,
        getkey(),
    )


def test_taylor_shares_one_pass(getkey):
    """u_x, u_xx, u_xxxx share one primal: one `tanh` per hidden layer."""
    net = make_network(2, 1, [8, 8], "tanh", key=getkey(), dtype=jnp.float64)
    jaxpr = jax.make_jaxpr(
        lambda z: Taylor().derivatives(net, z, ((0, 0), (0, 1), (0, 2), (0, 4)))
    )(jnp.zeros(2))
    assert _count_primitive(jaxpr.jaxpr, "tanh") == 2


def _count_primitive(jaxpr, name: str) -> int:
    """Occurrences of a primitive in `jaxpr` and the jaxprs nested in its eqns."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                count += _count_primitive(inner, name)
    return count


# ------------------------------------------------------------ finite differences


@pytest.mark.parametrize(
    "order, offsets, weights",
    [
        (1, (-1, 1), (-0.5, 0.5)),
        (2, (-1, 0, 1), (1.0, -2.0, 1.0)),
        (3, (-2, -1, 1, 2), (-0.5, 1.0, -1.0, 0.5)),
        (4, (-2, -1, 0, 1, 2), (1.0, -4.0, 6.0, -4.0, 1.0)),
    ],
)
def test_central_stencil(order, offsets, weights):
    got_offsets, got_weights = central_stencil(order)
    assert got_offsets == offsets
    np.testing.assert_allclose(got_weights, weights, rtol=1e-14)
    assert len(got_offsets) == order + 1


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("order", [1, 2, 4])
def test_fd_step(order, dtype):
    eps = float(jnp.finfo(dtype).eps)
    assert fd_step(order, dtype) == pytest.approx(eps ** (1 / (2 + order)))
    assert fd_step(order, dtype, scale=2.0) == pytest.approx(
        2 * eps ** (1 / (2 + order))
    )


def test_fd_scale_and_step():
    def fn(z):
        return jnp.stack([jnp.sin(z[0]) * z[1] ** 3])

    x = jnp.array([0.2, 0.7])
    want = -math.sin(0.2) * 3 * 0.7**2
    scaled = FiniteDifference(scale=(1.0, 2.0)).derivatives(fn, x, ((2, 1),))[0]
    stepped = FiniteDifference(step=1e-3).derivatives(fn, x, ((2, 1),))[0]
    assert_close(scaled, [want], 1e-4)
    assert_close(stepped, [want], 1e-4)


# ------------------------------------------------------------ API and errors


@pytest.mark.parametrize(
    "name, cls",
    [
        ("reverse", Reverse),
        ("forward", Forward),
        ("taylor", Taylor),
        ("fd", FiniteDifference),
    ],
)
def test_get_scheme(name, cls):
    assert type(get_scheme(name)) is cls
    scheme = FiniteDifference(step=1e-2)
    assert get_scheme(scheme) is scheme


def test_unknown_scheme():
    with pytest.raises(
        DerivativeError, match="Unknown derivative scheme 'spectral'.*'taylor'"
    ):
        get_scheme("spectral")


def test_missing_taylor_rule():
    with pytest.raises(
        DerivativeError,
        match="no rule for the JAX primitive `atan`.*register_taylor_rule",
    ):
        Taylor().derivatives(jnp.arctan, jnp.array([0.5]), ((1,),))


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=_name)
def test_negative_order(scheme):
    with pytest.raises(DerivativeError, match="negative order"):
        scheme.derivatives(jnp.sin, jnp.array([0.5, 0.1]), ((1, -1),))


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=_name)
def test_bad_multi_index_and_point(scheme):
    with pytest.raises(DerivativeError, match="one order per input"):
        scheme.derivatives(jnp.sin, jnp.array([0.5, 0.1]), ((1,),))
    with pytest.raises(DerivativeError, match="`x` must be one point"):
        scheme.derivatives(jnp.sin, jnp.ones((2, 2)), ((1, 0),))
    with pytest.raises(DerivativeError, match="`indices`"):
        scheme.laplacian(jnp.sin, jnp.array([0.5, 0.1]), indices=(2,))


def test_fd_errors():
    with pytest.raises(DerivativeError, match="`scale` must be one number or one per"):
        FiniteDifference(scale=(1.0, 2.0, 3.0)).derivatives(
            jnp.sin, jnp.array([0.5, 0.1]), ((1, 0),)
        )
    with pytest.raises(DerivativeError, match="`order` must be a positive"):
        fd_step(0, jnp.float32)


@pytest.mark.parametrize(
    "activation, order",
    [("tanh", None), ("gelu", None), ("relu", 2), ("elu", 2)],
)
def test_zero_derivative_order(activation, order):
    assert zero_derivative_order(get_activation(activation)) == order


def test_zero_derivative_order_error():
    with pytest.raises(DerivativeError, match="`activation` must be an `Activation`"):
        zero_derivative_order("relu")
