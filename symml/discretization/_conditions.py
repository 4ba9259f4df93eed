"""Boundary and initial conditions of a PDE model on a grid."""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import DiscretizeError
from ..dsl import PDEModel, StateFunction
from ._operators import counts


def boundary_target(lhs, variables, positions):
    """`(state, variable, point, is_flux)` if `lhs` is a boundary value
    `u(t, lo, y)` or flux `Subs(Derivative(u, x), x, lo)`, else `None`."""
    if isinstance(lhs, StateFunction):
        differ = [(v, a) for v, a in zip(variables, lhs.args, strict=True) if a != v]
        if len(differ) == 1 and differ[0][0] in positions and differ[0][1].is_number:
            v, point = differ[0]
            return lhs.func.__name__, v, float(point), False
        return None
    if isinstance(lhs, sp.Subs):
        inner, subs_vars, points = lhs.args
        if (
            isinstance(inner, sp.Derivative)
            and isinstance(inner.expr, StateFunction)
            and len(subs_vars) == 1
            and subs_vars[0] in positions
            and points[0].is_number
            and counts(inner) == {subs_vars[0]: 1}
        ):
            return inner.expr.func.__name__, subs_vars[0], float(points[0]), True
    return None


def compile_conditions(model: PDEModel, axes, compiler) -> dict:
    """`{(state, axis, side): evaluator}` of the given boundary values
    (Dirichlet) or fluxes du/dx (Neumann); missing ones are zero."""
    t = model.independent
    allowed = {t, *model.parameters}
    variables = tuple(model.variables)
    positions = {v: variables.index(v) for v in model.spatial}
    out = {}
    for cond in model.conditions:
        found = boundary_target(cond.lhs, variables, positions)
        value = cond.rhs
        if found is None:
            found = boundary_target(cond.rhs, variables, positions)
            value = cond.lhs
        if found is None:
            continue  # an initial condition
        name, var, point, flux = found
        a = model.spatial.index(var)
        axis = axes[a]
        desc = f"`{cond.lhs} = {cond.rhs}`"
        if point == axis.lo:
            side = 0
        elif point == axis.hi:
            side = 1
        else:
            raise DiscretizeError(
                f"The condition {desc} is at `{var} = {point}`, which is not an "
                f"end of the domain ({axis.lo}, {axis.hi}) of `{var}`; boundary "
                "conditions must sit on the domain's ends."
            )
        expected = "neumann" if flux else "dirichlet"
        if axis.kind != expected:
            raise DiscretizeError(
                f"The condition {desc} is a {expected} condition, but the "
                f"boundary of `{var}` is {axis.kind!r}; set "
                f"`boundary={{{var}: {expected!r}}}` or remove the condition."
            )
        bad = value.free_symbols - allowed
        if bad or value.atoms(AppliedUndef) or value.atoms(sp.Derivative):
            raise DiscretizeError(
                f"The boundary value in {desc} must be a constant or an "
                f"expression of time `{t}` and parameters; it contains "
                f"{', '.join(sorted(map(str, bad))) or 'a function'}."
            )
        if (name, a, side) in out:
            raise DiscretizeError(
                f"The boundary value of `{name}` at `{var} = {point}` is given "
                "twice in `conditions=`; give it once."
            )
        out[name, a, side] = compiler(value)
    return out


def initial_conditions(model: PDEModel) -> dict[str, sp.Expr]:
    """`{state: expression}` from conditions `Eq(u.subs(t, t0), expr)`."""
    t = model.independent
    out = {}
    for cond in model.conditions:
        f = cond.lhs
        if isinstance(f, StateFunction):
            args = dict(zip(model.variables, f.args, strict=True))
            if args[t].is_number and all(args[v] == v for v in model.spatial):
                out[f.func.__name__] = cond.rhs
    return out
