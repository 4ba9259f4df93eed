import diffrax as dfx
import jax
import jax.extend as jex
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.sparse as ssp

from symml._errors import SparsityError
from symml._jaxpr import CALL_PRIMITIVES
from symml.sparsity import (
    SparseJacobian,
    SparseLU,
    _rules,
    check_coloring,
    check_row_coloring,
    check_star_coloring,
    color_columns,
    color_rows,
    color_star,
    compressed_jacobian,
    hessian_sparsity,
    jacobian_sparsity,
    register_sparsity_rule,
    solve_stiff,
    sparsity_rules,
)

# ----------------------------------------------------------------- helpers


def _dense_pattern(fn, x, args, getkey, points=3):
    """Union of the non-zeros of `jax.jacfwd` at random points (the reference;
    `jax.jacrev` for `custom_vjp` functions, which have no JVP)."""
    out = None
    # One compiled Jacobian for all points (a new `jit` wrapper compiles anew).
    forward, reverse = jax.jit(jax.jacfwd(fn)), jax.jit(jax.jacrev(fn))
    for _ in range(points):
        xr = jr.normal(getkey(), x.shape, x.dtype)
        try:
            jac = np.asarray(forward(xr, *args))
        except TypeError:
            jac = np.asarray(reverse(xr, *args))
        nz = jac.reshape(-1, x.size) != 0
        out = nz if out is None else out | nz
    return out


def _hessian_pattern(fn, x, getkey, points=3):
    out = None
    hessian = jax.jit(jax.hessian(fn))
    for _ in range(points):
        xr = jr.normal(getkey(), x.shape, x.dtype)
        nz = np.asarray(hessian(xr)).reshape(x.size, x.size) != 0
        out = nz if out is None else out | nz
    return out


def _laplacian_roll_1d(u):
    return jnp.roll(u, 1) + jnp.roll(u, -1) - 2 * u


def _laplacian_roll_2d(u):
    u = u.reshape(6, 5)
    lap = (
        jnp.roll(u, 1, 0)
        + jnp.roll(u, -1, 0)
        + jnp.roll(u, 1, 1)
        + jnp.roll(u, -1, 1)
        - 4 * u
    )
    return lap.ravel()


def _laplacian_conv_1d(u):
    up = jnp.pad(u, 1, mode="wrap")
    k = jnp.array([1.0, -2.0, 1.0])
    return jax.lax.conv(up[None, None], k[None, None], (1,), "VALID")[0, 0]


def _laplacian_conv_2d(u):
    u = u.reshape(6, 5)
    k = jnp.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    up = jnp.pad(u, 1, mode="wrap")
    return jax.lax.conv(up[None, None], k[None, None], (1, 1), "VALID").ravel()


def _dirichlet_stencil(u):
    up = jnp.pad(u, 1)  # zero boundary values
    return (up[2:] - 2 * up[1:-1] + up[:-2]) * jnp.exp(u)


def _dirichlet_stencil_2d(u):
    u = u.reshape(5, 4)
    up = jnp.pad(u, ((1, 1), (1, 1)), constant_values=1.0)
    lap = up[2:, 1:-1] + up[:-2, 1:-1] + up[1:-1, 2:] + up[1:-1, :-2] - 4 * u
    return (lap + u**2).ravel()


def brusselator(n, *, conv=False):
    """The 2D Brusselator RHS `rhs(y, t)` on an `n x n` periodic grid."""
    xs = np.linspace(0.0, 1.0, n, endpoint=False)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    alpha = 10.0 * n**2
    disk = jnp.asarray((gx - 0.3) ** 2 + (gy - 0.6) ** 2 <= 0.1**2)
    kernel = jnp.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])

    def lap(u):
        if conv:
            up = jnp.pad(u, 1, mode="wrap")
            return jax.lax.conv(up[None, None], kernel[None, None], (1, 1), "VALID")[
                0, 0
            ]
        return (
            jnp.roll(u, 1, 0)
            + jnp.roll(u, -1, 0)
            + jnp.roll(u, 1, 1)
            + jnp.roll(u, -1, 1)
            - 4 * u
        )

    def rhs(y, t):
        u, v = y.reshape(2, n, n)
        forcing = jnp.where(disk & (t >= 1.1), 5.0, 0.0)
        du = 1.0 + u**2 * v - 4.4 * u + alpha * lap(u) + forcing
        dv = 3.4 * u - u**2 * v + alpha * lap(v)
        return jnp.stack([du, dv]).ravel()

    return rhs


_A = np.zeros((6, 8))
_A[np.arange(6), np.arange(6)] = 2.0
_A[np.arange(5), np.arange(1, 6) + 2] = -1.0


@jax.custom_jvp
def _softclip(x):
    return jnp.tanh(x)


_softclip.defjvp(lambda p, t: (jnp.tanh(p[0]), t[0] / jnp.cosh(p[0]) ** 2))


@jax.custom_vjp
def _cube(x):
    return x**3


_cube.defvjp(lambda x: (x**3, x), lambda r, g: (3 * r**2 * g,))


def _loop_body(i, c):
    return 0.5 * c + jnp.roll(c, 1) * c


# Name, function of x (and `args`), x shape, args, exact (or superset).
CASES = {
    "unary": (lambda x: jnp.sin(x) + jnp.exp(x) * jnp.tanh(x), (7,), (), True),
    "binary_broadcast": (lambda x: x.reshape(2, 4) * x[:4], (8,), (), True),
    "div_sub_neg": (lambda x: -(x[:4] / x[4:]) - x[::2], (8,), (), True),
    "integer_pow": (lambda x: x**3 + x[::-1] ** 2, (6,), (), True),
    "pow_log": (lambda x: jnp.abs(x) ** x[::-1] + jnp.log1p(x**2), (5,), (), True),
    "dot_general": (lambda x: x.reshape(3, 4) @ x.reshape(4, 3), (12,), (), True),
    "dot_const_sparse": (lambda x: jnp.asarray(_A) @ x, (8,), (), True),
    "batched_dot": (
        lambda x: jnp.einsum("bij,bj->bi", x.reshape(2, 3, 2), x[:4].reshape(2, 2)),
        (12,),
        (),
        True,
    ),
    "reshape_transpose": (lambda x: x.reshape(3, 4).T.ravel() * 2, (12,), (), True),
    "broadcast_in_dim": (lambda x: jnp.broadcast_to(x, (3, 4)) * x[0], (4,), (), True),
    "slice_rev": (lambda x: x[1:7:2] + x[::-1][:3], (8,), (), True),
    "dynamic_slice": (
        lambda x: jax.lax.dynamic_slice(x, (jnp.int32(2),), (3,)) ** 2,
        (8,),
        (),
        True,
    ),
    "dynamic_slice_traced_start": (
        lambda x, i: jax.lax.dynamic_slice(x, (i,), (3,)),
        (5,),
        (jnp.int32(1),),
        False,
    ),
    "dynamic_update_slice": (
        lambda x: jax.lax.dynamic_update_slice(x, x[:2] * x[5:7], (3,)),
        (8,),
        (),
        True,
    ),
    "concatenate_pad": (
        lambda x: jnp.concatenate([jnp.pad(x[:3], (2, 1)), x[3:] ** 2]),
        (7,),
        (),
        True,
    ),
    "pad_interior": (
        lambda x: jax.lax.pad(x, 1.0, [(1, -1, 1)]) * 3.0,
        (5,),
        (),
        True,
    ),
    "gather": (lambda x: x[jnp.array([4, 0, 4, 2])] * x[1], (6,), (), True),
    "gather_2d": (
        lambda x: x.reshape(3, 4)[jnp.array([2, 0]), 1:3].ravel(),
        (12,),
        (),
        True,
    ),
    "scatter_set": (lambda x: x.at[jnp.array([1, 3])].set(x[4:6] ** 2), (6,), (), True),
    "scatter_add": (
        lambda x: x.at[jnp.array([1, 1, 0])].add(x[3:] * 2.0),
        (6,),
        (),
        True,
    ),
    "scatter_slice_set": (lambda x: x.at[2:4].set(0.0) + x[0], (6,), (), True),
    "reductions": (
        lambda x: jnp.stack(
            [
                x.reshape(3, 4).sum(0),
                x.reshape(3, 4).max(0),
                x.reshape(3, 4).min(0),
            ]
        ).ravel(),
        (12,),
        (),
        False,
    ),
    "reduce_sum_axes": (lambda x: x.reshape(2, 3, 2).sum((0, 2)), (12,), (), True),
    "select_n_traced": (lambda x, t: jnp.where(t > 0, x, x[::-1]), (5,), (1.0,), False),
    "select_n_const": (
        lambda x: jnp.where(jnp.arange(6) < 3, x, 2 * x[0]),
        (6,),
        (),
        True,
    ),
    "conv_1d": (_laplacian_conv_1d, (9,), (), True),
    "conv_2d": (_laplacian_conv_2d, (30,), (), True),
    "conv_strided_channels": (
        lambda x: jax.lax.conv_general_dilated(
            x.reshape(1, 2, 8),
            jnp.ones((3, 2, 3)),
            (2,),
            [(1, 1)],
            rhs_dilation=(2,),
        ).ravel(),
        (16,),
        (),
        True,
    ),
    "conv_grouped": (
        lambda x: jax.lax.conv_general_dilated(
            x.reshape(1, 2, 6), jnp.ones((2, 1, 3)), (1,), "SAME", feature_group_count=2
        ).ravel(),
        (12,),
        (),
        True,
    ),
    "conv_kernel_depends_on_x": (
        lambda x: jax.lax.conv(
            x[None, None, :6], x[None, None, 6:], (1,), "VALID"
        ).ravel(),
        (8,),
        (),
        True,
    ),
    "squeeze_expand": (lambda x: jnp.expand_dims(x, 0).squeeze(0) * 2, (4,), (), True),
    "convert_element_type": (
        lambda x: x.astype(jnp.float32).astype(x.dtype),
        (4,),
        (),
        True,
    ),
    "comparisons_zero": (
        lambda x: jnp.where(x > 0, 1.0, 0.0) + jnp.floor(x) + jnp.sign(x),
        (4,),
        (),
        True,
    ),
    "stop_gradient": (lambda x: jax.lax.stop_gradient(x) * 2 + x[0], (4,), (), True),
    "cumsum": (lambda x: jnp.cumsum(x) + jnp.cumsum(x[::-1], axis=0), (5,), (), True),
    "cumsum_2d_reverse": (
        lambda x: jax.lax.cumsum(x.reshape(2, 3), axis=1, reverse=True).ravel(),
        (6,),
        (),
        True,
    ),
    "sort": (lambda x: jnp.sort(x.reshape(2, 4), axis=1).ravel(), (8,), (), False),
    "jit_closed_call": (lambda x: jax.jit(jnp.sin)(x) * x[0], (4,), (), True),
    "custom_jvp": (lambda x: jax.nn.relu(x) + _softclip(x[::-1]), (5,), (), False),
    "custom_vjp": (lambda x: _cube(x) + x[0], (4,), (), True),
    "checkpoint": (lambda x: jax.checkpoint(lambda y: y * y[0])(x), (4,), (), True),
    "cond": (
        lambda x, t: jax.lax.cond(t > 0, lambda y: y * 2, lambda y: jnp.roll(y, 1), x),
        (4,),
        (1.0,),
        False,
    ),
    "fori_scan": (lambda x: jax.lax.fori_loop(0, 3, _loop_body, x), (8,), (), True),
    "scan_xs": (
        lambda x: jax.lax.scan(lambda c, xi: (c + xi, c * xi), x[0], x[1:])[1],
        (5,),
        (),
        True,
    ),
    "while": (
        lambda x: jax.lax.while_loop(
            lambda c: c[1] < 3, lambda c: (jnp.roll(c[0], 1) + c[0], c[1] + 1), (x, 0)
        )[0],
        (6,),
        (),
        False,
    ),
    "split_stack": (lambda x: jnp.stack(jnp.split(x, 2)[::-1]).ravel(), (6,), (), True),
    "tile": (lambda x: jnp.tile(x, 2) * x[0], (3,), (), True),
    "clamp": (
        lambda x: jnp.clip(x, -0.5, 0.5) + jax.lax.clamp(0.0, x, 1.0),
        (4,),
        (),
        False,
    ),
    "atan2_rem": (
        lambda x: jnp.arctan2(x[:3], x[3:]) + jnp.fmod(x[:3], 2.0),
        (6,),
        (),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_pattern_matches_jacfwd(name, getkey):
    fn, shape, args, exact = CASES[name]
    x = jnp.zeros(shape)
    pattern = jacobian_sparsity(fn, x, *args)
    assert isinstance(pattern, ssp.csr_matrix)
    assert pattern.dtype == bool
    reference = _dense_pattern(fn, x, args, getkey)
    assert pattern.shape == reference.shape
    dense = pattern.toarray()
    assert not (reference & ~dense).any(), "pattern misses a non-zero"
    if exact:
        np.testing.assert_array_equal(dense, reference)


def _primitives(jaxpr, acc):
    for eqn in jaxpr.eqns:
        acc.add(eqn.primitive.name)
        for sub in jex.core.jaxprs_in_params(eqn.params):
            _primitives(sub, acc)
    return acc


def test_cases_cover_the_registry():
    used: set[str] = set()
    for fn, shape, args, _ in CASES.values():
        _primitives(jax.make_jaxpr(fn)(jnp.zeros(shape), *args).jaxpr, used)
    # Call-like primitives are walked by the shared interpreter, not by a rule.
    registered = {p.name for p in [*sparsity_rules(), *CALL_PRIMITIVES]}
    # Rules written for other spellings, versions or mathematically equivalent
    # families exercised above through one representative.
    not_exercised = registered - used
    important = {
        "add", "sub", "mul", "div", "neg", "exp", "sin", "tanh", "integer_pow",
        "pow", "dot_general", "reshape", "broadcast_in_dim", "transpose", "slice",
        "dynamic_slice", "dynamic_update_slice", "concatenate", "pad", "gather",
        "scatter", "scatter-add", "reduce_sum", "reduce_max", "reduce_min",
        "select_n", "conv_general_dilated", "rev", "squeeze", "convert_element_type",
        "jit", "custom_jvp_call", "custom_vjp_call", "while", "scan", "cond",
        "cumsum", "sort", "stop_gradient", "split", "stack", "tile", "clamp",
        "remat2", "atan2", "rem",
    }  # fmt: skip
    assert important <= registered
    assert not (important & not_exercised), important & not_exercised


@pytest.mark.parametrize(
    "fn,size",
    [
        (_laplacian_roll_1d, 9),
        (_laplacian_roll_2d, 30),
        (_laplacian_conv_1d, 9),
        (_laplacian_conv_2d, 30),
        (_dirichlet_stencil, 7),
        (_dirichlet_stencil_2d, 20),
    ],
)
def test_stencils(fn, size, getkey):
    x = jnp.zeros(size)
    pattern = jacobian_sparsity(fn, x).toarray()
    np.testing.assert_array_equal(pattern, _dense_pattern(fn, x, (), getkey))


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("n", [4, 8])
def test_brusselator_pattern(n, conv, getkey):
    rhs = brusselator(n, conv=conv)
    y = jnp.zeros(2 * n * n)
    pattern = jacobian_sparsity(rhs, y, 2.0)
    np.testing.assert_array_equal(
        pattern.toarray(), _dense_pattern(rhs, y, (2.0,), getkey)
    )
    assert pattern.nnz == 6 * 2 * n * n


HESSIAN_CASES = {
    "products": lambda x: jnp.sum(x[1:] * x[:-1]) + x[0] * 3.0,
    "div": lambda x: jnp.sum(x[:3] / x[3:]),
    "integer_pow": lambda x: jnp.sum(x**3) + jnp.sum(x[:2] ** 1),
    "unary": lambda x: jnp.sum(jnp.exp(x[:3])) + jnp.sin(x[4]) * 2 + x[5],
    "quadratic_form": lambda x: x @ (jnp.asarray(_A[:6, :6]) @ x),
    "dot_pairs": lambda x: x[:3] @ x[3:],
    "chain": lambda x: jnp.tanh(jnp.sum(x[:2])) + jnp.sum(jnp.roll(x, 1) * x) ** 2,
    "linear": lambda x: jnp.sum(x * 2.0) + jnp.abs(x).sum(),
    "matmul": lambda x: jnp.sum(x[:4].reshape(2, 2) @ x[2:].reshape(2, 2)),
}


@pytest.mark.parametrize("name", sorted(HESSIAN_CASES))
def test_hessian_pattern_matches_jax_hessian(name, getkey):
    fn = HESSIAN_CASES[name]
    x = jnp.zeros(6)
    pattern = hessian_sparsity(fn, x)
    assert pattern.shape == (6, 6)
    np.testing.assert_array_equal(pattern.toarray(), _hessian_pattern(fn, x, getkey))


@pytest.mark.parametrize("n", [8, 16, 32])
def test_brusselator_coloring(n):
    pattern = jacobian_sparsity(brusselator(n), jnp.zeros(2 * n * n), 0.0)
    colors = color_columns(pattern)
    assert check_coloring(pattern, colors)
    assert colors.max() + 1 <= 12


@pytest.mark.parametrize(
    "ordering", ["largest_first", "smallest_last", "natural", "dsatur"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_coloring_random_patterns(ordering, seed):
    pattern = ssp.random(30, 25, density=0.15, random_state=seed, format="csr") != 0
    colors = color_columns(pattern, ordering=ordering)
    assert check_coloring(pattern, colors)
    bad = colors.copy()
    rows, cols = pattern.nonzero()
    same_row = [c for r, c in zip(rows, cols, strict=True) if r == rows[0]]
    if len(same_row) > 1:
        bad[same_row[1]] = bad[same_row[0]]
        assert not check_coloring(pattern, bad)


def _textbook_greedy(pattern, order):
    """Each column in `order` takes the smallest colour that no earlier column
    sharing a row with it has (quadratic; a reference)."""
    dense = pattern.toarray()
    colors = np.full(dense.shape[1], -1)
    for v in order:
        taken = {
            colors[u]
            for u in range(dense.shape[1])
            if (dense[:, u] & dense[:, v]).any()
        }
        colors[v] = min(set(range(dense.shape[1] + 1)) - taken)
    return colors


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_coloring_matches_textbook_greedy(compiled, seed, monkeypatch):
    from symml.sparsity import _coloring

    if not compiled:
        monkeypatch.setattr(_coloring, "_group_sparse", None)
    rng = np.random.default_rng(seed)
    dense = rng.random((40, 35)) < 0.12
    dense[:, 3] = False  # an empty column
    pattern = ssp.csr_matrix(dense)
    # largest first: by decreasing Σ (row length − 1) over the column's rows,
    # ties by index
    paths = (dense * (dense.sum(axis=1, keepdims=True) - 1)).sum(axis=0)
    order = sorted(range(35), key=lambda c: (-paths[c], c))
    np.testing.assert_array_equal(
        color_columns(pattern), _textbook_greedy(pattern, order)
    )
    np.testing.assert_array_equal(
        color_columns(pattern, ordering="natural"), _textbook_greedy(pattern, range(35))
    )


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.slow
def test_compressed_jacobian_brusselator(conv, getkey):
    n = 8
    rhs = brusselator(n, conv=conv)
    y = jr.uniform(getkey(), (2 * n * n,))
    pattern = jacobian_sparsity(rhs, y, 0.0)
    colors = color_columns(pattern)
    jac = compressed_jacobian(rhs, y, pattern, colors, 2.0)
    assert isinstance(jac, SparseJacobian)
    dense = jax.jit(jax.jacfwd(rhs))(y, 2.0)
    np.testing.assert_allclose(jac.todense(), dense, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jac.to_scipy().toarray(), dense, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jac.to_bcoo().todense(), dense, rtol=0, atol=1e-12)
    v = jr.normal(getkey(), y.shape)
    np.testing.assert_allclose(jac.matvec(v), dense @ v, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(jac.rmatvec(v), dense.T @ v, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "name", ["unary", "dot_general", "gather", "conv_2d", "scan_xs"]
)
def test_compressed_jacobian_cases(name, getkey):
    fn, shape, args, _ = CASES[name]
    x = jr.normal(getkey(), shape)
    pattern = jacobian_sparsity(fn, x, *args)
    jac = compressed_jacobian(fn, x, pattern, color_columns(pattern), *args)
    dense = np.asarray(jax.jit(jax.jacfwd(fn))(x, *args)).reshape(-1, x.size)
    np.testing.assert_allclose(jac.todense(), dense, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_compressed_jacobian_jit_and_grad(getkey):
    n = 4
    rhs = brusselator(n)
    y = jr.uniform(getkey(), (2 * n * n,))
    pattern = jacobian_sparsity(rhs, y, 0.0)
    colors = color_columns(pattern)

    @jax.jit
    def jac_data(y):
        return compressed_jacobian(rhs, y, pattern, colors, 0.0)

    jac = jac_data(y)
    np.testing.assert_allclose(jac.todense(), jax.jacfwd(rhs)(y, 0.0), atol=1e-12)

    def loss_sparse(y):
        return jnp.sum(compressed_jacobian(rhs, y, pattern, colors, 0.0).data ** 2)

    def loss_dense(y):
        return jnp.sum(jax.jacfwd(rhs)(y, 0.0) ** 2)

    np.testing.assert_allclose(
        jax.jit(jax.grad(loss_sparse))(y),
        jax.jit(jax.grad(loss_dense))(y),
        rtol=1e-10,
        atol=1e-8,
    )


@pytest.mark.slow
def test_solve_stiff_matches_dense(getkey):
    n = 4
    rhs = brusselator(n)
    xs = np.linspace(0.0, 1.0, n, endpoint=False)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    y0 = jnp.asarray(
        np.stack([22 * (gy * (1 - gy)) ** 1.5, 27 * (gx * (1 - gx)) ** 1.5]).ravel()
    )

    def field(t, y, args):
        return rhs(y, t)

    sol = solve_stiff(field, y0, (0.0, 1.5), rtol=1e-8, atol=1e-8)
    ref = dfx.diffeqsolve(
        dfx.ODETerm(field),
        dfx.Kvaerno5(),
        0.0,
        1.5,
        None,
        y0,
        stepsize_controller=dfx.PIDController(rtol=1e-8, atol=1e-8),
    )
    np.testing.assert_allclose(sol.ys, ref.ys, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_sparse_lu_with_lineax(getkey):
    import lineax as lx

    n = 4
    rhs = brusselator(n)
    y = jr.uniform(getkey(), (2 * n * n,))
    pattern = jacobian_sparsity(rhs, y, 0.0)

    def stage(z, args):
        return z - 1e-3 * rhs(y + z, 0.0)

    op = lx.JacobianLinearOperator(stage, jnp.zeros_like(y), None)
    b = jr.normal(getkey(), y.shape)
    sol = lx.linear_solve(op, b, SparseLU(pattern))
    np.testing.assert_allclose(op.as_matrix() @ sol.value, b, atol=1e-10)
    sol_t = lx.linear_solve(op.T, b, SparseLU(pattern))
    np.testing.assert_allclose(op.as_matrix().T @ sol_t.value, b, atol=1e-10)


# ------------------------------------------------------------- error paths


def test_unknown_primitive_raises():
    mystery_p = jex.core.Primitive("mystery_op")
    mystery_p.def_abstract_eval(lambda x: x)

    with pytest.raises(SparsityError, match="mystery_op.*register_sparsity_rule"):
        jacobian_sparsity(lambda x: mystery_p.bind(x) * 2, jnp.zeros(3))


def test_registered_rule_is_used():
    mystery_p = jex.core.Primitive("mystery_identity")
    mystery_p.def_abstract_eval(lambda x: x)
    register_sparsity_rule(mystery_p, lambda ctx: [ctx.deps[0]])
    pattern = jacobian_sparsity(lambda x: mystery_p.bind(x[::-1]), jnp.zeros(3))
    np.testing.assert_array_equal(pattern.toarray(), np.eye(3, dtype=bool)[::-1])
    with pytest.raises(SparsityError, match="`primitive` must be"):
        register_sparsity_rule("add", lambda ctx: [])


def test_hessian_of_non_scalar_raises():
    with pytest.raises(SparsityError, match="must return a scalar"):
        hessian_sparsity(jnp.sin, jnp.zeros(3))


def test_pattern_shape_mismatch_raises():
    with pytest.raises(SparsityError, match="`pattern` has shape"):
        compressed_jacobian(jnp.sin, jnp.zeros(3), np.eye(4, dtype=bool), np.arange(4))
    with pytest.raises(SparsityError, match="`colors` must be"):
        compressed_jacobian(jnp.sin, jnp.zeros(3), np.eye(3, dtype=bool), np.arange(4))
    with pytest.raises(SparsityError, match="must be square"):
        SparseLU(np.ones((3, 4), dtype=bool))


def test_bad_x_raises():
    with pytest.raises(SparsityError, match="floating dtype"):
        jacobian_sparsity(lambda x: x * 2, jnp.arange(3))
    with pytest.raises(SparsityError, match="`ordering` must be"):
        color_columns(np.eye(3, dtype=bool), ordering="random")


# ------------------------------------------------- row and star colourings


def _random_pattern(seed, shape=(30, 25), density=0.15):
    return ssp.random(*shape, density=density, random_state=seed, format="csr") != 0


def _column_coloring_brute(pattern, colors):
    dense = pattern.toarray()
    return all(
        len({colors[j] for j in np.flatnonzero(row)}) == np.count_nonzero(row)
        for row in dense
    )


def _star_coloring_brute(pattern, colors):
    """Distance-1, and no path on four vertices with two colours (definition)."""
    dense = pattern.toarray() | pattern.toarray().T
    np.fill_diagonal(dense, False)
    adj = [set(np.flatnonzero(r)) for r in dense]
    n = len(adj)
    if any(colors[v] == colors[w] for v in range(n) for w in adj[v]):
        return False
    for v1 in range(n):
        for v2 in adj[v1]:
            for v0 in adj[v1] - {v2}:
                for v3 in adj[v2] - {v1, v0}:
                    if len({colors[v0], colors[v1], colors[v2], colors[v3]}) < 3:
                        return False
    return True


def _random_symmetric(seed, n=18, density=0.15):
    upper = ssp.random(n, n, density=density, random_state=seed, format="csr") != 0
    return (upper + upper.T + ssp.identity(n, dtype=bool)).tocsr()


@pytest.mark.parametrize("ordering", ["largest_first", "natural", "best"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_coloring_random_patterns(ordering, seed):
    pattern = _random_pattern(seed)
    colors = color_rows(pattern, ordering=ordering)
    assert colors.shape == (pattern.shape[0],)
    assert check_row_coloring(pattern, colors)
    assert _column_coloring_brute(pattern.T.tocsr(), colors)
    # The validators agree with the definition on arbitrary colourings too.
    rng = np.random.default_rng(seed)
    for _ in range(20):
        guess = rng.integers(0, 6, pattern.shape[0])
        assert check_row_coloring(pattern, guess) == _column_coloring_brute(
            pattern.T.tocsr(), guess
        )
        guess = rng.integers(0, 8, pattern.shape[1])
        assert check_coloring(pattern, guess) == _column_coloring_brute(pattern, guess)


@pytest.mark.parametrize("ordering", ["largest_first", "natural"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_star_coloring_random_patterns(ordering, seed, getkey):
    pattern = _random_symmetric(seed)
    colors = color_star(pattern, ordering=ordering)
    assert check_star_coloring(pattern, colors)
    assert _star_coloring_brute(pattern, colors)
    # Fewer colours than a column colouring of the same (symmetric) pattern.
    assert colors.max() <= color_columns(pattern).max()
    # Every entry of a symmetric matrix with this pattern is read directly from
    # its product with the seed matrix: alone in its colour in row i or row j.
    n = pattern.shape[0]
    values = np.asarray(jr.normal(getkey(), (n, n)))
    mat = np.where(pattern.toarray(), values + values.T, 0.0)
    compressed = mat @ np.eye(colors.max() + 1)[colors]
    for i, j in zip(*np.nonzero(mat), strict=True):
        alone_i = np.count_nonzero(mat[i] * (colors == colors[j])) == 1
        got = compressed[i, colors[j]] if alone_i else compressed[j, colors[i]]
        assert got == pytest.approx(mat[i, j])
    # The validator agrees with the definition on arbitrary colourings.
    rng = np.random.default_rng(seed)
    for _ in range(20):
        guess = rng.integers(0, 7, n)
        assert check_star_coloring(pattern, guess) == _star_coloring_brute(
            pattern, guess
        )


@pytest.mark.parametrize("seed", range(4, 16))
def test_star_coloring_against_definition(seed):
    # Sizes and densities from sparse chains to dense blocks, both orderings:
    # every path on four vertices has three colours, adjacent vertices differ.
    rng = np.random.default_rng(seed)
    n, density = int(rng.integers(5, 40)), float(rng.uniform(0.03, 0.5))
    pattern = _random_symmetric(seed, n=n, density=density)
    for ordering in ("largest_first", "natural"):
        colors = color_star(pattern, ordering=ordering)
        assert colors.shape == (n,)
        assert _star_coloring_brute(pattern, colors)
        assert check_star_coloring(pattern, colors)


def test_star_coloring_of_a_grid():
    # 5-point Laplacian on a 12 x 12 grid: (i + 2 j) mod 5 is even a
    # distance-2 colouring, so a star colouring needs no more colours than a
    # column colouring of the same pattern.
    lap = ssp.diags([1, 1, 1], [-1, 0, 1], shape=(12, 12), dtype=bool)
    grid = (ssp.kron(lap, ssp.identity(12)) + ssp.kron(ssp.identity(12), lap)) != 0
    colors = color_star(grid)
    assert _star_coloring_brute(grid, colors)
    assert colors.max() <= color_columns(grid).max()


def test_star_coloring_of_hessian_patterns():
    for fn, n in [(HESSIAN_CASES["chain"], 6), (_rosenbrock, 40)]:
        pattern = hessian_sparsity(fn, jnp.zeros(n))
        colors = color_star(pattern)
        assert check_star_coloring(pattern, colors)
        assert _star_coloring_brute(pattern, colors)
    # Tridiagonal: three colours, as for a column colouring.
    assert color_star(hessian_sparsity(_rosenbrock, jnp.zeros(40))).max() + 1 == 3


def test_coloring_errors():
    with pytest.raises(SparsityError, match="must be square for a symmetric"):
        color_star(np.ones((2, 3), dtype=bool))
    with pytest.raises(SparsityError, match="must be square for a star"):
        check_star_coloring(np.ones((2, 3), dtype=bool), np.zeros(3, dtype=int))
    with pytest.raises(SparsityError, match="`ordering` must be one of"):
        color_star(np.eye(3, dtype=bool), ordering="smallest_last")
    with pytest.raises(SparsityError, match="`pattern` must be a 2D"):
        color_rows([[1, 0]])
    assert not check_star_coloring(np.eye(2, dtype=bool), np.array([0, -1]))
    assert not check_row_coloring(np.eye(2, dtype=bool), np.array([0.5, 1.0]))


# ---------------------------------------------------- larger Hessian patterns


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


LARGER_HESSIAN_CASES = {
    "rosenbrock": (_rosenbrock, 30),
    "brusselator_energy": (lambda y: jnp.sum(brusselator(4)(y, 2.0) ** 2), 32),
    "conv": (lambda x: jnp.sum(_laplacian_conv_2d(x) ** 2 * x), 30),
    "scan": (
        lambda x: jnp.sum(jax.lax.fori_loop(0, 3, _loop_body, x)),
        8,
    ),
    "gather_scatter": (
        lambda x: jnp.sum(x.at[jnp.array([1, 3])].add(x[4:6] ** 2) * x[::-1]),
        8,
    ),
}


@pytest.mark.parametrize("name", sorted(LARGER_HESSIAN_CASES))
def test_larger_hessian_patterns(name, getkey):
    fn, n = LARGER_HESSIAN_CASES[name]
    x = jnp.zeros(n)
    pattern = hessian_sparsity(fn, x).toarray()
    np.testing.assert_array_equal(pattern, _hessian_pattern(fn, x, getkey))
    # The Jacobian pattern of the gradient is the same set of pairs.
    np.testing.assert_array_equal(pattern, jacobian_sparsity(jax.grad(fn), x).toarray())


def test_hessian_of_while_loop_is_a_superset(getkey):
    # Reverse mode cannot differentiate a `while_loop`, so neither
    # `jax.hessian` nor the Jacobian pattern of `jax.grad` applies; pair
    # propagation does (forward-over-forward is the reference).
    def fn(x):
        out = jax.lax.while_loop(
            lambda c: c[1] < 2, lambda c: (c[0] * jnp.roll(c[0], 1), c[1] + 1), (x, 0)
        )[0]
        return jnp.sum(out)

    x = jnp.zeros(5)
    pattern = hessian_sparsity(fn, x).toarray()
    hess = jax.jit(jax.jacfwd(jax.jacfwd(fn)))
    for _ in range(3):
        reference = np.asarray(hess(jr.normal(getkey(), x.shape))) != 0
        assert not (reference & ~pattern).any()


def test_sparse_lu_reports_a_singular_matrix():
    # SuperLU raises on an exactly singular matrix inside the host callback;
    # the solver turns that into lineax's `singular` result instead.
    import lineax as lx

    from symml.sparsity import SparseLU

    A = jnp.array([[1.0, 2.0], [2.0, 4.0]])
    solver = SparseLU(ssp.csr_matrix(np.ones((2, 2))))
    sol = lx.linear_solve(
        lx.MatrixLinearOperator(A), jnp.array([1.0, 1.0]), solver, throw=False
    )
    assert sol.result == lx.RESULTS.singular
    assert np.all(np.isnan(np.asarray(sol.value)))


def _row_blocks(x, rows):
    """Runs of consecutive rows, a column reversal and stacks, of sets with
    several inputs per element."""
    a = x.reshape(rows, 4)
    s = jnp.sin(a) * jnp.roll(a, 1, 0) + jnp.roll(a, -1, 1)
    blocks = jnp.concatenate([s[2:], s[:2]], 0)
    return jnp.stack([blocks, blocks[:, ::-1] * a[:1]], 0).ravel()


@pytest.mark.parametrize("tiny_cache", [False, True])
@pytest.mark.parametrize("rows", [3, 5, 6])
def test_row_runs_and_permutations(rows, tiny_cache, getkey, monkeypatch):
    """Index maps of slices, reversals, concatenations and stacks are built once
    per shape and reused (or evicted at once from a cache of no room): every
    shape, and a repeated call, matches the dense Jacobian and Hessian."""
    if tiny_cache:
        monkeypatch.setattr(_rules, "_MAPS_MAX_BYTES", 0)

    def fn(x):
        return _row_blocks(x, rows)

    def energy(x):
        return jnp.sum(fn(x) ** 2 * x[-1])

    x = jnp.zeros(rows * 4)
    jac, hess = _dense_pattern(fn, x, (), getkey), _hessian_pattern(energy, x, getkey)
    for _ in range(2):
        np.testing.assert_array_equal(jacobian_sparsity(fn, x).toarray(), jac)
        np.testing.assert_array_equal(hessian_sparsity(energy, x).toarray(), hess)


def test_pattern_owns_its_arrays():
    """Editing a returned pattern in place leaves later detections unchanged
    (internal row pointers are shared between sets)."""

    def fn(x):
        return x[::-1] * 2.0

    x = jnp.zeros(5)
    first = jacobian_sparsity(fn, x)
    first.indptr[1:] = 0  # the user's own matrix, now emptied
    np.testing.assert_array_equal(jacobian_sparsity(fn, x).toarray(), np.eye(5)[::-1])
