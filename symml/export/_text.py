"""Plain text of models and expressions, for terminals and logs."""

from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.str import StrPrinter

from .._errors import ExportError
from ..dsl import FieldFunction, StateFunction, UnknownOutput


def check_digits(digits) -> None:
    """`digits` of a printer: a positive integer, or None for sympy's own
    precision."""
    if digits is not None and (
        isinstance(digits, bool) or not isinstance(digits, int) or digits < 1
    ):
        raise ExportError(
            f"`digits` must be a positive integer (or None for full precision);"
            f" got {digits!r}."
        )


def significant_figures(value: float, digits: int) -> tuple[str, int | None]:
    """`value` to `digits` significant figures, trailing zeros kept (`0.900`,
    `1.30`): the mantissa, and the power of ten when Python's `g` format
    switches to scientific notation (outside 1e-4 <= |value| < 10**digits),
    else None."""
    text = f"{value:#.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return mantissa.rstrip("."), int(exponent)
    return text.rstrip("."), None


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


class SymmlStrPrinter(StrPrinter):
    """Text printer for symml models: the text twin of
    [`SymmlLatexPrinter`][symml.export.SymmlLatexPrinter].

    States and fields print as their bare names when applied to their
    variables (`x`, not `x(t)`), derivatives of them as `dx/dt`, `d²x/dt²` or
    `∂²u/∂x²`, unknown outputs as `U_0(x, y)`, floats with `digits`
    significant figures, trailing zeros kept (`0.900`), and the terms of a sum
    in sympy's canonical order, as in LaTeX (`1.30*x - 0.900*x*y`).

    **Arguments:**

    - `digits`: significant figures of floats, or `None` for sympy's default.
    """

    def __init__(self, *, digits: int | None = 3):
        check_digits(digits)
        super().__init__()
        self._digits = digits

    def _print(self, expr: Any, **kwargs: Any) -> str:
        # Dispatch on the base classes first: a state's class is named after the
        # state, and sympy would look up `_print_<name>` (`_print_gamma`).
        if isinstance(expr, StateFunction | FieldFunction):
            return self._print_StateFunction(expr)
        if isinstance(expr, UnknownOutput):
            return self._print_UnknownOutput(expr)
        return super()._print(expr, **kwargs)

    def _as_ordered_terms(self, expr: sp.Basic, order: str | None = None) -> list:
        # sympy's canonical argument order, as the LaTeX printer keeps it:
        # lower-degree terms first (`1.30*x - 0.900*x*y`).
        return list(expr.args)

    def _print_StateFunction(self, expr: AppliedUndef) -> str:
        name = expr.func.__name__
        if all(isinstance(a, sp.Symbol) for a in expr.args):
            return name
        return name + "(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_UnknownOutput(self, expr: AppliedUndef) -> str:
        return (
            expr.func.__name__
            + "("
            + ", ".join(self._print(a) for a in expr.args)
            + ")"
        )

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        function = expr.expr
        if not isinstance(function, StateFunction | FieldFunction):
            return super()._print_Derivative(expr)
        d = "∂" if len(function.args) > 1 else "d"
        order = sum(count for _, count in expr.variable_count)

        def power(n: int) -> str:
            return str(n).translate(_SUPERSCRIPTS) if n > 1 else ""

        below = "".join(
            f"{d}{self._print(v)}{power(count)}" for v, count in expr.variable_count
        )
        return f"{d}{power(order)}{self._print(function)}/{below}"

    def _print_Float(self, expr: sp.Float) -> str:
        if self._digits is None:
            return super()._print_Float(expr)
        value = float(expr)
        if value == 0:
            return "0"
        mantissa, exponent = significant_figures(value, self._digits)
        return mantissa if exponent is None else f"{mantissa}e{exponent}"


def to_text(obj: sp.Basic, *, digits: int | None = 3) -> str:
    """Plain text of an equation or an expression, as symml prints models in a
    terminal: `dx/dt = alpha*x + U_0(x, y)`.

    **Arguments:**

    - `obj`: a sympy `Eq` or expression.
    - `digits`: significant figures of floats (trailing zeros kept), or
      `None` for sympy's default.

    **Returns:** the text.
    """
    if not isinstance(obj, sp.Basic):
        raise ExportError(
            f"`to_text` prints a sympy equation or expression; got "
            f"{type(obj).__name__}."
        )
    printer = SymmlStrPrinter(digits=digits)
    if isinstance(obj, sp.Equality):
        return f"{printer.doprint(obj.lhs)} = {printer.doprint(obj.rhs)}"
    return printer.doprint(obj)
