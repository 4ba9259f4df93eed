"""Solving equations for their highest derivatives, and first-order form.

The work is linear in the size of the equations: each equation is scanned
once for the derivatives it contains, coefficients come from one derivative
each, and the common case (every equation holds one highest derivative, as
`x' = f(x)` does) never builds a matrix. A coupled system (a mass matrix) is
solved exactly when its coefficients are small rational numbers, in floating
point when they are other numbers, and symbolically only when they involve
symbols; no symbolic determinant is ever expanded.
"""

from collections.abc import Sequence

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import ModelError

# Above this size an exact rational inverse costs more than it is worth.
_EXACT_LIMIT = 8
# A numeric mass matrix with a larger condition number is treated as singular.
_SINGULAR = 1e12


def describe(eq: sp.Eq) -> str:
    return f"{eq.lhs} = {eq.rhs}"


def _linear_parts(residual, present, dummies, eq, unknowns):
    """`({unknown index: coefficient}, remainder)` with `residual =
    Σ coefficient · unknown + remainder`, or a `ModelError` if `residual` is
    not affine in an unknown."""
    replaced = residual.xreplace({unknowns[j]: dummies[j] for j in present})
    fast = _monomial_parts(replaced, [dummies[j] for j in present])
    if fast is not None:
        coefficients, remainder = fast
        return dict(zip(present, coefficients, strict=True)), remainder
    coefficients = {}
    for j in present:
        a = replaced.diff(dummies[j])
        if a.has(*(dummies[k] for k in present)):
            raise ModelError(
                f"The equation `{describe(eq)}` is not linear in "
                f"`{unknowns[j]}`; symml solves equations that are linear in each "
                "state's highest derivative. Write it solved for that derivative."
            )
        coefficients[j] = a
    remainder = replaced.xreplace({dummies[j]: 0 for j in present})
    return coefficients, remainder


def _monomial_parts(expr, symbols):
    """`(coefficients, remainder)` when every term of the sum `expr` that holds
    one of `symbols` is `coefficient * symbol` (the usual `x' - f(x)`), else
    `None`: no differentiation of the whole expression is needed."""
    coefficients = [sp.Integer(0)] * len(symbols)
    position = {s: i for i, s in enumerate(symbols)}
    rest = []
    for term in sp.Add.make_args(expr):
        if not term.has(*symbols):
            rest.append(term)
            continue
        c, factor = term.as_independent(*symbols, as_Add=False)
        if factor not in position:
            return None
        coefficients[position[factor]] += c
    return coefficients, sp.Add(*rest)


def _is_zero(a: sp.Expr) -> bool:
    if a.is_number:
        return a == 0
    # A coefficient can be zero without looking zero (`sin(t)**2 + cos(t)**2 - 1`).
    return a.is_zero is True or sp.simplify(a) == 0


def solve_linear(
    equations: Sequence[sp.Eq], unknowns: Sequence[sp.Expr], what: str
) -> list[sp.Expr]:
    """Solve `equations` (each linear in `unknowns`) for `unknowns`.

    **Arguments:**

    - `equations`: one `Eq` per unknown.
    - `unknowns`: the expressions to solve for (highest derivatives).
    - `what`: how to name them in messages.

    **Returns:**

    One expression per unknown, in the order of `unknowns`.
    """
    n = len(unknowns)
    if len(equations) != n:
        raise ModelError(
            f"The model has {len(equations)} equation(s) for {n} {what} "
            f"({', '.join(map(str, unknowns))}); give exactly one equation per state."
        )
    index = {u: j for j, u in enumerate(unknowns)}
    dummies = [sp.Dummy(f"d{j}") for j in range(n)]
    rows, remainders = [], []
    for eq in equations:
        residual = eq.lhs - eq.rhs
        present = sorted(
            {index[d] for d in residual.atoms(sp.Derivative) if d in index}
        )
        coefficients, remainder = _linear_parts(
            residual, present, dummies, eq, unknowns
        )
        rows.append({j: a for j, a in coefficients.items() if not _is_zero(a)})
        remainders.append(remainder)
    for j in range(n):
        if not any(j in row for row in rows):
            raise ModelError(
                f"No equation determines `{unknowns[j]}`; each state needs an "
                "equation for its highest derivative."
            )
    # The common case: after reordering, each equation holds one unknown.
    owners = [next(iter(row)) if len(row) == 1 else None for row in rows]
    if None not in owners and len(set(owners)) == n:
        out = [None] * n
        for row, remainder, j in zip(rows, remainders, owners, strict=True):
            out[j] = -remainder if row[j] == 1 else -remainder / row[j]
        return out
    return _solve_coupled(rows, remainders, unknowns)


def _solve_coupled(rows, remainders, unknowns) -> list[sp.Expr]:
    n = len(unknowns)
    A = sp.zeros(n, n)
    for i, row in enumerate(rows):
        for j, a in row.items():
            A[i, j] = a
    b = sp.Matrix([-r for r in remainders])
    singular = ModelError(
        f"The equations do not determine {', '.join(map(str, unknowns))} uniquely "
        "(the system is singular in them); check that each state has its own "
        "equation."
    )
    if all(a.is_number for a in A):
        values = np.array(A.evalf(), dtype=float)
        if np.linalg.cond(values) > _SINGULAR:
            raise singular
        if n <= _EXACT_LIMIT and all(a.is_Rational for a in A):
            inverse = A.inv()
        else:
            inverse = np.linalg.inv(values)
            scale = np.max(np.abs(inverse))
            inverse = sp.Matrix(
                n,
                n,
                lambda i, j: (
                    sp.Float(inverse[i, j])
                    if abs(inverse[i, j]) > 1e-14 * scale
                    else sp.Integer(0)
                ),
            )
        return list(inverse * b)
    # Symbolic coefficients: singular if singular at a generic point.
    symbols = sorted(A.free_symbols, key=str)
    functions = sorted(A.atoms(AppliedUndef, sp.Derivative), key=str)
    rng = np.random.default_rng(0)
    point = {s: sp.Float(rng.uniform(0.5, 1.5)) for s in [*functions, *symbols]}
    values = np.array(A.xreplace(point).evalf(), dtype=float)
    if not np.all(np.isfinite(values)) or np.linalg.cond(values) > _SINGULAR:
        raise singular
    return list(A.LUsolve(b))


def _derivative(state: sp.Expr, t: sp.Symbol, k: int) -> sp.Expr:
    # `Derivative(x(t), (t, k))` is what `x.diff(t, k)` evaluates to, built
    # without sympy's differentiation machinery (a large part of the cost).
    return sp.Derivative(state, (t, k)) if k else state


def state_name(state: sp.Expr, order: int, variable: sp.Symbol) -> str:
    """`x`, `x_t`, `x_tt`, ...: the name of a state's `order`-th derivative."""
    return state.func.__name__ + ("_" + str(variable) * order if order else "")


def highest_orders(equations, states, variable) -> dict:
    """`{state: highest order of d/d variable}` over `equations`."""
    orders = dict.fromkeys(states, 0)
    for eq in equations:
        for d in eq.atoms(sp.Derivative):
            if d.expr in orders:
                n = sum(c for v, c in d.variable_count if v == variable)
                orders[d.expr] = max(orders[d.expr], n)
    return orders


def first_order_form(equations, states, t):
    """The first-order system `x, x', ..., x^(n-1)` of an ODE model.

    **Returns:**

    `(state_vector, state_names, orders, rhs)`: the entries of the first-order
    state (`x(t)`, `Derivative(x(t), t)`, ...), their names (`x`, `x_t`), each
    state's order, and the right-hand side of each entry.
    """
    orders = highest_orders(equations, states, t)
    for s, n in orders.items():
        if n == 0:
            raise ModelError(
                f"The state `{s}` is never differentiated with respect to `{t}`; "
                "every state needs a differential equation (algebraic states are "
                "not supported: substitute them out)."
            )
    for eq in equations:
        if not any(d.expr in orders for d in eq.atoms(sp.Derivative)):
            raise ModelError(
                f"The equation `{describe(eq)}` contains no derivative of a state; "
                f"it is not an ODE in the states {', '.join(map(str, states))}."
            )
    vector, names = [], []
    for s in states:
        for k in range(orders[s]):
            vector.append(_derivative(s, t, k))
            names.append(state_name(s, k, t))
    return tuple(vector), tuple(names), orders


def reduced_rhs(equations, states, orders, t) -> tuple[sp.Expr, ...]:
    """The right-hand side of each entry of the first-order state vector."""
    highest = [_derivative(s, t, orders[s]) for s in states]
    solved = solve_linear(equations, highest, "highest derivative(s)")
    rhs = []
    for s, sol in zip(states, solved, strict=True):
        rhs.extend(_derivative(s, t, k) for k in range(1, orders[s]))
        rhs.append(sol)
    return tuple(rhs)
