"""LaTeX of models, equations and expressions: a sympy `LatexPrinter` subclass."""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from .._errors import ExportError
from .._files import write_text
from ..dsl import FieldFunction, Model, StateFunction, UnknownOutput

# The functions printed by name. sympy dispatches on the class's own name
# first, so a state called `gamma` would otherwise reach `_print_gamma` (the
# gamma function); these classes are dispatched before that lookup.
_DEPENDENT_PRINTERS = {
    StateFunction: "_print_StateFunction",
    FieldFunction: "_print_StateFunction",
    UnknownOutput: "_print_UnknownOutput",
}


def _format_float(value: float, digits: int) -> str:
    """`digits` significant figures, trailing zeros kept (`0.900`, `1.30`);
    scientific notation outside 1e-4 <= |value| < 10**digits."""
    text = f"{value:#.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        mantissa = mantissa.rstrip(".")
        return rf"{mantissa} \cdot 10^{{{int(exponent)}}}"
    return text.rstrip(".")


class SymmlLatexPrinter(LatexPrinter):
    """LaTeX printer for symml models.

    Compared with sympy's `LatexPrinter`:

    - states and fields print as their bare names (`x`, not
      `x{\\left(t \\right)}`) when applied to their variables; evaluated at a
      point they keep their arguments (`x(0)`);
    - derivatives of states and fields print as `\\frac{d x}{d t}`,
      `\\frac{d^{2} x}{d t^{2}}`, or with `\\partial` for functions of several
      variables;
    - unknown network outputs print as `U_{0}(x, y)`;
    - floats print with `digits` significant figures, trailing zeros kept
      (`0.900`); `digits=None` prints them as sympy does;
    - terms of a sum keep sympy's canonical argument order (that of
      `expr.args`), which puts lower-degree terms first: `1.30 x - 0.900 x y`
      (sympy's default "lex" order would print `- 0.900 x y + 1.30 x`);
      factors of a product keep sympy's default order (`u \\frac{d u}{d x}`).

    **Arguments:**

    - `digits`: significant figures of floats, or `None` for sympy's default.
    - `settings`: any other `LatexPrinter` settings (`order=...` overrides the
      term order).
    """

    def __init__(self, *, digits: int | None = 3, **settings: Any):
        if digits is not None and (
            isinstance(digits, bool) or not isinstance(digits, int) or digits < 1
        ):
            raise ExportError(
                f"`digits` must be a positive integer (or None for full precision);"
                f" got {digits!r}."
            )
        super().__init__(settings)
        self._digits = digits

    def _print(self, expr: Any, **kwargs: Any) -> str:
        for cls, method in _DEPENDENT_PRINTERS.items():
            if isinstance(expr, cls):
                return getattr(self, method)(expr, **kwargs)
        return super()._print(expr, **kwargs)

    def _as_ordered_terms(self, expr: sp.Basic, order: str | None = None) -> list:
        if (order or self.order) is None:
            return list(expr.args)
        return super()._as_ordered_terms(expr, order=order)

    def _name(self, function: AppliedUndef) -> str:
        return self._deal_with_super_sub(function.func.__name__)

    def _arguments(self, expr: sp.Basic) -> str:
        return "(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_StateFunction(self, expr: AppliedUndef, exp: str | None = None) -> str:
        tex = self._name(expr)
        if not all(isinstance(a, sp.Symbol) for a in expr.args):
            tex += self._arguments(expr)
        return tex if exp is None else f"{tex}^{{{exp}}}"

    def _print_UnknownOutput(self, expr: AppliedUndef, exp: str | None = None) -> str:
        tex = self._name(expr) + self._arguments(expr)
        return tex if exp is None else f"{tex}^{{{exp}}}"

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        function = expr.expr
        if not isinstance(function, (StateFunction, FieldFunction)):
            return super()._print_Derivative(expr)
        d = r"\partial" if len(function.args) > 1 else "d"
        order = sum(count for _, count in expr.variable_count)
        denominator = " ".join(
            f"{d} {self._print(v)}" + (f"^{{{count}}}" if count > 1 else "")
            for v, count in expr.variable_count
        )
        power = f"^{{{order}}}" if order > 1 else ""
        return rf"\frac{{{d}{power} {self._print(function)}}}{{{denominator}}}"

    def _print_Float(self, expr: sp.Float) -> str:
        if self._digits is None:
            return super()._print_Float(expr)
        value = float(expr)
        if value == 0:
            return "0"
        return _format_float(value, self._digits)


def _equations(obj: Any, values: bool = False) -> list[sp.Basic] | None:
    """The expressions or equations to print, or None if `obj` is not one."""
    if isinstance(obj, Model):
        if values:
            fixed = {p: sp.Float(v) for p, v in obj.fixed_parameters.items()}
            return [
                sp.Eq(e.lhs.xreplace(fixed), e.rhs.xreplace(fixed), evaluate=False)
                for e in obj.equations
            ]
        return list(obj.equations)
    if isinstance(obj, sp.Basic):
        return [obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [sp.sympify(obj)]
    if isinstance(obj, (list, tuple)) and obj:
        items = [_equations(o) for o in obj]
        if all(i is not None and len(i) == 1 for i in items):
            return [i[0] for i in items]
    return None


def _aligned_line(printer: SymmlLatexPrinter, eq: sp.Basic) -> str:
    if isinstance(eq, sp.Equality):
        return f"{printer.doprint(eq.lhs)} &= {printer.doprint(eq.rhs)}"
    return printer.doprint(eq)


def to_latex(
    obj: Model | sp.Basic | Iterable[sp.Basic],
    *,
    digits: int | None = 3,
    aligned: bool = True,
    values: bool = False,
) -> str:
    """LaTeX for a model, an equation, a list of equations or an expression.

    A [`Model`][symml.Model] prints its equations as written (not its
    conditions). Several equations print as
    `\\begin{aligned} lhs &= rhs \\\\ ... \\end{aligned}`, or, with
    `aligned=False`, separated by `,\\quad `. A single equation or expression
    never uses `aligned`. See [`SymmlLatexPrinter`][symml.export.SymmlLatexPrinter]
    for how states, derivatives, unknowns and floats print.

    **Arguments:**

    - `obj`: a `Model`, a sympy `Eq`, a list of `Eq`s, or a sympy expression.
    - `digits`: significant figures of floats (trailing zeros kept, so `0.900`);
      `None` prints floats as sympy does.
    - `aligned`: whether several equations form an `aligned` environment.
    - `values`: for a `Model`, print the values of its fixed parameters in
      place of their symbols (trainable parameters keep their symbols), so a
      recovered model reads `1.30 x - 0.900 x y`.

    **Returns:**

    The LaTeX string, without surrounding `$` or display delimiters.
    """
    equations = _equations(obj, values)
    if equations is None:
        raise ExportError(
            f"`to_latex` cannot export an object of type {type(obj).__name__}; "
            "pass a symml `Model`, a sympy `Eq`, a non-empty list of them, or a "
            "sympy expression."
        )
    printer = SymmlLatexPrinter(digits=digits)
    if len(equations) == 1:
        return printer.doprint(equations[0])
    if not aligned:
        return r",\quad ".join(printer.doprint(eq) for eq in equations)
    lines = r" \\ ".join(_aligned_line(printer, eq) for eq in equations)
    return rf"\begin{{aligned}} {lines} \end{{aligned}}"


def write_latex(
    path: str | os.PathLike,
    obj: Model | sp.Basic | Iterable[sp.Basic],
    *,
    digits: int | None = 3,
    aligned: bool = True,
    values: bool = False,
) -> Path:
    """Write [`to_latex`][symml.export.to_latex]`(obj)` to a file, atomically.

    The text goes to a temporary file in the same directory, which then
    replaces `path` in one step: a reader never sees a half-written file, and
    an existing file survives a failed export.

    **Arguments:**

    - `path`: the file to write.
    - `obj`, `digits`, `aligned`, `values`: as for `to_latex`.

    **Returns:**

    The path written.
    """
    text = to_latex(obj, digits=digits, aligned=aligned, values=values) + "\n"
    return write_text(path, text)
