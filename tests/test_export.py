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
