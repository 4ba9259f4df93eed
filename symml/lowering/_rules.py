"""The rule registry: sympy classes → JAX.

A rule is `rule(expr, compile) -> evaluator`, where `compile(child)` turns a
sub-expression into an evaluator and an evaluator is `evaluator(env) -> Array`.
Rules are looked up along the class's MRO, like sympy's printers, so a rule for
a base class covers its subclasses. A class with no rule is a
[`LoweringError`][symml.LoweringError], never a silent fallback.
"""

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import sympy as sp

from .._errors import LoweringError
from .._registry import Registry

# An evaluator maps an `Env` (see `_compile.py`) to an array.
Evaluator = Callable[[Any], jax.Array]
Rule = Callable[[sp.Basic, Callable[[sp.Basic], Evaluator]], Evaluator]


def _is_sympy_class(key: Any) -> bool:
    return isinstance(key, type) and issubclass(key, sp.Basic)


_LOWERING: Registry[type, Rule] = Registry(
    "lowering rule",
    error=LoweringError,
    is_key=_is_sympy_class,
    key_hint="a sympy class (e.g. `sympy.sin` or a `sympy.Function` subclass)",
    register_name="symml.register_rule",
    key_name="cls",
)

# A read-only view of the table: extend it with `register_rule`, or per call
# with `lower(..., rules=...)`.
RULES: Mapping[type, Rule] = _LOWERING.view


def lowering_rules() -> Mapping[type, Rule]:
    """A read-only view of the lowering rules `{sympy class: rule}`."""
    return _LOWERING.view


def register_rule(cls: type, rule: Rule | None = None):
    """Register `rule` for the sympy class `cls` (usable as a decorator).

    To lower a user-defined sympy function `f`, register a rule returning an
    evaluator, or use [`register_function`][symml.register_function] for the
    common case of an elementwise JAX function.

    **Arguments:**

    - `cls`: a sympy class; rules are looked up along the MRO of an
        expression's class, so a rule for a base class covers its subclasses.
    - `rule`: `rule(expr, compile) -> evaluator`, where `compile(child)` lowers
        a sub-expression and an evaluator maps an environment to an array.
        Omit it to use `@register_rule(cls)` as a decorator.

    **Returns:**

    `rule` (or, without it, a decorator that registers and returns its
    argument).
    """
    return _LOWERING.register(cls, rule)


def register_function(cls: type, fn: Callable | None = None):
    """Lower applications of the sympy function class `cls` to `fn(*args)`.

    **Arguments:**

    - `cls`: a sympy function class (`sympy.Function` subclass).
    - `fn`: an elementwise JAX function of the applied arguments. Omit it to
        use `@register_function(cls)` as a decorator.

    **Returns:**

    `fn` (or, without it, a decorator that registers and returns its
    argument).

    **Example:**

    ```python
    class softclip(sympy.Function): ...
    symml.register_function(softclip, lambda x: x / (1 + jnp.abs(x)))
    ```
    """
    _LOWERING.check_key(cls)
    if fn is None:
        return lambda f: register_function(cls, f)
    if not callable(fn):
        raise LoweringError(
            f"`fn` for `{cls.__name__}` must be callable, got {type(fn).__name__}; "
            "pass the JAX function that `symml.register_function` should apply."
        )

    def rule(expr, compile):
        args = [compile(a) for a in expr.args]
        return lambda env: fn(*(a(env) for a in args))

    _LOWERING.register(cls, rule)
    return fn


def find_rule(expr: sp.Basic, rules) -> Rule:
    for cls in type(expr).__mro__:
        rule = rules.get(cls)
        if rule is not None:
            return rule
    raise LoweringError(
        f"symml cannot lower `{expr}` (a sympy `{type(expr).__name__}`): no rule is "
        "registered for it. Rewrite it with supported functions, or register one "
        "with `symml.register_function(cls, jax_fn)`."
    )


# -- numbers and constants -------------------------------------------------------


def _constant(value: float) -> Evaluator:
    # Python floats stay weakly typed: float32 states stay float32.
    return lambda env: value


@register_rule(sp.Number)
def _number(expr, compile):
    # Small integers stay Python ints (weakly typed and exact); a larger one
    # would overflow JAX's int32 when x64 is off, so it becomes a float.
    if isinstance(expr, sp.Integer) and abs(int(expr)) < 2**31:
        return _constant(int(expr))
    if expr is sp.nan:
        return _undefined(expr, compile)
    return _constant(float(expr))


@register_rule(sp.core.numbers.ComplexInfinity)
def _undefined(expr, compile):
    raise LoweringError(
        f"The expression contains the undefined number `{expr}`; check for a "
        "division by zero in the model."
    )


@register_rule(sp.NumberSymbol)
def _number_symbol(expr, compile):
    return _constant(float(expr))


@register_rule(sp.core.numbers.ImaginaryUnit)
def _imaginary(expr, compile):
    raise LoweringError(
        "The expression contains the imaginary unit `I`; symml lowers real-valued "
        "models only."
    )


for _cls in (sp.logic.boolalg.BooleanTrue, sp.logic.boolalg.BooleanFalse):
    register_rule(_cls, lambda expr, compile: _constant(bool(expr)))


# -- arithmetic ------------------------------------------------------------------


def _reduce(op):
    def rule(expr, compile):
        args = [compile(a) for a in expr.args]
        return lambda env: functools.reduce(op, (a(env) for a in args))

    return rule


register_rule(sp.Add, _reduce(operator.add))
register_rule(sp.Mul, _reduce(operator.mul))
register_rule(sp.Max, _reduce(jnp.maximum))
register_rule(sp.Min, _reduce(jnp.minimum))
register_rule(sp.And, _reduce(jnp.logical_and))
register_rule(sp.Or, _reduce(jnp.logical_or))
register_rule(sp.Xor, _reduce(jnp.logical_xor))


@register_rule(sp.Pow)
def _pow(expr, compile):
    base, exp = expr.args
    b = compile(base)
    if exp.is_Integer:
        n = int(exp)
        if n >= 0:
            return lambda env: jax.lax.integer_pow(jnp.asarray(b(env)), n)
        return lambda env: 1 / jax.lax.integer_pow(jnp.asarray(b(env)), -n)
    if exp == sp.Rational(1, 2):
        return lambda env: jnp.sqrt(b(env))
    if exp == sp.Rational(-1, 2):
        return lambda env: jax.lax.rsqrt(jnp.asarray(b(env)))
    if base is sp.E:
        e = compile(exp)
        return lambda env: jnp.exp(e(env))
    e = compile(exp)
    return lambda env: jnp.power(b(env), e(env))


def _binary(fn):
    def rule(expr, compile):
        lhs, rhs = (compile(a) for a in expr.args)
        return lambda env: fn(lhs(env), rhs(env))

    return rule


for _cls, _fn in {
    sp.StrictLessThan: operator.lt,
    sp.LessThan: operator.le,
    sp.StrictGreaterThan: operator.gt,
    sp.GreaterThan: operator.ge,
    sp.Equality: operator.eq,
    sp.Unequality: operator.ne,
    sp.atan2: jnp.arctan2,
}.items():
    register_rule(_cls, _binary(_fn))


@register_rule(sp.Not)
def _not(expr, compile):
    (a,) = (compile(x) for x in expr.args)
    return lambda env: jnp.logical_not(a(env))


@register_rule(sp.ITE)
def _ite(expr, compile):
    # sympy turns a Piecewise inside a condition into ITE(if, then, else).
    cond, then, other = (compile(a) for a in expr.args)
    return lambda env: jnp.where(cond(env), then(env), other(env))


@register_rule(sp.Piecewise)
def _piecewise(expr, compile):
    pieces = [(compile(e), compile(c)) for e, c in expr.args]
    last_value, last_cond = pieces[-1]
    otherwise = expr.args[-1].cond == sp.true

    def evaluate(env):
        if otherwise:
            out = last_value(env)
        else:
            out = jnp.where(last_cond(env), last_value(env), jnp.nan)
        for value, cond in reversed(pieces[:-1]):
            out = jnp.where(cond(env), value(env), out)
        return out

    return evaluate


@register_rule(sp.Heaviside)
def _heaviside(expr, compile):
    x = compile(expr.args[0])
    h0 = compile(expr.args[1]) if len(expr.args) > 1 else _constant(0.5)
    return lambda env: jnp.heaviside(x(env), h0(env))


@register_rule(sp.log)
def _log(expr, compile):
    # sympy keeps log(x, b) as log(x)/log(b); one argument here.
    (x,) = (compile(a) for a in expr.args)
    return lambda env: jnp.log(x(env))


# -- elementary functions: a table, installed in a loop -----------------------------

ELEMENTWISE: dict[type, Callable] = {
    sp.exp: jnp.exp,
    sp.sin: jnp.sin,
    sp.cos: jnp.cos,
    sp.tan: jnp.tan,
    sp.cot: lambda x: 1 / jnp.tan(x),
    sp.sec: lambda x: 1 / jnp.cos(x),
    sp.csc: lambda x: 1 / jnp.sin(x),
    sp.asin: jnp.arcsin,
    sp.acos: jnp.arccos,
    sp.atan: jnp.arctan,
    sp.acot: lambda x: jnp.arctan(1 / x),
    sp.asec: lambda x: jnp.arccos(1 / x),
    sp.acsc: lambda x: jnp.arcsin(1 / x),
    sp.sinh: jnp.sinh,
    sp.cosh: jnp.cosh,
    sp.tanh: jnp.tanh,
    sp.coth: lambda x: 1 / jnp.tanh(x),
    sp.sech: lambda x: 1 / jnp.cosh(x),
    sp.csch: lambda x: 1 / jnp.sinh(x),
    sp.asinh: jnp.arcsinh,
    sp.acosh: jnp.arccosh,
    sp.atanh: jnp.arctanh,
    sp.acoth: lambda x: jnp.arctanh(1 / x),
    sp.asech: lambda x: jnp.arccosh(1 / x),
    sp.acsch: lambda x: jnp.arcsinh(1 / x),
    sp.Abs: jnp.abs,
    sp.sign: jnp.sign,
    sp.erf: jsp.erf,
    sp.erfc: jsp.erfc,
    sp.floor: jnp.floor,
    sp.ceiling: jnp.ceil,
    sp.gamma: jsp.gamma,
    sp.loggamma: jsp.gammaln,
    # Parts of complex numbers, of real values (symml's values are real), as
    # `sympy.lambdify` lowers them: sympy writes them where a symbol is not
    # declared real (`Abs(exp(a))` is `exp(re(a))`).
    sp.re: jnp.real,
    sp.im: jnp.imag,
    sp.conjugate: jnp.conjugate,
    sp.arg: jnp.angle,
}

for _cls, _fn in ELEMENTWISE.items():
    register_function(_cls, _fn)
