"""Which derivatives a right-hand side takes, the closures they need, and the
exact Jacobian pattern of the discretised system."""

from __future__ import annotations

import scipy.sparse as ssp
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import DiscretizeError
from ..derivatives._fd import stencil_half_width as half_width
from ..dsl import PDEModel, StateFunction, UnknownOutput
from ._stencil import Closure, closure, operator_pattern


def counts(d: sp.Derivative) -> dict[sp.Symbol, int]:
    out: dict[sp.Symbol, int] = {}
    for v, c in d.variable_count:
        out[v] = out.get(v, 0) + int(c)
    return out


def state_leaves(expr: sp.Basic):
    """The states and derivatives of states `expr` depends on (a derivative's
    own state is not a separate dependency: an odd stencil skips its centre)."""
    is_state_derivative = isinstance(expr, sp.Derivative) and isinstance(
        expr.expr, StateFunction
    )
    if is_state_derivative or isinstance(expr, StateFunction):
        yield expr
    else:
        for a in expr.args:
            yield from state_leaves(a)


def scan_derivatives(exprs, model: PDEModel) -> dict[tuple[str, sp.Symbol], int]:
    """Check every derivative and state application in the right-hand side
    and return the highest derivative order per (state, axis)."""
    t, spatial = model.independent, set(model.spatial)
    variables = tuple(model.variables)
    highest: dict[tuple[str, sp.Symbol], int] = {}
    for i, expr in enumerate(exprs):
        target = f"`{model.state_names[i]}_{t}`"
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.Derivative):
                f = node.expr
                if isinstance(f, UnknownOutput) or not isinstance(f, StateFunction):
                    raise DiscretizeError(
                        f"The equation for {target} contains `{node}`, a "
                        "derivative of an unknown network term; the method of "
                        "lines evaluates network terms pointwise on the grid "
                        "and cannot differentiate them. Move the derivative "
                        "onto states (e.g. give the network the state's "
                        "derivative as an input)."
                    )
                by_variable = counts(node)
                if t in by_variable:
                    raise DiscretizeError(
                        f"The equation for {target} contains the time "
                        f"derivative `{node}` on its right-hand side; the "
                        "method of lines needs each state's time derivative "
                        "given by spatial terms only. Rewrite the model "
                        "without mixed time-space derivatives."
                    )
                for v, c in by_variable.items():
                    if v not in spatial:
                        raise DiscretizeError(
                            f"`{node}` differentiates with respect to `{v}`, "
                            "which is not a spatial variable of the model."
                        )
                    key = (f.func.__name__, v)
                    highest[key] = max(highest.get(key, 0), c)
            elif isinstance(node, StateFunction) and node.args != variables:
                raise DiscretizeError(
                    f"The equation for {target} evaluates the state `{node}` "
                    "at a point; the method of lines needs states as functions "
                    f"of {variables} on the right-hand side (boundary values "
                    "belong in `conditions=`)."
                )
            elif isinstance(node, AppliedUndef) and not isinstance(
                node, StateFunction | UnknownOutput
            ):
                raise DiscretizeError(
                    f"The equation for {target} contains `{node}`, which the "
                    "method of lines cannot discretise."
                )
    return highest


def make_closures(
    highest, state_names, axes, order: int
) -> dict[tuple[str, int], Closure]:
    out = {}
    for name in state_names:
        for a, axis in enumerate(axes):
            m = highest.get((name, axis.var), 0)
            width = half_width(m, order)
            nodes = order + max(m, 1) - 1
            if axis.kind == "periodic":
                need, what = 2 * width + 1, "a periodic axis"
            else:
                need, what = nodes, f"a {axis.kind} boundary"
            if m and axis.n < need:
                raise DiscretizeError(
                    f"`grid[{axis.var}] = {axis.n}` is too small for the "
                    f"order-{order} stencil of the {m}. derivative of "
                    f"`{name}` along `{axis.var}` on {what}; use at least "
                    f"{need} points (or a lower `order=`)."
                )
            out[name, a] = closure(axis.kind, width, nodes, axis.h)
    return out


def jacobian_pattern(
    model: PDEModel, axes, closures, order: int, size: int
) -> ssp.csr_matrix:
    """The `(n, n)` boolean pattern of the discretised right-hand side, built
    from the stencils each state's right-hand side applies."""
    ops: dict[tuple, ssp.csr_matrix] = {}
    k = len(model.state_names)
    blocks = [[None] * k for _ in range(k)]
    for i, expr in enumerate(model.rhs):
        for leaf in set(state_leaves(expr.doit(deep=True))):
            if isinstance(leaf, sp.Derivative):
                name, by_variable = leaf.expr.func.__name__, counts(leaf)
            else:
                name, by_variable = leaf.func.__name__, {}
            orders = tuple(by_variable.get(v, 0) for v in model.spatial)
            key = (name, orders)
            if key not in ops:
                op = ssp.identity(1, format="csr")
                for a, axis in enumerate(axes):
                    c = closures[name, a]
                    op1 = operator_pattern(orders[a], order, c, axis.n)
                    op = ssp.kron(op, op1, format="csr")
                ops[key] = op != 0
            j = model.state_names.index(name)
            prev = blocks[i][j]
            blocks[i][j] = ops[key] if prev is None else (prev + ops[key]) != 0
    for i in range(k):
        for j in range(k):
            if blocks[i][j] is None:
                blocks[i][j] = ssp.csr_matrix((size, size), dtype=bool)
    out = ssp.bmat(blocks, format="csr").astype(bool)
    out.sort_indices()
    return out
