"""LaTeX of models, equations and expressions: a sympy `LatexPrinter` subclass."""

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from .._errors import ExportError
from .._files import write_text
from ..dsl import FieldFunction, Model, StateFunction, Trainable, UnknownOutput
from ._text import check_digits, significant_figures

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
    mantissa, exponent = significant_figures(value, digits)
    if exponent is None:
        return mantissa
    return rf"{mantissa} \cdot 10^{{{exponent}}}"


def _decimal_place(value: float) -> int:
    """The power of ten of the leading digit of `value` (non-zero, finite)."""
    return math.floor(math.log10(abs(value)))


def format_uncertain(
    value: float, std: float, digits: int | None = 3, *, latex: bool = True
) -> str:
    """`value ± std`, both rounded to the decimal place of the standard
    error's leading digit (one significant figure of the error, the value to
    the same place): `-0.9, 0.0043` prints as `-0.900 \\pm 0.004`, `1234.5,
    12` as `1230 \\pm 10`. A zero error prints the value with `digits`
    significant figures. Outside 1e-4 <= |number| < 1e6 both share a power of
    ten: `\\left(1.00 \\pm 0.03\\right) \\cdot 10^{-6}`."""
    digits = 3 if digits is None else digits
    pm = r" \pm " if latex else " ± "
    if std > 0:
        place = _decimal_place(std)
    elif value != 0:
        place = _decimal_place(value) - digits + 1
    else:
        return f"0{pm}0"
    lead = max(_decimal_place(v) for v in (value, std) if v != 0)
    if lead < -4 or lead >= 6:
        # A shared power of ten keeps both numbers short.
        decimals = max(0, lead - place)
        a = f"{value / 10**lead:.{decimals}f}"
        b = f"{std / 10**lead:.{decimals}f}"
        if latex:
            return rf"\left({a}{pm}{b}\right) \cdot 10^{{{lead}}}"
        return f"({a}{pm}{b})e{lead}"
    decimals = max(0, -place)
    a = f"{round(value, -place):.{decimals}f}"
    b = f"{round(std, -place):.{decimals}f}"
    return f"{a}{pm}{b}"


class UncertainValue(sp.AtomicExpr):
    """A number with a standard error, `value ± std`, as a sympy atom: what a
    coefficient with an error bar becomes when a model is printed with
    `uncertainty=`. It is positive; a negative coefficient is
    `-UncertainValue(|value|, std)`, so sums print `a - b \\pm s\\, x`."""

    is_commutative = True
    is_real = True
    is_positive = True

    def __new__(cls, value: float, std: float):
        obj = super().__new__(cls)
        obj._value = float(value)
        obj._std = float(std)
        return obj

    @property
    def value(self) -> float:
        return self._value

    @property
    def std(self) -> float:
        return self._std

    def _hashable_content(self):
        return (self._value, self._std)

    def _sympystr(self, printer) -> str:
        return "(" + format_uncertain(self._value, self._std, latex=False) + ")"


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
      factors of a product keep sympy's default order (`u \\frac{d u}{d x}`);
    - a coefficient with an error bar
      ([`UncertainValue`][symml.export.UncertainValue]) prints as
      `0.900 \\pm 0.004` at the front of its product, separated from the
      other factors by a thin space: `- 0.900 \\pm 0.004\\, x y`.

    **Arguments:**

    - `digits`: significant figures of floats, or `None` for sympy's default.
    - `settings`: any other `LatexPrinter` settings (`order=...` overrides the
      term order).
    """

    def __init__(self, *, digits: int | None = 3, **settings: Any):
        check_digits(digits)
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

    def _print_UncertainValue(self, expr: UncertainValue) -> str:
        return format_uncertain(expr.value, expr.std, self._digits)

    def _print_Mul(self, expr: sp.Mul) -> str:
        uncertain = [f for f in expr.args if isinstance(f, UncertainValue)]
        if not uncertain:
            return super()._print_Mul(expr)
        coefficient, rest = expr.as_coeff_Mul()
        others = [f for f in sp.Mul.make_args(rest) if f not in uncertain]
        tex = "- " if coefficient < 0 else ""
        if abs(coefficient) != 1:
            tex += self._print(abs(coefficient)) + r" \cdot "
        tex += r" \cdot ".join(self._print(f) for f in uncertain)
        if others:
            tex += r"\, " + self._print(sp.Mul(*others))
        return tex

    def _print_Float(self, expr: sp.Float) -> str:
        if self._digits is None:
            return super()._print_Float(expr)
        value = float(expr)
        if value == 0:
            return "0"
        return _format_float(value, self._digits)


def _equations(
    obj: Any, values: bool = False, keep: frozenset = frozenset()
) -> list[sp.Basic] | None:
    """The expressions or equations to print, or None if `obj` is not one;
    with `values`, fixed parameters other than those in `keep` are replaced by
    their values."""
    if isinstance(obj, Model):
        if values:
            fixed = {
                p: sp.Float(v) for p, v in obj.fixed_parameters.items() if p not in keep
            }
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


def _uncertain_symbols(
    obj: Any, equations: list[sp.Basic], uncertainty: Mapping
) -> dict[sp.Symbol, sp.Expr]:
    """`{symbol: ±UncertainValue(|value|, std)}` for each entry of
    `uncertainty`, the values taken from the entry or from the model."""
    if not isinstance(uncertainty, Mapping):
        raise ExportError(
            f"`uncertainty` must be a dict `{{parameter: standard error}}` or "
            f"`{{parameter: (value, standard error)}}`; got "
            f"{type(uncertainty).__name__}."
        )
    if isinstance(obj, Model):
        symbols = {str(p): p for p in obj.parameters}
        values = {
            p: v.initial if isinstance(v, Trainable) else v
            for p, v in obj.parameters.items()
        }
        what = "a parameter of the model"
    else:
        free = set().union(*(e.free_symbols for e in equations))
        symbols = {str(s): s for s in free if isinstance(s, sp.Symbol)}
        values = {}
        what = "a symbol of the expression"
    out = {}
    for key, entry in uncertainty.items():
        symbol = symbols.get(str(key)) if isinstance(key, str | sp.Symbol) else None
        if symbol is None:
            known = ", ".join(f"`{n}`" for n in sorted(symbols)) or "none"
            raise ExportError(
                f"`uncertainty` names `{key}`, which is not {what} (those are "
                f"{known}); key it by the parameters whose error bars to print."
            )
        if isinstance(entry, tuple | list):
            if len(entry) != 2:
                raise ExportError(
                    f"`uncertainty[{key}]` must be a standard error or a pair "
                    f"`(value, standard error)`; got {entry!r}."
                )
            value, std = entry
        elif symbol in values:
            value, std = values[symbol], entry
        else:
            raise ExportError(
                f"`uncertainty[{key}]` gives a standard error only, but `{key}` has "
                "no value to print it beside; give `(value, standard error)`."
            )
        try:
            value, std = float(value), float(std)
        except (TypeError, ValueError):
            raise ExportError(
                f"`uncertainty[{key}]` must hold numbers; got {entry!r}."
            ) from None
        if not (math.isfinite(value) and math.isfinite(std)) or std < 0:
            raise ExportError(
                f"`uncertainty[{key}]` has value {value!r} and standard error "
                f"{std!r}; both must be finite and the standard error >= 0."
            )
        sign = -1 if value < 0 else 1
        out[symbol] = sign * UncertainValue(abs(value), std)
    return out


def with_uncertainty(
    obj: Model | sp.Basic | Iterable[sp.Basic],
    uncertainty: Mapping,
    *,
    values: bool = False,
) -> list[sp.Basic]:
    """The equations (or expressions) of `obj` with each parameter named in
    `uncertainty` replaced by an [`UncertainValue`][symml.export.UncertainValue],
    as `to_latex(obj, uncertainty=...)` prints them; `str()` of the result
    reads `-(0.900 ± 0.004)*x(t)*y(t)`.

    **Arguments:** `obj`, `uncertainty` and `values` as for
    [`to_latex`][symml.export.to_latex].

    **Returns:** a list of sympy equations or expressions.
    """
    equations = _equations(obj)
    if equations is None:
        raise ExportError(
            f"`with_uncertainty` cannot print an object of type "
            f"{type(obj).__name__}; pass a symml `Model`, a sympy `Eq`, a "
            "non-empty list of them, or a sympy expression."
        )
    subs = _uncertain_symbols(obj, equations, uncertainty)
    equations = _equations(obj, values, keep=frozenset(subs))
    out = []
    for e in equations:
        if isinstance(e, sp.Equality):
            out.append(
                sp.Eq(e.lhs.xreplace(subs), e.rhs.xreplace(subs), evaluate=False)
            )
        else:
            out.append(e.xreplace(subs))
    return out


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
    uncertainty: Mapping | None = None,
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
    - `uncertainty`: error bars to print: `{parameter: standard error}` (the
      value is the model's: a fixed parameter's value, a trainable one's
      initial value) or `{parameter: (value, standard error)}` (required for
      an expression or equation). Each such parameter prints as its value ±
      its standard error, both rounded to the same decimal place, in front of
      its term: `1.30 x - 0.900 \\pm 0.004\\, x y`. The `standard_errors` and
      `values` of a fit's
      [`ParameterUncertainty`][symml.ParameterUncertainty] fit here.

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
    if uncertainty is not None:
        equations = with_uncertainty(obj, uncertainty, values=values)
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
    uncertainty: Mapping | None = None,
) -> Path:
    """Write [`to_latex`][symml.export.to_latex]`(obj)` to a file, atomically.

    The text goes to a temporary file in the same directory, which then
    replaces `path` in one step: a reader never sees a half-written file, and
    an existing file survives a failed export.

    **Arguments:**

    - `path`: the file to write.
    - `obj`, `digits`, `aligned`, `values`, `uncertainty`: as for `to_latex`.

    **Returns:**

    The path written.
    """
    text = (
        to_latex(
            obj, digits=digits, aligned=aligned, values=values, uncertainty=uncertainty
        )
        + "\n"
    )
    return write_text(path, text)
