import pytest
import sympy as sp
from sympy.printing.latex import LatexPrinter

import symml
from symml import ExportError
from symml.export import SymmlLatexPrinter, to_latex, write_latex

t, X = sp.symbols("t x")
alpha, beta, gamma, delta = sp.symbols("alpha beta gamma delta")
LV = {alpha: 1.3, beta: 0.9, gamma: 0.8, delta: 1.8}


def _lv_states():
    return symml.states("x y", t)


def test_lv_with_unknowns():
    x, y = _lv_states()
    U = symml.Unknown("U", [x, y], outputs=2)
    model = symml.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: 1.3, delta: 1.8},
    )
    assert to_latex(model) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= \alpha x + U_{0}(x, y) \\ "
        r"\frac{d y}{d t} &= - \delta y + U_{1}(x, y) "
        r"\end{aligned}"
    )


def test_lv_symbolic_parameters():
    x, y = _lv_states()
    model = symml.Model(
        [
            sp.Eq(x.diff(t), alpha * x - beta * x * y),
            sp.Eq(y.diff(t), gamma * x * y - delta * y),
        ],
        parameters=LV,
    )
    assert to_latex(model) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= \alpha x - \beta x y \\ "
        r"\frac{d y}{d t} &= - \delta y + \gamma x y "
        r"\end{aligned}"
    )
    assert to_latex(model, values=True) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= 1.30 x - 0.900 x y \\ "
        r"\frac{d y}{d t} &= - 1.80 y + 0.800 x y "
        r"\end{aligned}"
    )


def test_lv_recovered_coefficients():
    x, y = _lv_states()
    # Coefficients as least squares returns them.
    eqs = [
        sp.Eq(x.diff(t), 1.3 * x - 0.8999999999999998 * x * y),
        sp.Eq(y.diff(t), 0.8000000000000002 * x * y - 1.8 * y),
    ]
    expected_x = r"\frac{d x}{d t} = 1.30 x - 0.900 x y"
    assert to_latex(eqs[0]) == expected_x
    assert to_latex(eqs[0], aligned=True) == expected_x
    assert to_latex(eqs) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= 1.30 x - 0.900 x y \\ "
        r"\frac{d y}{d t} &= - 1.80 y + 0.800 x y "
        r"\end{aligned}"
    )
    assert to_latex(eqs, aligned=False) == (
        r"\frac{d x}{d t} = 1.30 x - 0.900 x y,\quad "
        r"\frac{d y}{d t} = - 1.80 y + 0.800 x y"
    )
    assert to_latex(symml.Model(eqs)) == to_latex(eqs)


def test_second_order_ode():
    (q,) = symml.states("q", t)
    omega, zeta = sp.symbols("omega zeta")
    eq = sp.Eq(q.diff(t, 2), -(omega**2) * q - 2 * zeta * omega * q.diff(t))
    assert to_latex(eq) == (
        r"\frac{d^{2} q}{d t^{2}} = - \omega^{2} q - 2 \omega \zeta \frac{d q}{d t}"
    )
    model = symml.Model(eq, parameters={omega: 2.0, zeta: 0.1})
    assert to_latex(model) == to_latex(eq)
    assert to_latex(q.subs(t, 0)) == "q(0)"
    assert to_latex(q**2 + q.diff(t) ** 2) == (
        r"\left(\frac{d q}{d t}\right)^{2} + q^{2}"
    )


def test_pde_partials():
    u = symml.Field("u", [t, X])
    burgers = sp.Eq(u.diff(t) + u * u.diff(X), sp.Float(0.01) / sp.pi * u.diff(X, 2))
    assert to_latex(burgers) == (
        r"u \frac{\partial u}{\partial x} + \frac{\partial u}{\partial t} = "
        r"\frac{0.0100 \frac{\partial^{2} u}{\partial x^{2}}}{\pi}"
    )
    assert to_latex(u.diff(t, X)) == r"\frac{\partial^{2} u}{\partial t \partial x}"
    assert to_latex(u.diff(t, X, 2)) == (
        r"\frac{\partial^{3} u}{\partial t \partial x^{2}}"
    )
    assert to_latex(u.subs(t, 0)) == "u(0, x)"


def test_unknown_outputs():
    x, y = _lv_states()
    U = symml.Unknown("U", [x, y], outputs=2)
    assert to_latex(U[1]) == "U_{1}(x, y)"
    assert to_latex(U[0] ** 2) == "U_{0}(x, y)^{2}"
    N = symml.Unknown("N", [x**2, sp.sin(y)])
    assert to_latex(N[0]) == r"N_{0}(x^{2}, \sin{\left(y \right)})"


def test_state_named_like_a_sympy_function():
    # `gamma` must print as a state, not through sympy's gamma-function printer.
    (g,) = symml.states("gamma", t)
    assert to_latex(sp.Eq(g.diff(t), -g)) == r"\frac{d \gamma}{d t} = - \gamma"


@pytest.mark.parametrize(
    "value, digits, expected",
    [
        (0.9, 3, "0.900"),
        (1.3, 3, "1.30"),
        (-0.8999999999999998, 3, "-0.900"),
        (123.456, 3, "123"),
        (123.456, 4, "123.5"),
        (1234.5, 3, r"1.23 \cdot 10^{3}"),
        (1.234e-5, 2, r"1.2 \cdot 10^{-5}"),
        (0.0123, 3, "0.0123"),
        (2.0, 1, "2"),
        (0.0, 3, "0"),
    ],
)
def test_float_digits(value, digits, expected):
    assert to_latex(sp.Float(value), digits=digits) == expected


def test_digits_in_expressions():
    x, y = _lv_states()
    expr = 1.23456 * x - 0.0000123456 * y
    assert to_latex(expr, digits=2) == r"1.2 x - 1.2 \cdot 10^{-5} y"
    assert to_latex(expr, digits=None) == r"1.23456 x - 1.23456 \cdot 10^{-5} y"
    assert to_latex(0.000123 * x, digits=2) == "0.00012 x"
    assert to_latex(sp.Rational(1, 2) * x) == r"\frac{x}{2}"
    assert to_latex(3) == "3"


@pytest.mark.parametrize("digits", [0, -1, 2.5, "3", True])
def test_bad_digits(digits):
    with pytest.raises(ExportError, match="`digits` must be a positive integer"):
        to_latex(sp.Float(1.0), digits=digits)


@pytest.mark.parametrize(
    "obj, name",
    [("x + y", "str"), (object(), "object"), ([], "list"), ({1: 2}, "dict")],
)
def test_not_a_model(obj, name):
    with pytest.raises(ExportError, match=f"object of type {name}"):
        to_latex(obj)


def test_printer_is_a_latex_printer():
    assert issubclass(SymmlLatexPrinter, LatexPrinter)
    x, _ = _lv_states()
    assert SymmlLatexPrinter(digits=2).doprint(0.456 * x) == "0.46 x"


def test_write_latex(tmp_path):
    x, y = _lv_states()
    eq = sp.Eq(x.diff(t), 1.3 * x - 0.9 * x * y)
    path = tmp_path / "lv.tex"
    path.write_text("old")
    assert write_latex(path, eq) == path
    assert path.read_text() == to_latex(eq) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lv.tex"]


def test_write_latex_errors(tmp_path):
    path = tmp_path / "keep.tex"
    path.write_text("old")
    with pytest.raises(ExportError, match="object of type object"):
        write_latex(path, object())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tex"]
    with pytest.raises(ExportError, match="does not exist"):
        write_latex(tmp_path / "missing" / "a.tex", sp.Symbol("a"))


# -- error bars -------------------------------------------------------------------


def _lv_coefficients():
    x, y = _lv_states()
    c0, c1 = sp.symbols("c_U_0_0 c_U_1_0")
    model = symml.Model(
        [
            sp.Eq(x.diff(t), alpha * x + c0 * x * y),
            sp.Eq(y.diff(t), -delta * y + c1 * x * y),
        ],
        parameters={alpha: 1.3, delta: 1.8, c0: -0.9001, c1: symml.trainable(0.8)},
    )
    return model, c0, c1, x, y


def test_latex_with_uncertainty():
    model, c0, c1, x, y = _lv_coefficients()
    uncertainty = {c0: 0.0043, "c_U_1_0": (0.8012, 0.0031)}
    assert to_latex(model, values=True, uncertainty=uncertainty) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= 1.30 x - 0.900 \pm 0.004\, x y \\ "
        r"\frac{d y}{d t} &= - 1.80 y + 0.801 \pm 0.003\, x y "
        r"\end{aligned}"
    )
    # Without `values`, only the parameters with error bars print as numbers;
    # a trainable parameter's value is its initial one.
    assert to_latex(model, uncertainty={c1: 0.02}) == (
        r"\begin{aligned} "
        r"\frac{d x}{d t} &= \alpha x + c_{U 0 0} x y \\ "
        r"\frac{d y}{d t} &= - \delta y + 0.80 \pm 0.02\, x y "
        r"\end{aligned}"
    )
    assert to_latex(c0 * x * y, uncertainty={c0: (-0.9, 0.004)}) == (
        r"- 0.900 \pm 0.004\, x y"
    )
    assert to_latex(c0, uncertainty={c0: (1234.5, 12)}) == r"1230 \pm 10"
    assert to_latex(c0 * x, uncertainty={c0: (1.0e-6, 3.0e-8)}) == (
        r"\left(1.00 \pm 0.03\right) \cdot 10^{-6}\, x"
    )
    assert to_latex(c0 * x, uncertainty={c0: (5.0, 0.0)}) == r"5.00 \pm 0.00\, x"
    assert to_latex(sp.Eq(x.diff(t), c0 * x), uncertainty={c0: (-0.5, 0.25)}) == (
        r"\frac{d x}{d t} = - 0.5 \pm 0.2\, x"
    )


def test_equations_with_uncertainty_as_text():
    from symml.export import with_uncertainty

    model, c0, c1, x, y = _lv_coefficients()
    eq, _ = with_uncertainty(model, {c0: 0.0043}, values=True)
    assert str(eq.rhs) == "-(0.900 ± 0.004)*x(t)*y(t) + 1.3*x(t)"


@pytest.mark.parametrize(
    ("uncertainty", "match"),
    [
        ({"c_U_0_0": -0.1}, r"standard error -0.1; both must be finite"),
        ({"c_U_0_0": float("nan")}, "both must be finite"),
        ({"gamma": 0.1}, r"`gamma`, which is not a parameter of the model"),
        ({"c_U_0_0": (1.0, 2.0, 3.0)}, r"a pair `\(value, standard error\)`"),
        ({"c_U_0_0": "small"}, "must hold numbers"),
        ([0.1], "must be a dict"),
    ],
)
def test_latex_uncertainty_errors(uncertainty, match):
    model, *_ = _lv_coefficients()
    with pytest.raises(ExportError, match=match):
        to_latex(model, uncertainty=uncertainty)


def test_latex_uncertainty_of_an_expression_needs_values():
    a = sp.Symbol("a")
    with pytest.raises(ExportError, match=r"gives a standard error only"):
        to_latex(2 * a, uncertainty={a: 0.1})
