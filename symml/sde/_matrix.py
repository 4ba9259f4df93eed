"""Lowering rules for sympy's matrix expressions (vector notation).

A `ParabolicPDE` is written with `MatrixSymbol`s, `MatMul`, `DotProduct` and
friends so that its declaration does not grow with the dimension. These rules
lower them to whole-array JAX operations, one per sympy node, without ever
expanding them into `d` scalar terms. They extend the global table per call
(`Compiler(rules=MATRIX_RULES)`), so scalar lowering is unchanged.

Values are 2-D arrays of the expression's shape (a vector is `(d, 1)`).
"""

import functools
import operator

import jax.numpy as jnp
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from .._errors import LoweringError

MATRIX_RULES: dict[type, object] = {}


def _rule(cls):
    def register(rule):
        MATRIX_RULES[cls] = rule
        return rule

    return register


@_rule(sp.MatrixSymbol)
def _matrix_symbol(expr, compile):
    if expr not in compile.bound:
        raise LoweringError(
            f"The matrix symbol `{expr}` has no value: it is neither a variable of "
            "the PDE nor its gradient symbol."
        )
    return lambda env: env.values[expr]


@_rule(sp.ZeroMatrix)
def _zero(expr, compile):
    shape = tuple(int(s) for s in expr.shape)
    return lambda env: jnp.zeros(shape)


@_rule(sp.Identity)
def _identity(expr, compile):
    n = int(expr.shape[0])
    return lambda env: jnp.eye(n)


@_rule(sp.ImmutableDenseMatrix)
def _explicit(expr, compile):
    rows, cols = expr.shape
    entries = [compile(e) for e in expr]

    def evaluate(env):
        values = [jnp.asarray(e(env)) for e in entries]
        dtype = jnp.result_type(*values)
        return jnp.stack([v.astype(dtype) for v in values]).reshape(rows, cols)

    return evaluate


@_rule(sp.MatMul)
def _matmul(expr, compile):
    scalars = [compile(a) for a in expr.args if not isinstance(a, sp.MatrixExpr)]
    # Factors applied right to left. The identity is skipped and a diagonal
    # matrix scales rows, so `s * I * x` and `DiagMatrix(v) * x` cost O(d),
    # not O(d²).
    factors = []
    for a in expr.args:
        if not isinstance(a, sp.MatrixExpr) or isinstance(a, sp.Identity):
            continue
        if isinstance(a, sp.DiagMatrix):
            factors.append(("diag", compile(a.args[0])))
        else:
            factors.append(("matrix", compile(a)))

    def evaluate(env):
        out = None
        for kind, f in reversed(factors):
            value = f(env)
            if kind == "diag":
                v = value.reshape(-1, 1)
                out = jnp.diagflat(v) if out is None else v * out
            else:
                out = value if out is None else value @ out
        if out is None:
            out = jnp.eye(int(expr.shape[0]))
        for s in scalars:
            out = s(env) * out
        return out

    return evaluate


@_rule(sp.MatAdd)
def _matadd(expr, compile):
    args = [compile(a) for a in expr.args]
    return lambda env: functools.reduce(operator.add, (a(env) for a in args))


@_rule(sp.Transpose)
def _transpose(expr, compile):
    (a,) = (compile(x) for x in expr.args)
    return lambda env: a(env).T


@_rule(sp.HadamardProduct)
def _hadamard(expr, compile):
    args = [compile(a) for a in expr.args]
    return lambda env: functools.reduce(operator.mul, (a(env) for a in args))


@_rule(sp.DiagMatrix)
def _diag(expr, compile):
    v = compile(expr.args[0])
    return lambda env: jnp.diagflat(v(env))


@_rule(sp.DotProduct)
def _dot(expr, compile):
    a, b = (compile(x) for x in expr.args)
    return lambda env: jnp.vdot(a(env).reshape(-1), b(env).reshape(-1))


@_rule(sp.Trace)
def _trace(expr, compile):
    (a,) = (compile(x) for x in expr.args)
    return lambda env: jnp.trace(a(env))


@_rule(MatrixElement)
def _element(expr, compile):
    parent, i, j = expr.args
    if not (i.is_Integer and j.is_Integer):
        raise LoweringError(
            f"`{expr}` indexes a matrix with a symbolic index; write sums over "
            "entries in vector notation (`sympy.DotProduct`, `A * x`)."
        )
    p = compile(parent)
    return lambda env: p(env)[int(i), int(j)]


@_rule(sp.MatPow)
def _matpow(expr, compile):
    base, exp = expr.args
    if not exp.is_Integer or int(exp) < 0:
        raise LoweringError(
            f"`{expr}` raises a matrix to the power {exp}; only non-negative "
            "integer powers are supported."
        )
    b = compile(base)
    return lambda env: jnp.linalg.matrix_power(b(env), int(exp))


@_rule(sp.HadamardPower)
def _hadamard_power(expr, compile):
    base, exp = (compile(a) for a in expr.args)
    return lambda env: jnp.power(base(env), exp(env))
