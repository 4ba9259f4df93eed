import math
from types import SimpleNamespace

import numpy as np
import pysindy as ps
import pytest
import sympy as sp

import symml
from symml import DiscoverError
from symml.discovery import (
    STLSQ,
    BestSubset,
    ConcatLibrary,
    CustomLibrary,
    Discovery,
    Elbow,
    FourierLibrary,
    PolynomialLibrary,
    Stability,
    TensoredLibrary,
    discover,
    sparse_regression,
)
from symml.dsl import Trainable

t, X = sp.symbols("t x")
a, b = sp.symbols("a b")
alpha, delta, D = sp.symbols("alpha delta D")


def _rounded(expr: sp.Basic, places: int = 8) -> sp.Basic:
    """`expr` with every float rounded, for exact comparison."""
    return expr.xreplace(
        {f: sp.Float(round(float(f), places)) for f in expr.atoms(sp.Float)}
    )


def _terms(expr: sp.Expr) -> dict[sp.Expr, float]:
    out = {}
    for term in sp.Add.make_args(expr):
        c, rest = term.as_coeff_Mul()
        out[rest] = float(c)
    return out


@pytest.fixture(scope="module")
def lv_samples():
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.0, 5.0, size=(200, 2))
    xy = inputs[:, 0] * inputs[:, 1]
    return inputs, np.stack([-0.9 * xy, 0.8 * xy], axis=1)


def _lv(delta_value=1.8):
    x, y = symml.states("x y", t)
    U = symml.Unknown("U", [x, y], outputs=2)
    model = symml.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: 1.3, delta: delta_value},
    )
    return model, x, y, U


def _result(model, samples, values=None):
    return SimpleNamespace(
        model=model,
        unknown_samples=lambda: samples,
        parameter_values=lambda: dict(values or {}),
    )


# -- libraries -------------------------------------------------------------------


def test_polynomial_library_terms():
    assert PolynomialLibrary(degree=2).terms([a, b]) == [
        1,
        a,
        b,
        a**2,
        a * b,
        b**2,
    ]
    assert PolynomialLibrary(degree=1, include_bias=False).terms([a, b]) == [a, b]
    assert len(PolynomialLibrary(degree=3).terms([a, b])) == 10


def test_fourier_library_terms():
    assert FourierLibrary(n_frequencies=2).terms([a]) == [
        sp.sin(a),
        sp.cos(a),
        sp.sin(2 * a),
        sp.cos(2 * a),
    ]


def test_custom_library_terms():
    lib = CustomLibrary([lambda z: sp.exp(z), lambda u, v: sp.sin(u - v)])
    assert lib.terms([a, b]) == [sp.exp(a), sp.exp(b), sp.sin(a - b)]
    pair = CustomLibrary([lambda z: [z**2, 1 / z]])
    assert pair.terms([a]) == [a**2, 1 / a]


def test_library_composition():
    lib = PolynomialLibrary(degree=1) + FourierLibrary() + CustomLibrary([sp.exp])
    assert isinstance(lib, ConcatLibrary)
    assert len(lib.libraries) == 3
    assert lib.terms([a]) == [1, a, sp.sin(a), sp.cos(a), sp.exp(a)]
    # A term present in both libraries appears once.
    both = PolynomialLibrary(degree=2) + CustomLibrary([lambda z: z**2])
    assert both.terms([a]) == [1, a, a**2]
    product = PolynomialLibrary(degree=1) * FourierLibrary()
    assert isinstance(product, TensoredLibrary)
    assert product.terms([a]) == [a * sp.sin(a), a * sp.cos(a)]


# -- sparse regression -------------------------------------------------------------


def test_sparse_regression_polynomial(lv_samples):
    inputs, targets = lv_samples
    u0, u1 = sparse_regression(
        inputs, targets, [a, b], library=PolynomialLibrary(degree=3)
    )
    assert set(_terms(u0)) == {a * b}
    assert set(_terms(u1)) == {a * b}
    assert _terms(u0)[a * b] == pytest.approx(-0.9, abs=1e-8)
    assert _terms(u1)[a * b] == pytest.approx(0.8, abs=1e-8)


def test_sparse_regression_fourier():
    rng = np.random.default_rng(1)
    inputs = rng.uniform(-np.pi, np.pi, size=(300, 2))
    targets = 0.5 * np.sin(inputs[:, :1]) - 2.0 * np.cos(2 * inputs[:, 1:])
    (expr,) = sparse_regression(
        inputs, targets, [a, b], library=FourierLibrary(n_frequencies=2)
    )
    assert _rounded(expr) == _rounded(0.5 * sp.sin(a) - 2.0 * sp.cos(2 * b))


def test_sparse_regression_custom_and_composed():
    rng = np.random.default_rng(2)
    inputs = rng.uniform(-1.0, 1.0, size=(300, 2))
    targets = 0.7 + 1.5 * np.exp(inputs[:, :1]) - 0.3 * inputs[:, 1:] ** 2
    library = PolynomialLibrary(degree=2) + CustomLibrary([lambda z: sp.exp(z)])
    # -0.3 b**2 contributes about 5 % of the target's size: the front's elbow
    # keeps it (it removes all the remaining error), a fixed relative
    # threshold of 0.1 drops it.
    (expr,) = sparse_regression(inputs, targets, [a, b], library=library)
    assert _rounded(expr) == _rounded(0.7 + 1.5 * sp.exp(a) - 0.3 * b**2)
    with pytest.warns(symml.DiscoveryWarning, match="leaves"):
        (coarse,) = sparse_regression(
            inputs,
            targets,
            [a, b],
            library=library,
            selector=STLSQ(threshold=0.1),
            max_error=0.01,
        )
    assert set(_terms(coarse)) == {1, sp.exp(a)}


def test_sparse_regression_noise(lv_samples):
    inputs, targets = lv_samples
    rng = np.random.default_rng(3)
    noisy = targets + 0.01 * np.abs(targets).mean(axis=0) * rng.standard_normal(
        targets.shape
    )
    u0, u1 = sparse_regression(
        inputs, noisy, [a, b], library=PolynomialLibrary(degree=3)
    )
    assert set(_terms(u0)) == {a * b}
    assert set(_terms(u1)) == {a * b}
    assert _terms(u0)[a * b] == pytest.approx(-0.9, rel=1e-2)
    assert _terms(u1)[a * b] == pytest.approx(0.8, rel=1e-2)


def test_seed_decides_the_folds_and_the_same_seed_repeats(lv_samples):
    inputs, targets = lv_samples
    rng = np.random.default_rng(4)
    noisy = targets + 0.05 * np.abs(targets).mean(axis=0) * rng.standard_normal(
        targets.shape
    )
    model, *_ = _lv()

    def run(seed):
        selector = BestSubset(Elbow(seed=seed))
        return discover(_result(model, {"U": (inputs, noisy)}), selector=selector)

    first, again, other = run(0), run(0), run(1)
    assert first.expressions == again.expressions
    fronts = [list(f.fronts.values())[0] for f in (first, again, other)]
    assert fronts[0].held_out_error == fronts[1].held_out_error
    # Another seed assigns other rows to the folds: other held-out errors,
    # the same answer.
    assert fronts[0].held_out_error != fronts[2].held_out_error
    assert first.expressions == other.expressions
    x_, y_ = model.states
    assert [set(_terms(e)) for e in first.expressions.values()] == [
        {x_ * y_},
        {x_ * y_},
    ]


def test_stlsq_threshold_drops_small_terms():
    rng = np.random.default_rng(5)
    inputs = rng.uniform(-1.0, 1.0, size=(100, 1))
    targets = 2.0 * inputs + 0.05 * inputs**2
    lib = PolynomialLibrary(degree=2)

    def run(threshold):
        (expr,) = sparse_regression(
            inputs,
            targets,
            [a],
            library=lib,
            selector=STLSQ(threshold=threshold),
            max_error=100.0,
        )
        return expr

    assert set(_terms(run(0.01))) == {a, a**2}
    assert set(_terms(run(0.1))) == {a}
    assert run(10) == 0


# -- discover ----------------------------------------------------------------------


def test_discover_lv(lv_samples):
    model, x, y, U = _lv()
    found = discover(_result(model, {"U": lv_samples}))
    assert isinstance(found, Discovery)
    assert set(found.expressions) == {U[0], U[1]}
    assert _rounded(found.expressions[U[0]]) == _rounded(-0.9 * x * y)
    assert _rounded(found.expressions[U[1]]) == _rounded(0.8 * x * y)
    assert list(found.terms[U[0]]) == [x * y]
    assert found.terms[U[0]][x * y] == pytest.approx(-0.9, abs=1e-8)
    assert found.terms[U[1]][x * y] == pytest.approx(0.8, abs=1e-8)
    recovered = found.model
    assert isinstance(recovered, symml.Model)
    assert not recovered.unknowns
    assert [_rounded(e) for e in recovered.equations] == [
        sp.Eq(x.diff(t), alpha * x - 0.9 * x * y),
        sp.Eq(y.diff(t), -delta * y + 0.8 * x * y),
    ]
    assert recovered.parameters == {alpha: 1.3, delta: 1.8}


def test_discover_fixes_learned_parameters(lv_samples):
    model, x, y, U = _lv(delta_value=symml.trainable(1.0))
    found = discover(_result(model, {"U": lv_samples}, {delta: 1.75}))
    assert found.model.parameters == {alpha: 1.3, delta: 1.75}
    assert found.model.trainable_parameters == {}


def test_trainable_model(lv_samples):
    model, x, y, U = _lv(delta_value=symml.trainable(1.0))
    found = discover(_result(model, {"U": lv_samples}, {delta: 1.75}))
    c0, c1 = sp.symbols("c_U_0_0 c_U_1_0")
    assert found.coefficient_terms() == {c0: (U[0], x * y), c1: (U[1], x * y)}
    trainable = found.trainable_model()
    assert trainable.equations == (
        sp.Eq(x.diff(t), alpha * x + c0 * x * y),
        sp.Eq(y.diff(t), -delta * y + c1 * x * y),
    )
    assert trainable.fixed_parameters == {alpha: 1.3, delta: 1.75}
    assert set(trainable.trainable_parameters) == {c0, c1}
    assert trainable.trainable_parameters[c0] == pytest.approx(-0.9, abs=1e-8)
    assert trainable.trainable_parameters[c1] == pytest.approx(0.8, abs=1e-8)
    refit = found.trainable_model(refit_parameters=True)
    assert refit.parameters[delta] == Trainable(1.75)
    assert set(refit.trainable_parameters) == {delta, c0, c1}


def test_discover_compound_inputs():
    (x,) = symml.states("x", t)
    F = symml.Unknown("F", [x**2])
    model = symml.Model(sp.Eq(x.diff(t), -x + F[0]))
    rng = np.random.default_rng(6)
    z = rng.uniform(0.0, 2.0, size=(50, 1))
    found = discover(
        _result(model, {"F": (z, 0.5 * z**2)}), library=PolynomialLibrary(degree=2)
    )
    assert _rounded(found.expressions[F[0]]) == _rounded(0.5 * x**4)
    assert _rounded(found.model.equations[0]) == sp.Eq(x.diff(t), -x + 0.5 * x**4)


def test_discover_pde_with_derivative_of_unknown():
    # Fisher-KPP with the reaction learned; the unknown also appears inside a
    # derivative, which is evaluated after substitution.
    (rho,) = symml.states("rho", t, X)
    R = symml.Unknown("R", [rho])
    model = symml.Model(
        sp.Eq(rho.diff(t), D * rho.diff(X, 2) + R[0] + sp.Derivative(R[0], X)),
        parameters={D: symml.trainable(0.1)},
        domain={X: (0.0, 1.0)},
        boundary="periodic",
    )
    rng = np.random.default_rng(7)
    r = rng.uniform(0.0, 1.0, size=(100, 1))
    found = discover(
        _result(model, {"R": (r, 2.0 * r * (1 - r))}, {D: 0.02}),
        library=PolynomialLibrary(degree=3),
    )
    assert _rounded(found.expressions[R[0]]) == _rounded(2.0 * rho - 2.0 * rho**2)
    (eq,) = found.model.equations
    expected_rhs = (
        D * rho.diff(X, 2)
        + 2.0 * rho
        - 2.0 * rho**2
        + 2.0 * rho.diff(X)
        - 4.0 * rho * rho.diff(X)
    )
    assert sp.expand(_rounded(eq.rhs) - expected_rhs) == 0
    assert found.model.parameters == {D: 0.02}
    assert found.model.boundary == {X: "periodic"}
    assert found.model.domain == {X: (0.0, 1.0)}


def test_discover_stability_selection(lv_samples):
    model, x, y, U = _lv()
    result = _result(model, {"U": lv_samples})
    selector = BestSubset(Stability(n_resamples=10, seed=3))
    first = discover(result, selector=selector)
    again = discover(result, selector=selector)
    assert first.expressions == again.expressions
    assert _rounded(first.expressions[U[0]]) == _rounded(-0.9 * x * y)
    assert first.fronts[U[0]].chosen == 1


def test_discover_to_latex(lv_samples):
    from symml.export import to_latex

    model, *_ = _lv()
    found = discover(_result(model, {"U": lv_samples}))
    assert to_latex(found.model, values=True) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= 1.30 x - 0.900 x y \\ "
        r"\frac{d y}{d t} &= - 1.80 y + 0.800 x y "
        r"\end{aligned}"
    )


# -- errors ------------------------------------------------------------------------


def test_error_no_unknowns():
    (x,) = symml.states("x", t)
    model = symml.Model(sp.Eq(x.diff(t), -x))
    with pytest.raises(DiscoverError, match="has no unknown terms"):
        discover(_result(model, {}))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_error_non_finite_samples(lv_samples, bad):
    model, *_ = _lv()
    inputs, targets = lv_samples
    targets = targets.copy()
    targets[3, 1] = bad
    with pytest.raises(DiscoverError, match=r"outputs of the unknown `U` are not fin"):
        discover(_result(model, {"U": (inputs, targets)}))
    with pytest.raises(DiscoverError, match="non-finite values"):
        sparse_regression(inputs, targets, [a, b], library=PolynomialLibrary())


def test_error_too_few_samples(lv_samples):
    model, *_ = _lv()
    inputs, targets = lv_samples
    with pytest.raises(DiscoverError, match="got 5 samples for 10 terms"):
        discover(_result(model, {"U": (inputs[:5], targets[:5])}))


@pytest.mark.parametrize("threshold", [-0.1, math.nan, math.inf, "big"])
def test_error_bad_threshold(threshold):
    with pytest.raises(DiscoverError, match="`threshold` of `STLSQ` must be a num"):
        STLSQ(threshold=threshold)


def test_error_bad_alpha_and_resamples():
    with pytest.raises(DiscoverError, match="`alpha` of `STLSQ` must be"):
        STLSQ(threshold=0.1, alpha=-1)
    with pytest.raises(DiscoverError, match="`n_resamples` of `Stability` must be"):
        Stability(n_resamples=0)


@pytest.mark.parametrize("selector", ["subset", "stlsq", 0.1, ps.STLSQ()])
def test_error_selector_not_an_object(lv_samples, selector):
    model, *_ = _lv()
    with pytest.raises(DiscoverError, match="`selector` must be a symml selector"):
        discover(_result(model, {"U": lv_samples}), selector=selector)


def test_error_old_keywords_are_gone(lv_samples):
    model, *_ = _lv()
    with pytest.raises(TypeError, match="threshold"):
        discover(_result(model, {"U": lv_samples}), threshold=0.1)


@pytest.mark.parametrize("library", ["poly", ps.PolynomialLibrary(degree=2), 3])
def test_error_unknown_library(lv_samples, library):
    model, *_ = _lv()
    with pytest.raises(DiscoverError, match="`library` must be a symml library"):
        discover(_result(model, {"U": lv_samples}), library=library)


def test_error_missing_or_misshapen_samples(lv_samples):
    model, *_ = _lv()
    inputs, targets = lv_samples
    with pytest.raises(DiscoverError, match="no samples for the unknown `U`"):
        discover(_result(model, {"V": lv_samples}))
    with pytest.raises(DiscoverError, match=r"expected \(n, 2\) and \(n, 2\)"):
        discover(_result(model, {"U": (inputs, targets[:, :1])}))
    with pytest.raises(DiscoverError, match=r"shape \(n_samples, 2\)"):
        sparse_regression(inputs[:, :1], targets, [a, b], library=PolynomialLibrary())


def test_error_missing_parameter_value(lv_samples):
    model, *_ = _lv(delta_value=symml.trainable(1.0))
    with pytest.raises(DiscoverError, match="no learned value for the trainable"):
        discover(_result(model, {"U": lv_samples}))
    with pytest.raises(DiscoverError, match="learned value of `delta` is nan"):
        discover(_result(model, {"U": lv_samples}, {delta: math.nan}))


def test_error_bad_libraries():
    with pytest.raises(DiscoverError, match="`degree` of a `PolynomialLibrary`"):
        PolynomialLibrary(degree=0)
    with pytest.raises(DiscoverError, match="`n_frequencies` of a `FourierLibrary`"):
        FourierLibrary(n_frequencies=1.5)
    with pytest.raises(DiscoverError, match="needs at least one function"):
        CustomLibrary([])
    with pytest.raises(DiscoverError, match="must be callables"):
        CustomLibrary([sp.exp(a)])
    with pytest.raises(DiscoverError, match="takes no argument"):
        CustomLibrary([lambda: 1])
    with pytest.raises(DiscoverError, match=r"failed on the sympy input\(s\)"):
        CustomLibrary([lambda z: np.exp(z)]).terms([a])
    with pytest.raises(DiscoverError, match="must return a sympy expression"):
        CustomLibrary([lambda z: "exp(z)"]).terms([a])


def test_error_non_finite_term():
    inputs = np.linspace(-1.0, 1.0, 20)[:, None]
    with pytest.raises(DiscoverError, match=r"`log\(a\)` is not finite"):
        sparse_regression(
            inputs, inputs, [a], library=CustomLibrary([lambda z: sp.log(z)])
        )
