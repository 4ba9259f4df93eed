"""Method-of-lines discretisation, checked against exact Fourier-mode solutions
of the heat equation, hand-written numpy stencils, the nonzeros of dense
Jacobians and the jaxpr-based sparsity detection."""

import importlib
import time

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import sympy as sp

import symml as sm
from symml import DiscretizedModel, DiscretizeError, discretize, init_params, solve
from symml.sparsity import jacobian_sparsity

t, x, y = sp.symbols("t x y")
KINDS = ("periodic", "dirichlet", "neumann")


def _dense_jacobian(ode, u0, tt=0.7, params=None):
    jac = jax.jit(jax.jacfwd(lambda z, p: ode.rhs(tt, z, p)))
    return np.asarray(jac(u0, params))


# -- the heat equation against Fourier modes ------------------------------------

# (initial mode, decay rate / D) per boundary kind on [0, 1]
MODES = {
    "periodic": (lambda s: sp.sin(2 * sp.pi * s), 4 * np.pi**2),
    "dirichlet": (lambda s: sp.sin(sp.pi * s), np.pi**2),
    "neumann": (lambda s: sp.cos(sp.pi * s), np.pi**2),
}
D_HEAT, T_HEAT = 0.1, 0.2


def _heat_error_1d(kind: str, order: int, n: int) -> float:
    """Max error at T of the semi-discrete heat equation, integrated exactly
    (it is linear: u(T) = expm(T J) u0), against the exact PDE solution."""
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), D_HEAT * u.diff(x, 2))], domain={x: (0, 1)}, boundary=kind
    )
    ode = discretize(model, {x: n}, order=order)
    mode, rate = MODES[kind]
    u0 = ode.initial_state({u: mode(x)})
    J = _dense_jacobian(ode, u0)
    uT = sla.expm(T_HEAT * J) @ np.asarray(u0)
    exact = np.asarray(u0) * np.exp(-D_HEAT * rate * T_HEAT)
    return float(np.max(np.abs(uT - exact)))


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("kind", KINDS)
def test_heat_1d_converges_at_stencil_order(kind, order):
    e1, e2 = _heat_error_1d(kind, order, 16), _heat_error_1d(kind, order, 32)
    rate = np.log2(e1 / e2)
    assert e2 < 2e-3
    assert order - 0.3 < rate < order + 1.0, (e1, e2, rate)


# Each boundary kind's 2-D stencils are checked against numpy below and its
# convergence in 1-D above; the 2-D solves of the other kinds are slow.
@pytest.mark.parametrize(
    "kind",
    ["periodic", *(pytest.param(k, marks=pytest.mark.slow) for k in KINDS[1:])],
)
def test_heat_2d_against_exact_and_solve(kind):
    (u,) = sm.states("u", t, x, y)
    model = sm.Model(
        [sp.Eq(u.diff(t), D_HEAT * (u.diff(x, 2) + u.diff(y, 2)))],
        domain={x: (0, 1), y: (0, 1)},
        boundary=kind,
    )
    mode, rate = MODES[kind]
    errors = []
    for n in (8, 16):
        ode = discretize(model, {x: n, y: n}, order=4)
        assert ode.shape == (n, n) and ode.n == n * n
        u0 = ode.initial_state({u: mode(x) * mode(y)})
        uT = sla.expm(T_HEAT * _dense_jacobian(ode, u0)) @ np.asarray(u0)
        exact = np.asarray(u0) * np.exp(-2 * D_HEAT * rate * T_HEAT)
        errors.append(np.max(np.abs(uT - exact)))
    assert errors[1] < 2e-4
    assert np.log2(errors[0] / errors[1]) > 3.0
    # The ODE solve agrees with the exact semi-discrete solution.
    sol = solve(ode, u0, (0.0, T_HEAT), solver="Tsit5", rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sol.ys[-1], uT, atol=1e-7)
    assert sol.unflatten()["u"].shape == (1, 16, 16)


# -- the right-hand side against a hand-written numpy stencil -----------------------

A_, B_, DU, DV, C_ = 1.0, 3.0, 0.02, 0.05, 0.3
G_LO, FLUX_HI = 0.5, -0.25  # u(x = 0) = G_LO (1 + sin t); du/dx(x = 1) = FLUX_HI


def _forcing(X, Y, tt):
    disk = (X - 0.3) ** 2 + (Y - 0.6) ** 2 <= 0.1**2
    return np.where(disk & (tt >= 1.1), 5.0, 0.0) + np.heaviside(tt - 0.5, 0.5) * X


def _brusselator_like(kind: str):
    u, v = sm.states("u v", t, x, y)
    forcing = (
        sp.Piecewise(
            (5.0, sp.And((x - 0.3) ** 2 + (y - 0.6) ** 2 <= 0.1**2, t >= 1.1)),
            (0, True),
        )
        + sp.Heaviside(t - 0.5, sp.Rational(1, 2)) * x
    )
    a, b = sp.symbols("a b")
    eqs = [
        sp.Eq(
            u.diff(t),
            a
            - (b + 1) * u
            + u**2 * v
            + DU * (u.diff(x, 2) + u.diff(y, 2))
            + C_ * u * u.diff(x)
            + forcing,
        ),
        sp.Eq(
            v.diff(t),
            b * u - u**2 * v + DV * (v.diff(x, 2) + v.diff(y, 2)) + C_ * u.diff(x, y),
        ),
    ]
    conditions = []
    if kind == "dirichlet":
        conditions = [sp.Eq(u.subs(x, 0), G_LO * (1 + sp.sin(t)))]
    if kind == "neumann":
        conditions = [sp.Eq(u.diff(x).subs(x, 1), FLUX_HI)]
    model = sm.Model(
        eqs,
        parameters={a: A_, b: B_},
        domain={x: (0, 1), y: (0, 1)},
        boundary=kind,
        conditions=conditions,
    )
    return model, (u, v)


def _pad_ref(U, axis, kind, h, g_lo=0.0, g_hi=0.0):
    """Order-2 ghost points, written out: periodic wrap, Dirichlet value, and
    for Neumann the cubic through u_0, u_1, u_2 with slope h g at the wall."""
    U = np.moveaxis(U, axis, 0)
    if kind == "periodic":
        lo, hi = U[-1], U[0]
    elif kind == "dirichlet":
        lo, hi = np.full_like(U[0], g_lo), np.full_like(U[0], g_hi)
    else:

        def ghost(u0, u1, u2, s):
            d = (u2 - 4 * u1 + 3 * u0 + 2 * s) / 4
            c = u1 - u0 - s - d
            return u0 - s + c - d

        lo = ghost(U[0], U[1], U[2], h * g_lo)
        hi = ghost(U[-1], U[-2], U[-3], -h * g_hi)
    return np.moveaxis(np.concatenate([lo[None], U, hi[None]]), 0, axis)


def _rhs_ref(kind, n, tt, U, V):
    if kind == "periodic":
        h = 1.0 / n
        xs = h * np.arange(n)
    elif kind == "dirichlet":
        h = 1.0 / (n + 1)
        xs = h * np.arange(1, n + 1)
    else:
        h = 1.0 / (n - 1)
        xs = h * np.arange(n)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    g_lo = G_LO * (1 + np.sin(tt)) if kind == "dirichlet" else 0.0
    g_hi = FLUX_HI if kind == "neumann" else 0.0

    def padded(W, with_bc):
        W = _pad_ref(W, 0, kind, h, g_lo if with_bc else 0.0, g_hi if with_bc else 0)
        return _pad_ref(W, 1, kind, h)

    Pu, Pv = padded(U, True), padded(V, False)
    c = slice(1, -1)

    def lap(P):
        return (P[2:, c] + P[:-2, c] + P[c, 2:] + P[c, :-2] - 4 * P[c, c]) / h**2

    ux = (Pu[2:, c] - Pu[:-2, c]) / (2 * h)
    uxy = (Pu[2:, 2:] - Pu[2:, :-2] - Pu[:-2, 2:] + Pu[:-2, :-2]) / (4 * h * h)
    du = A_ - (B_ + 1) * U + U**2 * V + DU * lap(Pu) + C_ * U * ux + _forcing(X, Y, tt)
    dv = B_ * U - U**2 * V + DV * lap(Pv) + C_ * uxy
    return np.concatenate([du.ravel(), dv.ravel()])


def _stencil_cases():
    # Both times (forcing off, then on) for periodic; the other kinds' boundary
    # values at the later time, and at the earlier one in the full suite.
    for kind in KINDS:
        for tt in (0.3, 1.2):
            slow = kind != "periodic" and tt == 0.3
            marks = pytest.mark.slow if slow else ()
            yield pytest.param(kind, tt, marks=marks, id=f"{kind}-{tt}")


@pytest.mark.parametrize("kind, tt", list(_stencil_cases()))
@pytest.mark.slow
def test_rhs_matches_hand_written_stencil(kind, tt):
    model, (u, v) = _brusselator_like(kind)
    n = 12
    ode = discretize(model, {x: n, y: n})
    rng = np.random.default_rng(0)
    U, V = rng.uniform(0.5, 2, (n, n)), rng.uniform(0.5, 2, (n, n))
    got = ode.rhs(tt, ode.flatten({"u": U, "v": V}))
    np.testing.assert_allclose(got, _rhs_ref(kind, n, tt, U, V), rtol=1e-12, atol=1e-9)
    # float32 in, float32 out, and jit / vmap work.
    u32 = ode.flatten({"u": U, "v": V}).astype(jnp.float32)
    f32 = jax.jit(ode.rhs)(tt, u32)
    assert f32.dtype == jnp.float32
    np.testing.assert_allclose(f32, got, rtol=2e-4, atol=2e-3)
    batch = jax.vmap(ode, in_axes=(None, 0))(tt, jnp.stack([u32, u32]))
    assert batch.shape == (2, ode.n)


def test_flat_layout():
    model, (u, v) = _brusselator_like("periodic")
    ode = discretize(model, {x: 4, y: 3})
    assert ode.state_names == ("u", "v") and ode.shape == (4, 3) and ode.n == 24
    np.testing.assert_allclose(ode.grid[x], np.arange(4) / 4)
    np.testing.assert_allclose(ode.grid[y], np.arange(3) / 3)
    flat = jnp.arange(24.0)
    parts = ode.unflatten(flat)
    np.testing.assert_array_equal(parts["u"], np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(parts["v"], 12 + np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(ode.flatten(parts), flat)
    assert ode.state_slice("v") == slice(12, 24)
    u0 = ode.initial_state({u: x + 10 * y, "v": np.ones((4, 3))})
    X, Y = np.meshgrid(ode.grid[x], ode.grid[y], indexing="ij")
    np.testing.assert_allclose(ode.unflatten(u0)["u"], X + 10 * Y)
    assert isinstance(ode, DiscretizedModel)


def test_grids_per_boundary_kind():
    (u,) = sm.states("u", t, x, y)
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2) + u.diff(y, 2))],
        domain={x: (-1, 1), y: (0, 2)},
        boundary={x: "dirichlet", y: "neumann"},
        conditions=[sp.Eq(u.subs(t, 0), x * y)],
    )
    ode = discretize(model, {x: 3, y: 5})
    np.testing.assert_allclose(ode.grid[x], [-0.5, 0.0, 0.5])
    np.testing.assert_allclose(ode.grid[y], [0.0, 0.5, 1.0, 1.5, 2.0])
    X, Y = np.meshgrid(ode.grid[x], ode.grid[y], indexing="ij")
    np.testing.assert_allclose(ode.unflatten(ode.initial_state())["u"], X * Y)


# -- Jacobian patterns ---------------------------------------------------------------


# Orders 2 and 6 (the narrowest and the widest stencils, with the most ghost
# points) in the fast subset; order 4 in the full suite.
ORDERS = [2, pytest.param(4, marks=pytest.mark.slow), 6]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_pattern_2d_equals_dense_and_detected(kind, order):
    model, _ = _brusselator_like(kind)
    ode = discretize(model, {x: 9, y: 8}, order=order)
    u0 = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2, ode.n))
    pattern = ode.jacobian_sparsity()
    assert pattern.shape == (ode.n, ode.n) and pattern.dtype == bool
    dense = _dense_jacobian(ode, u0) != 0
    np.testing.assert_array_equal(pattern.toarray(), dense)
    detected = jacobian_sparsity(lambda z, tt: ode.rhs(tt, z), u0, 0.7)
    np.testing.assert_array_equal(pattern.toarray(), detected.toarray())


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_pattern_1d_equals_dense_and_detected(kind, order):
    u, v = sm.states("u v", t, x)
    model = sm.Model(
        [
            sp.Eq(u.diff(t), u.diff(x, 2) - u * u.diff(x) + v),
            sp.Eq(v.diff(t), u.diff(x, 3) + v.diff(x) * v.diff(x, 4)),
        ],
        domain={x: (0, 2)},
        boundary=kind,
    )
    ode = discretize(model, {x: 17}, order=order)
    u0 = jnp.asarray(np.random.default_rng(2).normal(size=ode.n))
    pattern = ode.jacobian_sparsity().toarray()
    detected = jacobian_sparsity(lambda z, tt: ode.rhs(tt, z), u0, 0.1)
    np.testing.assert_array_equal(pattern, detected.toarray())
    # Near a wall, a ghost point's weight can cancel a stencil weight exactly;
    # the dense Jacobian then holds zero or round-off there. Elsewhere the
    # pattern is exactly the dense nonzeros.
    J = np.abs(_dense_jacobian(ode, u0))
    assert not (J[~pattern] != 0).any()
    rows, _ = np.nonzero(pattern & ~(1e-9 * J.max() < J))
    if kind == "periodic":
        assert rows.size == 0
    grid_index = rows % 17
    assert np.all((grid_index < 8) | (grid_index > 17 - 9))


def test_pattern_odd_derivative_skips_centre():
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x))], domain={x: (0, 1)}, boundary="periodic"
    )
    pattern = discretize(model, {x: 8}).jacobian_sparsity().toarray()
    assert not pattern.diagonal().any()
    assert pattern.sum() == 16


# -- unknown network terms ---------------------------------------------------------


def _fisher(kind="dirichlet"):
    (rho,) = sm.states("rho", t, x)
    D = sp.Symbol("D")
    N = sm.Unknown("N", [rho], hidden=(8,))
    model = sm.Model(
        [sp.Eq(rho.diff(t), N[0] + D * rho.diff(x, 2))],
        parameters={D: sm.trainable(0.05)},
        domain={x: (0, 1)},
        boundary=kind,
    )
    return model, rho


def test_universal_pde_lowers_and_differentiates(getkey):
    model, rho = _fisher("periodic")
    ode = discretize(model, {x: 16}, order=4)
    params = init_params(model, key=getkey())
    u0 = ode.initial_state({rho: sp.exp(-30 * (x - 0.5) ** 2)})
    net = params.networks["N"]
    rho0 = np.asarray(u0)
    reaction = jax.vmap(net)(jnp.asarray(rho0)[:, None])[:, 0]
    D = float(params.values["D"])
    # The rest is D times the fourth-order periodic Laplacian, written out here
    # with its textbook weights (-1/12, 4/3, -5/2, 4/3, -1/12) / h^2.
    h = 1 / 16
    lap = (
        sum(
            w * np.roll(rho0, -k)
            for k, w in zip(
                range(-2, 3), [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12], strict=True
            )
        )
        / h**2
    )
    np.testing.assert_allclose(
        ode.rhs(0.0, u0, params) - reaction, D * lap, rtol=1e-10, atol=1e-10
    )
    assert D > 0
    J = _dense_jacobian(ode, u0, params=params)

    values = ode.unknown_values(0.0, u0, params)
    inputs, outputs = values["N"]
    assert inputs.shape == (16, 1) and outputs.shape == (16, 1)
    np.testing.assert_allclose(inputs[:, 0], rho0)
    np.testing.assert_allclose(outputs[:, 0], reaction)

    @jax.jit
    def loss(p):
        return jnp.sum(ode.rhs(0.1, u0, p) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree_util.tree_leaves(grads.networks)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in leaves)
    # d loss / dD against a float64 central difference.
    eps = 1e-6

    def with_d(d):
        return loss(type(params)({"D": jnp.asarray(d)}, params.networks))

    fd = (with_d(D + eps) - with_d(D - eps)) / (2 * eps)
    np.testing.assert_allclose(grads.values["D"], fd, rtol=1e-6)
    # The pattern: the network's input is rho at the same point.
    pattern = ode.jacobian_sparsity().toarray()
    np.testing.assert_array_equal(pattern, J != 0)


def test_params_required():
    model, rho = _fisher()
    ode = discretize(model, {x: 8})
    u0 = ode.initial_state({rho: x})
    with pytest.raises(DiscretizeError, match="needs `params`"):
        ode.rhs(0.0, u0)
    with pytest.raises(DiscretizeError, match="needs `params=`"):
        solve(ode, u0, (0.0, 1.0))


# -- solve: sparse vs dense ----------------------------------------------------------


# Two implicit solves, each compiled for this test; the sparse stiff solve runs
# in the fast subset in tests/test_sparsity.py.
@pytest.mark.slow
def test_solve_sparse_matches_dense():
    # Stiff: strong diffusion on a fine grid (D / h^2 = 400) plus reaction.
    u, v = sm.states("u v", t, x)
    model = sm.Model(
        [
            sp.Eq(u.diff(t), 1 - 4 * u + u**2 * v + sp.Rational(1, 4) * u.diff(x, 2)),
            sp.Eq(v.diff(t), 3 * u - u**2 * v + sp.Rational(1, 4) * v.diff(x, 2)),
        ],
        domain={x: (0, 1)},
        boundary="neumann",
    )
    ode = discretize(model, {x: 41})
    u0 = ode.initial_state({u: 1 + sp.cos(sp.pi * x), v: 3})
    ts = jnp.linspace(0.0, 0.5, 3)
    kw = dict(saveat=ts, solver=dfx.Kvaerno3(), rtol=1e-7, atol=1e-9)
    sparse = solve(ode, u0, (0.0, 0.5), **kw)
    dense = solve(ode, u0, (0.0, 0.5), sparse=False, **kw)
    assert sparse.ys.shape == (3, ode.n)
    np.testing.assert_allclose(sparse.ts, ts)
    np.testing.assert_allclose(sparse.ys, dense.ys, atol=1e-6)
    assert sparse["v"].shape == (3, 41)
    assert sparse.unflatten()["u"].shape == (3, 41)


def test_solve_errors():
    model, (u, v) = _brusselator_like("periodic")
    ode = discretize(model, {x: 4, y: 4})
    u0 = ode.initial_state({u: 1, v: 1})
    with pytest.raises(DiscretizeError, match="not a diffrax ODE solver"):
        solve(ode, u0, (0.0, 1.0), solver="RungeKutta9000")
    with pytest.raises(DiscretizeError, match=r"`y0` has shape \(3,\)"):
        solve(ode, jnp.zeros(3), (0.0, 1.0))
    with pytest.raises(sm.LoweringError, match="needs a lowered system"):
        solve(model, u0, (0.0, 1.0))
    with pytest.raises(DiscretizeError, match=r"t0 < t1 \(symml integrates forward"):
        solve(ode, u0, (1.0, 0.0))
    with pytest.raises(DiscretizeError, match="outside `t_span`"):
        solve(ode, u0, (0.0, 1.0), saveat=[0.5, 2.0])
    with pytest.raises(DiscretizeError, match="not finite"):
        solve(ode, u0.at[3].set(np.nan), (0.0, 1.0))


# -- lowering is flat in the grid size ----------------------------------------------


def test_lowering_does_not_grow_with_grid(monkeypatch):
    compile_module = importlib.import_module("symml.lowering._compile")

    calls = []
    original = compile_module.find_rule

    def counting(expr, rules):
        calls.append(expr)
        return original(expr, rules)

    monkeypatch.setattr(compile_module, "find_rule", counting)
    model, _ = _brusselator_like("neumann")
    counts, times = [], []
    for n in (32, 256):
        calls.clear()
        t0 = time.perf_counter()
        discretize(model, {x: n, y: n}, order=4)
        times.append(time.perf_counter() - t0)
        counts.append(len(calls))
    # The same sympy work at every size: no per-grid-point expressions.
    assert counts[0] == counts[1] > 0
    print(f"discretize: N=32 {times[0]:.3f}s, N=256 {times[1]:.3f}s")


# -- errors -------------------------------------------------------------------------


def _heat(boundary="periodic", conditions=(), domain=None):
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        domain=domain or {x: (0, 1)},
        boundary=boundary,
        conditions=conditions,
    )
    return model, u


def test_error_not_a_pde():
    (z,) = sm.states("z", t)
    ode_model = sm.Model([sp.Eq(z.diff(t), -z)])
    with pytest.raises(DiscretizeError, match="needs a PDE model"):
        discretize(ode_model, {x: 8})
    with pytest.raises(DiscretizeError, match="needs a symml `Model`"):
        discretize("u_t = u_xx", {x: 8})


def test_error_grid():
    model, _ = _heat()
    with pytest.raises(DiscretizeError, match="no size for the spatial variable"):
        discretize(model, {})
    with pytest.raises(DiscretizeError, match="`y`, which is not a spatial variable"):
        discretize(model, {x: 8, y: 8})
    with pytest.raises(DiscretizeError, match="must be an integer"):
        discretize(model, {x: 8.5})
    with pytest.raises(DiscretizeError, match="must be a dict"):
        discretize(model, [8])
    with pytest.raises(DiscretizeError, match=r"`grid\[x\] = 4` is too small"):
        discretize(model, {x: 4}, order=4)
    neumann, _ = _heat("neumann")
    with pytest.raises(DiscretizeError, match="too small"):
        discretize(neumann, {x: 1})
    with pytest.raises(DiscretizeError, match="use at least 7 points"):
        discretize(neumann, {x: 6}, order=6)


def test_error_order():
    model, _ = _heat()
    with pytest.raises(DiscretizeError, match="`order=3` is not supported"):
        discretize(model, {x: 8}, order=3)


def test_error_unsupported_derivatives():
    (u,) = sm.states("u", t, x)
    mixed = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, t))], domain={x: (0, 1)}, boundary="periodic"
    )
    with pytest.raises(DiscretizeError, match="time derivative"):
        discretize(mixed, {x: 8})
    N = sm.Unknown("N", [x])
    network = sm.Model(
        [sp.Eq(u.diff(t), N[0].diff(x))], domain={x: (0, 1)}, boundary="periodic"
    )
    with pytest.raises(DiscretizeError, match="derivative of an unknown network"):
        discretize(network, {x: 8})
    M = sm.Unknown("M", [u])
    chain = sm.Model(
        [sp.Eq(u.diff(t), sp.Derivative(M[0], x))],
        domain={x: (0, 1)},
        boundary="periodic",
    )
    with pytest.raises(DiscretizeError, match="derivative of an unknown network"):
        discretize(chain, {x: 8})
    point = sm.Model(
        [sp.Eq(u.diff(t), u.subs(x, 0))], domain={x: (0, 1)}, boundary="periodic"
    )
    with pytest.raises(DiscretizeError, match="at a point"):
        discretize(point, {x: 8})


def test_error_boundary_kinds():
    model, _ = _heat(boundary=None)
    with pytest.raises(DiscretizeError, match="no boundary kind for `x`"):
        discretize(model, {x: 8})
    (u,) = sm.states("u", t, x, y)
    partial = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2) + u.diff(y, 2))],
        domain={x: (0, 1), y: (0, 1)},
        boundary={x: "periodic"},
    )
    with pytest.raises(DiscretizeError, match="no boundary kind for `y`"):
        discretize(partial, {x: 8, y: 8})
    extra = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2) + u.diff(y, 2))],
        domain={x: (0, 1), y: (0, 1)},
        boundary={x: "periodic", y: "periodic", t: "periodic"},
    )
    with pytest.raises(DiscretizeError, match="`boundary=` names `t`"):
        discretize(extra, {x: 8, y: 8})


def test_error_boundary_conditions():
    (u,) = sm.states("u", t, x, y)

    def model(conditions, boundary="dirichlet"):
        return sm.Model(
            [sp.Eq(u.diff(t), u.diff(x, 2) + u.diff(y, 2))],
            domain={x: (0, 1), y: (0, 1)},
            boundary=boundary,
            conditions=conditions,
        )

    grid = {x: 8, y: 8}
    with pytest.raises(DiscretizeError, match="expression of time `t`"):
        discretize(model([sp.Eq(u.subs(x, 0), y)]), grid)
    with pytest.raises(DiscretizeError, match="expression of time `t`"):
        discretize(model([sp.Eq(u.subs(x, 0), u.subs(x, 1))]), grid)
    with pytest.raises(DiscretizeError, match="not an end of the domain"):
        discretize(model([sp.Eq(u.subs(x, sp.Rational(1, 2)), 1)]), grid)
    with pytest.raises(DiscretizeError, match="given twice"):
        discretize(model([sp.Eq(u.subs(x, 0), 1), sp.Eq(u.subs(x, 0), 2)]), grid)
    with pytest.raises(DiscretizeError, match="is a neumann condition"):
        discretize(model([sp.Eq(u.diff(x).subs(x, 0), 1)]), grid)
    with pytest.raises(DiscretizeError, match="is a dirichlet condition"):
        discretize(model([sp.Eq(u.subs(x, 0), 1)], "periodic"), grid)


def test_error_initial_state_and_layout():
    model, u = _heat()
    ode = discretize(model, {x: 8})
    with pytest.raises(DiscretizeError, match="No initial value for `u`"):
        ode.initial_state()
    with pytest.raises(DiscretizeError, match="`w` is not a state"):
        ode.initial_state({u: x, "w": x})
    with pytest.raises(DiscretizeError, match="spatial variables and fixed"):
        ode.initial_state({u: sp.Symbol("q") * x})
    with pytest.raises(DiscretizeError, match="expected a last axis of size 8"):
        ode.unflatten(jnp.zeros(7))
    with pytest.raises(DiscretizeError, match=r"has shape \(7,\); expected \(8,\)"):
        ode.flatten({"u": jnp.zeros(7)})
    with pytest.raises(DiscretizeError, match="missing `u`"):
        ode.flatten({})


def test_time_dependent_dirichlet_and_flux():
    """Stencils and ghost points are exact for polynomials of low degree, so a
    straight line matching the boundary values (at time t) or the fluxes has
    u_xx = 0 exactly: the boundary data enter as given."""
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        domain={x: (0, 1)},
        boundary="dirichlet",
        conditions=[sp.Eq(u.subs(x, 0), 1 + t), sp.Eq(u.subs(x, 1), 3 + t)],
    )
    for order in (2, 4, 6):
        ode = discretize(model, {x: 12}, order=order)
        u0 = ode.initial_state({u: 1.5 + 2 * x})  # the line at t = 0.5
        np.testing.assert_allclose(ode.rhs(0.5, u0), 0.0, atol=1e-9)
    neumann = sm.Model(
        [sp.Eq(u.diff(t), u.diff(x, 2))],
        domain={x: (0, 1)},
        boundary="neumann",
        conditions=[sp.Eq(u.diff(x).subs(x, 0), 2), sp.Eq(u.diff(x).subs(x, 1), 2)],
    )
    for order in (2, 4, 6):
        ode = discretize(neumann, {x: 12}, order=order)
        u0 = ode.initial_state({u: 0.5 + 2 * x})
        np.testing.assert_allclose(ode.rhs(0.0, u0), 0.0, atol=1e-9)
