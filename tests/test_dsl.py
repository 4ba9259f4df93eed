"""The DSL: declarations, validation, and reduction to a first-order system.

Reductions are checked against hand-written first-order systems: symbolically
on the right-hand sides, and numerically on diffrax trajectories of the lowered
model against a hand-written JAX right-hand side.
"""

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml
from symml import ModelError

t = sp.Symbol("t")
a, b, c, k = sp.symbols("a b c k")


def _states(names="x y"):
    return symml.states(names, t)


def _trajectories(f, params, hand, names, y0, *, t1=6.0):
    """Solve the lowered `f` and the hand-written `hand(t, u)` (states in the
    order `names`) from `y0`; returns both trajectories in the order `names`.

    Both systems are integrated side by side as one system (one compilation).
    """
    n = len(names)
    order = np.array([f.state_names.index(name) for name in names])
    u0 = np.empty(n)
    u0[order] = y0

    def both(t, v, params):
        return jnp.concatenate([f(t, v[:n], params), hand(t, v[n:])])

    ts = jnp.linspace(0.0, t1, 25)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(both),
        dfx.Tsit5(),
        t0=0.0,
        t1=t1,
        dt0=0.01,
        y0=jnp.concatenate([jnp.asarray(u0), jnp.asarray(y0, jnp.float64)]),
        args=params,
        saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
        max_steps=100_000,
    )
    return sol.ys[:, :n][:, order], sol.ys[:, n:]


def _rhs_equal(model, expected: dict):
    """`model.rhs` equals `expected` ({state-vector entry: rhs}) symbolically."""
    got = dict(zip(model.state_vector, model.rhs, strict=True))
    assert set(got) == set(expected)
    for s, rhs in expected.items():
        assert sp.simplify(got[s] - rhs) == 0, (s, got[s], rhs)


# -- declarations -------------------------------------------------------------


def test_states_and_unknown_declarations():
    x, y = _states()
    assert x.func.__name__ == "x" and x.args == (t,)
    assert isinstance(x, symml.dsl.StateFunction)
    U = symml.Unknown("U", [x * y, sp.sin(t)], 2)
    assert len(U) == 2
    assert U[1].args == (x * y, sp.sin(t))
    assert isinstance(U[0], symml.dsl.UnknownOutput)
    assert U[0] != U[1]
    assert list(U) == [U[0], U[1]]


def test_model_parameters_known_and_trainable():
    x, y = _states()
    m = symml.Model(
        [sp.Eq(x.diff(t), a * x), sp.Eq(y.diff(t), -b * y)],
        parameters={a: 1.5, "b": symml.trainable(0.25)},
    )
    assert isinstance(m, symml.ODEModel) and isinstance(m, symml.Model)
    assert m.fixed_parameters == {a: 1.5}
    assert m.trainable_parameters == {b: 0.25}
    assert m.state_names == ("x", "y")


# -- reduction to first order ---------------------------------------------------


def test_second_order_reduction_symbolic():
    (x,) = _states("x")
    m = symml.Model(
        sp.Eq(x.diff(t, 2) + c * x.diff(t) + k * x, sp.sin(t)),
        parameters={c: 0.3, k: 2.0},
    )
    assert m.state_names == ("x", "x_t")
    assert m.state_vector == (x, x.diff(t))
    _rhs_equal(m, {x: x.diff(t), x.diff(t): sp.sin(t) - c * x.diff(t) - k * x})


def test_third_order_reduction_symbolic():
    (x,) = _states("x")
    m = symml.Model(sp.Eq(x.diff(t, 3), -x.diff(t) * x))
    assert m.state_names == ("x", "x_t", "x_tt")
    _rhs_equal(
        m,
        {x: x.diff(t), x.diff(t): x.diff(t, 2), x.diff(t, 2): -x.diff(t) * x},
    )


def test_damped_driven_oscillator_trajectory_matches_hand_reduction():
    (x,) = _states("x")
    cv, kv = 0.3, 2.0
    m = symml.Model(
        sp.Eq(x.diff(t, 2) + c * x.diff(t) + k * x, sp.sin(t)),
        parameters={c: cv, k: kv},
    )
    f, params = symml.lower(m)
    assert f.state_names == ("x", "x_t")

    def hand(t, u):
        pos, vel = u
        return jnp.stack([vel, jnp.sin(t) - cv * vel - kv * pos])

    got, want = _trajectories(f, params, hand, ("x", "x_t"), [1.0, -0.5])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
    assert np.ptp(want[:, 0]) > 0.5  # a real trajectory, not a constant


def test_unsolved_form_linear_in_highest_derivative():
    x, y = _states()
    m = symml.Model([sp.Eq(2 * x.diff(t) - y, x), sp.Eq(y.diff(t), -x)])
    _rhs_equal(m, {x: (x + y) / 2, y: -x})
    f, params = symml.lower(m)

    def hand(t, u):
        xv, yv = u
        return jnp.stack([(xv + yv) / 2, -xv])

    got, want = _trajectories(f, params, hand, ("x", "y"), [0.5, 1.0])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)


def test_coupled_mixed_highest_derivatives():
    # The highest derivatives x'' and y' appear in both equations: the linear
    # system for them is not diagonal.
    x, y = _states()
    m = symml.Model(
        [
            sp.Eq(x.diff(t, 2) + y.diff(t), -a * x),
            sp.Eq(x.diff(t, 2) - y.diff(t), -y),
        ],
        parameters={a: 1.5},
    )
    assert set(m.state_names) == {"x", "x_t", "y"}
    _rhs_equal(
        m,
        {
            x: x.diff(t),
            x.diff(t): -(a * x + y) / 2,
            y: (y - a * x) / 2,
        },
    )
    f, params = symml.lower(m)

    def hand(t, u):
        xv, vv, yv = u
        return jnp.stack([vv, -(1.5 * xv + yv) / 2, (yv - 1.5 * xv) / 2])

    got, want = _trajectories(
        f, params, hand, ("x", "x_t", "y"), [1.0, 0.0, 0.5], t1=3.0
    )
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)


def test_permuted_equations():
    # Equation i need not be the one for state i.
    x, y = _states()
    m = symml.Model([sp.Eq(y.diff(t) + x.diff(t), y), sp.Eq(x.diff(t), -x)])
    _rhs_equal(m, {x: -x, y: x + y})


def test_unevaluated_derivative_is_expanded():
    # d(x^2)/dt = -x is an ODE in x once the derivative is expanded.
    (x,) = _states("x")
    m = symml.Model(sp.Eq(sp.Derivative(x**2, t), -(x**3)))
    _rhs_equal(m, {x: -(x**2) / 2})


def test_expression_means_equal_zero():
    (x,) = _states("x")
    m = symml.Model(x.diff(t) + a * x, parameters={a: 2.0})
    _rhs_equal(m, {x: -a * x})


def test_unknown_inputs_may_use_lower_derivatives_and_time():
    (x,) = _states("x")
    U = symml.Unknown("U", [x, x.diff(t), sp.cos(t)])
    m = symml.Model(sp.Eq(x.diff(t, 2), U[0]))
    assert m.unknowns == (U,)
    _rhs_equal(m, {x: x.diff(t), x.diff(t): U[0]})


# -- validation errors -------------------------------------------------------------


def test_undeclared_symbol():
    (x,) = _states("x")
    with pytest.raises(ModelError, match=r"symbol\(s\) `a`.*not declared"):
        symml.Model(sp.Eq(x.diff(t), -a * x))


def test_undeclared_function():
    (x,) = _states("x")
    g = sp.Function("g")
    with pytest.raises(ModelError, match=r"function `g\(t\)` is not declared"):
        symml.Model(sp.Eq(x.diff(t), g(t) * x))


@pytest.mark.parametrize("value", [None, "fast", 1j, [1.0, 2.0]])
def test_parameter_without_a_real_value(value):
    (x,) = _states("x")
    with pytest.raises(ModelError, match="Parameter `a` has value"):
        symml.Model(sp.Eq(x.diff(t), -a * x), parameters={a: value})


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_parameter_value(value):
    (x,) = _states("x")
    with pytest.raises(ModelError, match="Parameter `a` has the non-finite value"):
        symml.Model(sp.Eq(x.diff(t), -a * x), parameters={a: value})


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_trainable_initial_value(value):
    with pytest.raises(ModelError, match="must be finite"):
        symml.trainable(value)


def test_trainable_needs_a_number():
    with pytest.raises(ModelError, match="needs a real number"):
        symml.trainable("one")


def test_not_an_ode_no_derivative():
    x, y = _states()
    with pytest.raises(ModelError, match=r"`x\(t\) = 1` contains no derivative"):
        symml.Model(
            [sp.Eq(x.diff(t), y), sp.Eq(y.diff(t), -x), sp.Eq(x, 1)],
        )


def test_not_an_ode_algebraic_state():
    x, y = _states()
    with pytest.raises(ModelError, match=r"state `y\(t\)` is never differentiated"):
        symml.Model([sp.Eq(x.diff(t), -y), sp.Eq(y, x**2)])


def test_not_an_ode_integral_of_a_state():
    (x,) = _states("x")
    with pytest.raises(ModelError, match=r"integral `Integral\(x\(t\), t\)`"):
        symml.Model(sp.Eq(x.diff(t), -sp.Integral(x, t)))


def test_unknown_input_contains_highest_derivative():
    (x,) = _states("x")
    U = symml.Unknown("U", [x.diff(t)])
    with pytest.raises(ModelError, match="input `Derivative.*of unknown `U`"):
        symml.Model(sp.Eq(x.diff(t), U[0]))


def test_unknown_input_contains_undeclared_symbol():
    (x,) = _states("x")
    U = symml.Unknown("U", [x, a])
    with pytest.raises(ModelError, match=r"symbol\(s\) `a`.*not declared"):
        symml.Model(sp.Eq(x.diff(t), U[0]))


def test_unknown_input_contains_undeclared_function():
    (x,) = _states("x")
    g = sp.Function("g")
    U = symml.Unknown("U", [x, g(t)])
    with pytest.raises(ModelError, match=r"function `g\(t\)` is not declared"):
        symml.Model(sp.Eq(x.diff(t), U[0]))


def test_duplicate_unknown_names():
    x, y = _states()
    U1 = symml.Unknown("U", [x])
    U2 = symml.Unknown("U", [y])
    with pytest.raises(ModelError, match="Two different `Unknown`s are named 'U'"):
        symml.Model([sp.Eq(x.diff(t), U1[0]), sp.Eq(y.diff(t), U2[0])])


def test_parameter_named_like_a_state():
    (x,) = _states("x")
    with pytest.raises(ModelError, match=r"\['x'\] are used for more than one"):
        symml.Model(sp.Eq(x.diff(t), -x), parameters={sp.Symbol("x"): 1.0})


def test_unknown_named_like_a_state():
    (x,) = _states("x")
    U = symml.Unknown("x", [x])
    with pytest.raises(ModelError, match=r"\['x'\] are used for more than one"):
        symml.Model(sp.Eq(x.diff(t), U[0]))


def test_parameter_named_like_the_independent_variable():
    (x,) = _states("x")
    with pytest.raises(ModelError, match="`t` is an independent variable"):
        symml.Model(sp.Eq(x.diff(t), -t * x), parameters={t: 2.0})


def test_parameter_given_twice():
    (x,) = _states("x")
    with pytest.raises(ModelError, match="Parameter `a` is given twice"):
        symml.Model(sp.Eq(x.diff(t), -a * x), parameters={a: 1.0, "a": 2.0})


def test_more_equations_than_states():
    x, y = _states()
    with pytest.raises(ModelError, match=r"3 equation\(s\) for 2 highest"):
        symml.Model([sp.Eq(x.diff(t), y), sp.Eq(y.diff(t), -x), sp.Eq(x.diff(t), 1)])


def test_fewer_equations_than_states():
    x, y = _states()
    with pytest.raises(ModelError, match=r"1 equation\(s\) for 2 highest"):
        symml.Model(sp.Eq(x.diff(t) + y.diff(t), -x))


@pytest.mark.parametrize(
    "lhs",
    [
        lambda x: x.diff(t) ** 2,
        lambda x: sp.sin(x.diff(t)),
        lambda x: sp.exp(x.diff(t)) + x.diff(t),
    ],
)
def test_nonlinear_in_highest_derivative(lhs):
    (x,) = _states("x")
    with pytest.raises(ModelError, match=r"not linear in `Derivative\(x\(t\), t\)`"):
        symml.Model(sp.Eq(lhs(x), x))


def test_bilinear_in_highest_derivatives():
    x, y = _states()
    with pytest.raises(ModelError, match="not linear in"):
        symml.Model([sp.Eq(x.diff(t) * y.diff(t), 1), sp.Eq(y.diff(t), x)])


def test_singular_system_for_highest_derivatives():
    x, y = _states()
    with pytest.raises(ModelError, match="do not determine"):
        symml.Model(
            [sp.Eq(x.diff(t) + y.diff(t), x), sp.Eq(2 * x.diff(t) + 2 * y.diff(t), y)]
        )


def test_no_equation_for_a_highest_derivative():
    x, y = _states()
    with pytest.raises(ModelError, match=r"No equation determines"):
        # The coefficient of y' is identically zero without looking zero.
        zero = sp.sin(t) ** 2 + sp.cos(t) ** 2 - 1
        symml.Model([sp.Eq(x.diff(t), x), sp.Eq(zero * y.diff(t), y)])


def test_unknown_index_out_of_range():
    (x,) = _states("x")
    U = symml.Unknown("U", [x], 2)
    with pytest.raises(ModelError, match="has 2 output.*index 2 is out of range"):
        U[2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="1U", inputs=[sp.Symbol("q")]), "must be an identifier"),
        (dict(name="U", inputs=[]), "needs at least one input"),
        (dict(name="U", inputs=[sp.Symbol("q")], outputs=0), "positive integer"),
        (
            dict(name="U", inputs=[sp.Symbol("q")], input_range=([0, 1], [1, 2])),
            "one finite lower and one larger upper bound per input",
        ),
    ],
)
def test_unknown_declaration_errors(kwargs, match):
    with pytest.raises(ModelError, match=match):
        symml.Unknown(**kwargs)


@pytest.mark.parametrize(
    "names, match", [("", "at least one name"), ("x 2y", "not a valid identifier")]
)
def test_states_declaration_errors(names, match):
    with pytest.raises(ModelError, match=match):
        symml.states(names, t)


def test_states_need_symbol_variables():
    with pytest.raises(ModelError, match="must be sympy Symbols"):
        symml.states("x", "t")


def test_empty_model():
    with pytest.raises(ModelError, match="at least one equation"):
        symml.Model([])


def test_equation_of_wrong_type():
    with pytest.raises(ModelError, match="expected a sympy `Eq"):
        symml.Model(["x' = x"])


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)
    assert issubclass(ModelError, symml.SymmlError)


# -- kinds, immutability, persistence ------------------------------------------------


def test_model_kinds():
    x, y = _states()
    assert type(symml.Model(sp.Eq(x.diff(t), -x))) is symml.ODEModel
    X = sp.Symbol("X")
    (u,) = symml.states("u", t, X)
    pde = symml.Model(
        sp.Eq(u.diff(t), u.diff(X, 2)), domain={X: (0, 1)}, boundary="periodic"
    )
    assert type(pde) is symml.PDEModel and pde.spatial == (X,)
    f = symml.Field("f", [t], hidden=[4])
    field = symml.Model(
        sp.Eq(f.diff(t), -f), conditions=[sp.Eq(f.subs(t, 0), 1)], domain={t: (0, 1)}
    )
    assert type(field) is symml.FieldModel and field.fields == (f,)
    # A kind's own constructor builds that kind, and refuses another.
    assert type(symml.ODEModel(sp.Eq(x.diff(t), -x))) is symml.ODEModel
    with pytest.raises(ModelError, match="describe an ODE model"):
        symml.FieldModel(sp.Eq(x.diff(t), -x))


def test_model_is_immutable_and_refuses_pickle():
    import copy
    import pickle

    (x,) = _states("x")
    m = symml.Model(sp.Eq(x.diff(t), -a * x), parameters={a: 1.0})
    with pytest.raises(ModelError, match="immutable: `parameters` cannot be set"):
        m.parameters = {}
    with pytest.raises(ModelError, match="immutable"):
        del m.rhs
    assert copy.deepcopy(m) is m and copy.copy(m) is m
    with pytest.raises(ModelError, match=r"cannot be pickled"):
        pickle.dumps(m)
    with pytest.raises(ModelError, match=r"cannot be pickled"):
        pickle.dumps(symml.Unknown("U", [x]))


def test_ode_initial_conditions_and_time_domain():
    (x,) = _states("x")
    m = symml.Model(
        sp.Eq(x.diff(t, 2), -x),
        conditions=[sp.Eq(x.subs(t, 1), 2 * a), sp.Eq(x.diff(t).subs(t, 1), 0)],
        parameters={a: 0.5},
        domain={t: (1, 4)},
    )
    assert m.initial_time == 1.0 and m.time_span == (1.0, 4.0)
    assert m.initial_values == {"x": 2 * a, "x_t": 0}
    f, params = symml.lower(m)
    np.testing.assert_array_equal(f.initial_state(), [1.0, 0.0])
    sol = symml.solve(f, saveat=np.linspace(1.0, 4.0, 7), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        sol[x], np.cos(np.linspace(0.0, 3.0, 7)), rtol=1e-7, atol=1e-8
    )


@pytest.mark.parametrize(
    "conditions, match",
    [
        (lambda x: [sp.Eq(x.subs(t, 0), 1), sp.Eq(x.subs(t, 2), 1)], "different times"),
        (lambda x: [sp.Eq(x.subs(t, 0), 1), sp.Eq(x.subs(t, 0), 2)], "given twice"),
        (lambda x: [sp.Eq(x.subs(t, 0) + x.subs(t, 1), 0)], "not an initial value"),
        (lambda x: [sp.Eq(x.subs(t, 0), sp.Symbol("k"))], "not declared"),
        (lambda x: [sp.Eq(x.subs(t, 9), 1)], "outside the domain"),
    ],
)
def test_ode_condition_errors(conditions, match):
    (x,) = _states("x")
    with pytest.raises(ModelError, match=match):
        symml.Model(sp.Eq(x.diff(t), -x), conditions=conditions(x), domain={t: (0, 5)})


def test_options_that_do_not_apply_are_errors():
    (x,) = _states("x")
    with pytest.raises(ModelError, match="`boundary=` applies to PDE models"):
        symml.Model(sp.Eq(x.diff(t), -x), boundary="periodic")
    with pytest.raises(ModelError, match="`domain=` names `z`"):
        symml.Model(sp.Eq(x.diff(t), -x), domain={sp.Symbol("z"): (0, 1)})
    X = sp.Symbol("X")
    f = symml.Field("f", [X], hidden=[4])
    with pytest.raises(ModelError, match=r"imposed at `X = 2.0`, outside the domain"):
        symml.Model(
            sp.Eq(f.diff(X, 2), -f),
            conditions=[sp.Eq(f.subs(X, 2), 0)],
            domain={X: (0, 1)},
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden="32"), "list of layer widths"),
        (dict(hidden=[0]), "positive integer widths"),
        (dict(hidden=[3.5]), "positive integer widths"),
        (dict(hidden=[True]), "positive integer widths"),
        (dict(activation=3), "activation name"),
        (dict(outputs=True), "positive integer"),
        (dict(input_range=((1,), (0,))), "one larger upper bound"),
        (dict(input_range=((np.nan,), (1,))), "one larger upper bound"),
        (dict(input_range=(0, 1)), "one larger upper bound"),
    ],
)
def test_network_declaration_errors(kwargs, match):
    with pytest.raises(ModelError, match=match):
        symml.Unknown("U", [sp.Symbol("q")], **kwargs)


def test_field_declaration_errors():
    with pytest.raises(ModelError, match="`hidden` of `Field` 'u'"):
        symml.Field("u", [t], hidden=[-1])


def test_dense_numeric_mass_matrix_is_solved_numerically():
    # A dense, well-conditioned 6x6 numeric mass matrix M x' = -x + sin(t):
    # the solution is M^-1 (-x + sin t), compared with numpy's.
    n = 6
    xs = symml.states(" ".join(f"x{i}" for i in range(n)), t)
    rng = np.random.default_rng(0)
    M = rng.uniform(-1, 1, (n, n)) + n * np.eye(n)
    eqs = [
        sp.Eq(sum(sp.Float(M[i, j]) * xs[j].diff(t) for j in range(n)), -xs[i])
        for i in range(n)
    ]
    m = symml.Model(eqs)
    f, params = symml.lower(m)
    u = rng.normal(size=n)
    expected = np.linalg.solve(M, -u)
    order = [m.state_names.index(f"x{i}") for i in range(n)]
    np.testing.assert_allclose(
        np.asarray(f(0.0, u[np.argsort(order)], params))[order], expected, rtol=1e-10
    )
