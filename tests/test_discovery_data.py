"""Discovery from data alone: derivative estimators against closed forms, the
weak form's quadrature, weak SINDy on a linear ODE, PDE-FIND on exact
solutions, known terms given by a model, and every error path."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

import symml
from symml import DiscoverError
from symml.discovery import (
    DerivativeLibrary,
    FiniteDifference,
    PDELibrary,
    PolynomialLibrary,
    SavitzkyGolay,
    SmoothedFiniteDifference,
    Spectral,
    Spline,
    TotalVariation,
    WeakForm,
    discover,
)
from symml.discovery._weak import test_matrices as weak_matrices

t = sp.Symbol("t")
X = sp.Symbol("x")


def _terms(expr) -> dict[str, float]:
    """`{monomial: coefficient}` with derivatives evaluated, states printed
    without arguments."""
    expr = sp.expand(sp.sympify(expr).doit())
    names = {
        d: sp.Symbol(
            d.expr.func.__name__
            + "_"
            + "".join(str(v) * c for v, c in d.variable_count)
        )
        for d in expr.atoms(sp.Derivative)
    }
    expr = expr.xreplace(names)
    expr = expr.xreplace(
        {
            f: sp.Symbol(f.func.__name__)
            for f in expr.atoms(sp.core.function.AppliedUndef)
        }
    )
    out = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        c, rest = term.as_coeff_Mul()
        if c:
            out[str(rest)] = out.get(str(rest), 0.0) + float(c)
    return out


# -- derivative estimators: error orders on a smooth function -------------------------


def _f(s):
    return np.sin(2 * s) * np.exp(-0.3 * s)


def _df(s):
    return np.exp(-0.3 * s) * (2 * np.cos(2 * s) - 0.3 * np.sin(2 * s))


def _d2f(s):
    return np.exp(-0.3 * s) * (-3.91 * np.sin(2 * s) - 1.2 * np.cos(2 * s))


def _error(estimator, n, order=1):
    s = np.linspace(0.0, 4.0, n)
    exact = _df(s) if order == 1 else _d2f(s)
    got = estimator(_f(s), s, order=order)
    inside = slice(n // 10, n - n // 10)  # away from the one-sided ends
    return np.max(np.abs(got[inside] - exact[inside]))


@pytest.mark.parametrize(
    "estimator, order, low, high",
    [
        (FiniteDifference(accuracy=2), 1, 1.8, 2.2),
        (FiniteDifference(accuracy=4), 1, 3.7, 4.3),
        (FiniteDifference(accuracy=2), 2, 1.8, 2.2),
        (SavitzkyGolay(window=11, degree=3), 1, 3.5, 4.5),
        (SmoothedFiniteDifference(window=11, degree=3), 1, 1.8, 2.2),
        (Spline(lam=0.0), 1, 3.5, 4.5),  # an interpolating cubic spline
    ],
    ids=repr,
)
def test_derivative_error_order(estimator, order, low, high):
    # Halving the spacing divides the error by 2^p: the observed order p.
    p = math.log2(_error(estimator, 101, order) / _error(estimator, 201, order))
    assert low < p < high


def test_spline_chooses_its_smoothing():
    # Generalised cross-validation on exact data picks almost no smoothing.
    assert _error(Spline(), 101) < 1e-4


def test_spectral_is_exact_on_periodic_data():
    s = 2 * np.pi * np.arange(64) / 64
    f = np.sin(3 * s) + 0.5 * np.cos(5 * s)
    d1 = Spectral()(f, s, order=1, periodic=True)
    d4 = Spectral()(f, s, order=4, periodic=True)
    assert np.max(np.abs(d1 - (3 * np.cos(3 * s) - 2.5 * np.sin(5 * s)))) < 1e-11
    assert np.max(np.abs(d4 - (81 * np.sin(3 * s) + 312.5 * np.cos(5 * s)))) < 1e-8


def test_total_variation_is_accurate_and_denoises():
    # On exact data the error is the regularisation's bias, which shrinks
    # with `alpha`; on noisy data it beats plain differences.
    fine = _error(TotalVariation(alpha=1e-7), 201)
    assert fine < 0.01
    assert fine < _error(TotalVariation(alpha=1e-5), 201)
    rng = np.random.default_rng(0)
    s = np.linspace(0.0, 4.0, 201)
    noisy = _f(s) + 0.01 * rng.standard_normal(s.size)
    inside = slice(20, -20)
    tv = TotalVariation(alpha=1e-5)(noisy, s)
    fd = FiniteDifference()(noisy, s)
    error = lambda d: np.sqrt(np.mean((d[inside] - _df(s)[inside]) ** 2))  # noqa: E731
    assert error(tv) < 0.3 * error(fd)


def test_estimators_work_along_any_axis():
    s = np.linspace(0.0, 1.0, 50)
    grid = np.stack([_f(s), 2 * _f(s)], axis=1)  # (50, 2)
    by_rows = FiniteDifference(accuracy=4)(grid.T, s, axis=1)
    assert np.allclose(by_rows, FiniteDifference(accuracy=4)(grid, s).T)


# -- the weak form's quadrature -------------------------------------------------------


def test_test_functions_integrate_by_parts_exactly():
    # ∫ φ' u = -∫ φ u' for u = sin(t): the test functions vanish with their
    # derivatives at the ends of their supports, and the trapezoidal rule is
    # spectrally accurate for such integrands.
    s = np.linspace(0.0, 10.0, 1001)
    m = weak_matrices(s, width=0.5, spacing=0.5, degree=4, max_order=2)
    assert m[0].shape[0] == 37
    assert np.allclose(m[1] @ np.sin(s), -(m[0] @ np.cos(s)), atol=1e-9)
    assert np.allclose(m[2] @ np.sin(s), -(m[0] @ np.sin(s)), atol=1e-8)


# -- weak SINDy on a linear ODE -------------------------------------------------------


def _oscillator(noise, seed=0):
    """x' = y, y' = -x - 0.2 y from (2, 0), in closed form."""
    ts = np.linspace(0.0, 20.0, 801)
    w = math.sqrt(1 - 0.01)
    e = np.exp(-0.1 * ts)
    x = e * (2 * np.cos(w * ts) + 0.2 / w * np.sin(w * ts))
    y = np.gradient(x, ts)  # replaced below by the exact derivative
    y = e * (-0.1 * (2 * np.cos(w * ts) + 0.2 / w * np.sin(w * ts))) + e * (
        -2 * w * np.sin(w * ts) + 0.2 * np.cos(w * ts)
    )
    rng = np.random.default_rng(seed)
    values = np.stack([x, y], axis=1)
    values = values + noise * np.sqrt(np.mean(values**2, 0)) * rng.standard_normal(
        values.shape
    )
    return symml.Data.from_array(ts, values, ["x", "y"])


@pytest.mark.parametrize("noise", [0.0, 0.02, 0.05])
def test_weak_form_discovers_a_linear_ode(noise):
    found = discover(_oscillator(noise), library=PolynomialLibrary(degree=2))
    x_, y_ = symml.states("x y", t)
    assert set(found.expressions) == {x_.diff(t), y_.diff(t)}
    dx, dy = (_terms(found.expressions[s.diff(t)]) for s in (x_, y_))
    assert set(dx) == {"y"} and set(dy) == {"x", "y"}
    tolerance = 1e-5 + 0.5 * noise
    assert dx["y"] == pytest.approx(1.0, rel=tolerance)
    assert dy["x"] == pytest.approx(-1.0, rel=tolerance)
    assert dy["y"] == pytest.approx(-0.2, rel=5 * tolerance)
    assert "widths" in found.details
    # The recovered model is a model like any other.
    assert found.model.equations[0].lhs == x_.diff(t)
    assert "frac{d x}{d t}" in symml.to_latex(found.model)
    trainable = found.trainable_model()
    assert {str(c) for c in trainable.trainable_parameters} == {
        "c_x_0",
        "c_y_0",
        "c_y_1",
    }


def test_strong_form_with_an_estimator_by_name():
    found = discover(
        _oscillator(0.0), library=PolynomialLibrary(degree=2), derivative="spline"
    )
    x_, y_ = symml.states("x y", t)
    assert _terms(found.expressions[y_.diff(t)]) == pytest.approx(
        {"x": -1.0, "y": -0.2}, rel=1e-3
    )


def test_several_trajectories():
    first, second = _oscillator(0.01, seed=1), _oscillator(0.01, seed=2)
    found = discover([first, second], library=PolynomialLibrary(degree=2))
    assert set(_terms(found.expressions[list(found.expressions)[1]])) == {"x", "y"}


# -- known terms from a model ---------------------------------------------------------


def test_model_gives_the_known_terms():
    def rhs(_, u):
        return [1.3 * u[0] - 0.9 * u[0] * u[1], 0.8 * u[0] * u[1] - 1.8 * u[1]]

    ts = np.linspace(0.0, 10.0, 401)
    values = solve_ivp(rhs, (0, 10), [2.0, 1.0], t_eval=ts, rtol=1e-10, atol=1e-10).y.T
    x_, y_ = symml.states("x y", t)
    alpha, delta = sp.symbols("alpha delta")
    U = symml.Unknown("U", [x_, y_], outputs=2)
    model = symml.Model(
        [sp.Eq(x_.diff(t), alpha * x_ + U[0]), sp.Eq(y_.diff(t), -delta * y_ + U[1])],
        parameters={alpha: 1.3, delta: 1.8},
    )
    data = symml.Data(ts, {x_: values[:, 0], y_: values[:, 1]})
    found = discover(data, model=model)
    assert found.fitted_model is model
    assert _terms(found.expressions[U[0]]) == pytest.approx({"x*y": -0.9}, rel=1e-4)
    assert _terms(found.expressions[U[1]]) == pytest.approx({"x*y": 0.8}, rel=1e-4)
    assert not found.model.unknowns
    assert set(found.trainable_model().trainable_parameters) == set(
        sp.symbols("c_U_0_0 c_U_1_0")
    )


# -- PDE-FIND on exact solutions ------------------------------------------------------


def _advection_diffusion(n=64, n_t=41):
    """u_t = -0.5 u_x + 0.1 u_xx on the periodic [0, 2π): two Fourier modes."""
    x = 2 * np.pi * np.arange(n) / n
    ts = np.linspace(0.0, 2.0, n_t)
    tt, xx = np.meshgrid(ts, x, indexing="ij")
    u = np.exp(-0.1 * tt) * np.sin(xx - 0.5 * tt) + 0.5 * np.exp(-0.4 * tt) * np.cos(
        2 * (xx - 0.5 * tt)
    )
    return ts, x, u


@pytest.mark.parametrize(
    "derivative, library",
    [
        (
            FiniteDifference(accuracy=4),
            PDELibrary(PolynomialLibrary(degree=2), derivative_order=3),
        ),
        (None, None),  # the weak form and a DerivativeLibrary
    ],
    ids=["strong", "weak"],
)
def test_pde_find_linear(derivative, library):
    ts, x, u = _advection_diffusion()
    found = discover(
        symml.Data(ts, {"u": u}),
        grid={X: x},
        boundary="periodic",
        derivative=derivative,
        library=library,
    )
    (expr,) = found.expressions.values()
    assert _terms(expr) == pytest.approx({"u_x": -0.5, "u_xx": 0.1}, rel=1e-3)
    assert found.model.boundary == {X: "periodic"}
    assert found.model.domain[X] == pytest.approx((0.0, 2 * np.pi))


def _cole_hopf(nu=0.2, n=64, n_t=41):
    """u_t = -u u_x + ν u_xx on the periodic [0, 2π): u = -2ν φ_x / φ with
    φ = 1 + ½ exp(-ν t) cos x solving the heat equation φ_t = ν φ_xx."""
    x = 2 * np.pi * np.arange(n) / n
    ts = np.linspace(0.0, 3.0, n_t)
    decay = 0.5 * np.exp(-nu * ts)[:, None]
    u = 2 * nu * decay * np.sin(x) / (1 + decay * np.cos(x))
    return ts, x, u


@pytest.mark.parametrize(
    "derivative, library",
    [
        (
            FiniteDifference(accuracy=4),
            PDELibrary(PolynomialLibrary(degree=2), derivative_order=2),
        ),
        (WeakForm(spatial=Spectral()), None),
    ],
    ids=["strong", "weak"],
)
def test_pde_find_burgers(derivative, library):
    ts, x, u = _cole_hopf()
    found = discover(
        symml.Data(ts, {"u": u}),
        grid={X: x},
        boundary="periodic",
        derivative=derivative,
        library=library,
    )
    (expr,) = found.expressions.values()
    assert _terms(expr) == pytest.approx({"u*u_x": -1.0, "u_xx": 0.2}, rel=2e-3)


# -- error paths ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ode_data():
    return _oscillator(0.0)


def test_error_not_a_source(ode_data):
    with pytest.raises(DiscoverError, match="takes a fit result .* or observations"):
        discover(42)
    with pytest.raises(DiscoverError, match="takes a `symml.Data` or a list of them"):
        discover([ode_data, 3])


def test_error_data_options_on_a_fit_result():
    class Result:
        model = symml.Model(sp.Eq(symml.states("q", t)[0].diff(t), 0))

        def unknown_samples(self):
            return {}

    with pytest.raises(DiscoverError, match="`grid=` applies to discovery from data"):
        discover(Result(), grid={X: np.arange(5.0)})


@pytest.mark.parametrize(
    "derivative, match",
    [
        ("wiggly", "`derivative` must be a derivative estimator"),
        (3, "`derivative` must be a derivative estimator"),
        (Spectral(), "needs periodic data"),
    ],
)
def test_error_bad_derivative(ode_data, derivative, match):
    with pytest.raises(DiscoverError, match=match):
        discover(ode_data, derivative=derivative)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Spline(lam=-1), "`lam` of `Spline` must be"),
        (lambda: SavitzkyGolay(window=4), "`window` of `SavitzkyGolay` must be odd"),
        (lambda: SavitzkyGolay(window=1), "`window` of `SavitzkyGolay` must be an"),
        (lambda: FiniteDifference(accuracy=0), "`accuracy` of `FiniteDifference`"),
        (lambda: TotalVariation(alpha=0), "`alpha` of `TotalVariation` must be"),
        (lambda: Spectral(filter=0), "`filter` of `Spectral` must be in"),
        (lambda: WeakForm(width=-1), "`width` of `WeakForm` must be a positive"),
        (lambda: WeakForm(spacing=0), "`spacing` of `WeakForm` must be a positive"),
        (lambda: WeakForm(degree=0), "`degree` of `WeakForm` must be a positive"),
        (lambda: WeakForm(spatial="nope"), "`spatial` must be a derivative"),
        (lambda: PDELibrary(functions=3), "`functions` of a `PDELibrary` must be"),
        (lambda: DerivativeLibrary(derivative_order=-1), "`derivative_order` of a"),
    ],
)
def test_error_bad_options(make, match):
    with pytest.raises(DiscoverError, match=match):
        make()


def test_error_estimator_input():
    with pytest.raises(DiscoverError, match="expected \\(5,\\), one per sample"):
        FiniteDifference()(np.zeros(5), np.arange(4.0))
    with pytest.raises(DiscoverError, match="needs uniformly spaced samples"):
        SavitzkyGolay()(np.zeros(20), np.cumsum(np.arange(1.0, 21.0)))
    with pytest.raises(DiscoverError, match="no derivative of order 4"):
        Spline()(np.zeros(20), np.arange(20.0), order=4)


def test_error_weak_form_too_wide(ode_data):
    with pytest.raises(DiscoverError, match="more than half the span"):
        discover(ode_data, derivative=WeakForm(width=15.0))


def test_error_too_few_rows(ode_data):
    with pytest.raises(DiscoverError, match="as many regression rows as library"):
        discover(ode_data, derivative=WeakForm(width=4.0), library=PolynomialLibrary(4))


def test_error_grid_and_boundary(ode_data):
    ts, x, u = _advection_diffusion()
    data = symml.Data(ts, {"u": u})
    with pytest.raises(DiscoverError, match="`grid` must be a dict"):
        discover(data, grid=[x])
    with pytest.raises(DiscoverError, match="observations of `u` have shape"):
        discover(data, grid={X: x[:10]})
    with pytest.raises(DiscoverError, match="`boundary` applies to data on a spatial"):
        discover(ode_data, boundary="periodic")
    with pytest.raises(DiscoverError, match="Boundary 'twisted' for `x`"):
        discover(data, grid={X: x}, boundary="twisted")
    with pytest.raises(DiscoverError, match="of a `PDELibrary` has no spatial var"):
        discover(ode_data, library=PDELibrary())


def test_error_trajectories_observe_different_states(ode_data):
    other = symml.Data(ode_data.t, {"x": ode_data.values["x"]})
    with pytest.raises(DiscoverError, match="must observe the same states"):
        discover([ode_data, other])


def _model_with(rhs_x, parameters=None):
    x_, y_ = symml.states("x y", t)
    return symml.Model(
        [sp.Eq(x_.diff(t), rhs_x(x_, y_)), sp.Eq(y_.diff(t), -y_)],
        parameters=parameters or {},
    )


@pytest.mark.parametrize(
    "model, match",
    [
        (
            lambda U, V, k: _model_with(lambda x_, y_: U[0] + V[0]),
            "contains 2 unknown terms",
        ),
        (
            lambda U, V, k: _model_with(lambda x_, y_: U[0] ** 2),
            "not linear in the unknown term",
        ),
        (
            lambda U, V, k: _model_with(
                lambda x_, y_: k * x_ + U[0], {k: symml.trainable(1.0)}
            ),
            "has trainable parameters",
        ),
        (
            lambda U, V, k: _model_with(lambda x_, y_: -x_),
            "no unknown terms, so there is nothing",
        ),
    ],
)
def test_error_models_discovery_from_data_cannot_take(ode_data, model, match):
    x_, y_ = symml.states("x y", t)
    U = symml.Unknown("U", [x_, y_])
    V = symml.Unknown("V", [x_])
    k = sp.Symbol("k")
    with pytest.raises(DiscoverError, match=match):
        discover(ode_data, model=model(U, V, k))


def test_error_model_states_not_observed():
    x_, w_ = symml.states("x w", t)
    U = symml.Unknown("U", [x_, w_])
    model = symml.Model([sp.Eq(x_.diff(t), U[0]), sp.Eq(w_.diff(t), -w_)])
    data = symml.Data(np.linspace(0, 1, 50), {"x": np.linspace(0, 1, 50)})
    with pytest.raises(DiscoverError, match="do not observe `w`"):
        discover(data, model=model, derivative="spline")


def test_error_pde_model_needs_grid():
    (u,) = symml.states("u", t, X)
    U = symml.Unknown("U", [u])
    model = symml.Model(
        sp.Eq(u.diff(t), U[0] + u.diff(X, 2)), domain={X: (0, 1)}, boundary="periodic"
    )
    data = symml.Data(np.linspace(0, 1, 20), {"u": np.zeros((20, 8))})
    with pytest.raises(DiscoverError, match="pass the coordinates of the data's grid"):
        discover(data, model=model)
    with pytest.raises(DiscoverError, match="the model's spatial variables are"):
        discover(data, model=model, grid={sp.Symbol("y"): np.linspace(0, 1, 8)})
