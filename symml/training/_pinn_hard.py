"""Conditions imposed by construction (hard constraints).

A field `u` is represented as `u = G + D · N(embed(x))`: `embed` puts each
periodic variable on a circle, so `N` and all its derivatives are periodic in
it; `D` vanishes on the faces of the box that carry Dirichlet data and `G`
takes those data there (transfinite interpolation, exact when the data agree
at the corners). Which conditions this satisfies is not assumed but proved:
each condition, with `u` replaced by the representation and `N` an arbitrary
function, must simplify to zero in sympy. A condition that does not (an
initial condition whose derivative is not periodic, data that disagree at a
corner) stays a penalty in the loss.
"""

from dataclasses import dataclass

import jax.numpy as jnp
import jax.random as jr
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import FitError
from ..dsl import FieldFunction, FieldModel, UnknownOutput
from ..lowering import Compiler, Env
from ..nets import Constrained, make_network


@dataclass(frozen=True)
class Plan:
    """How one field is represented.

    - `periodic`: `((index among the field's variables, lower, period), ...)`.
    - `lift`, `distance`: sympy expressions of the field's variables, or None.
    """

    field: sp.Expr
    periodic: tuple
    lift: sp.Expr | None
    distance: sp.Expr | None


def _involves(expr, f) -> bool:
    return any(
        isinstance(a, FieldFunction) and a.func == f.func
        for a in expr.atoms(AppliedUndef)
    )


def _only_field(expr, f) -> bool:
    atoms = expr.atoms(AppliedUndef)
    return all(
        isinstance(a, FieldFunction) and a.func == f.func
        for a in atoms
        if isinstance(a, FieldFunction | UnknownOutput)
    ) and not any(isinstance(a, UnknownOutput) for a in atoms)


def _representation(f, periodic, lift, distance):
    args = f.args
    inner = []
    periodic_vars = {args[i] for i, _, _ in periodic}
    inner.extend(a for a in args if a not in periodic_vars)
    for i, lower, period in periodic:
        angle = 2 * sp.pi / sp.nsimplify(period) * (args[i] - sp.nsimplify(lower))
        inner.extend([sp.cos(angle), sp.sin(angle)])
    n = sp.Function(f"N_{f.func.__name__}")(*inner)
    if lift is None:
        return n
    return lift + distance * n


def _holds(expr, f, representation) -> bool:
    args = f.args

    def substitute(*values):
        return representation.xreplace(dict(zip(args, values, strict=True)))

    try:
        value = expr.replace(f.func, substitute).doit()
        return sp.simplify(value) == 0
    except (TypeError, ValueError, NotImplementedError, AttributeError):
        return False


def _face(expr, f, domain):
    """`(variable, end, data)` if `expr = 0` reads `u(..., v = end, ...) = data`
    on a face of the box with data free of fields and of `v`; else None."""
    atoms = [
        a
        for a in expr.atoms(AppliedUndef)
        if isinstance(a, FieldFunction) and a.func == f.func
    ]
    if len(atoms) != 1 or expr.atoms(sp.Subs, sp.Derivative):
        return None
    (atom,) = atoms
    moved = [(v, a) for v, a in zip(f.args, atom.args, strict=True) if a != v]
    if len(moved) != 1 or not moved[0][1].is_number:
        return None
    v, at = moved[0]
    if v not in domain:
        return None
    lo, hi = domain[v]
    end = float(at)
    if end not in (lo, hi):
        return None
    coefficient = sp.diff(expr, atom)
    if not coefficient.is_number or coefficient == 0:
        return None
    rest = sp.expand(expr - coefficient * atom)
    if rest.atoms(AppliedUndef) or v in rest.free_symbols:
        return None
    return v, end, -rest / coefficient


def _lift_and_distance(f, domain, faces):
    """`G` by transfinite interpolation of the face data and `D` vanishing on
    the faces; `faces = {variable: {end: data}}`."""
    if not faces:
        return None, None
    g = sp.Integer(0)
    d = sp.Integer(1)
    for v, data in faces.items():
        lo, hi = (sp.nsimplify(b) for b in domain[v])
        s = (v - lo) / (hi - lo)
        update = sp.Integer(0)
        ends = {sp.nsimplify(e): value for e, value in data.items()}
        for end, value in ends.items():
            blend = 1 if len(ends) == 1 else (1 - s if end == lo else s)
            update += blend * (value - g.xreplace({v: end}))
        g = g + update
        if len(ends) == 2:
            d *= 4 * s * (1 - s)
        else:
            d *= s if next(iter(ends)) == lo else 1 - s
    return sp.simplify(g), d


def plan_field(model: FieldModel, f, allowed: set[int]) -> tuple[Plan | None, set[int]]:
    """The representation of field `f` that imposes the most of the conditions
    `allowed` (indices), and the indices of every condition it satisfies."""
    conditions = {
        i: c.lhs - c.rhs
        for i, c in enumerate(model.conditions)
        if _involves(c.lhs - c.rhs, f) and _only_field(c.lhs - c.rhs, f)
    }
    candidates = {i: e for i, e in conditions.items() if i in allowed}
    if not candidates:
        return None, set()
    domain = model.domain
    periodic = []
    for k, v in enumerate(f.args):
        if v not in domain:
            continue
        lo, hi = domain[v]
        rep = _representation(f, ((k, lo, hi - lo),), None, None)
        if any(
            {lo, hi} <= _ends(e, f, k) and _holds(e, f, rep)
            for e in candidates.values()
        ):
            periodic.append((k, lo, hi - lo))
    periodic = tuple(periodic)
    periodic_vars = {f.args[k] for k, _, _ in periodic}

    def satisfied(faces):
        lift, distance = _lift_and_distance(f, domain, faces)
        rep = _representation(f, periodic, lift, distance)
        return {i for i, e in conditions.items() if _holds(e, f, rep)}, lift, distance

    faces: dict = {}
    for e in candidates.values():
        face = _face(e, f, domain)
        if face is None or face[0] in periodic_vars:
            continue
        v, end, data = face
        faces.setdefault(v, {})[end] = data
    chosen: dict = {}
    held, lift, distance = satisfied(chosen)
    for v, data in faces.items():
        options = [data] + ([{e: g} for e, g in data.items()] if len(data) > 1 else [])
        for option in options:
            trial = {**chosen, v: option}
            trial_held, trial_lift, trial_distance = satisfied(trial)
            if held <= trial_held and len(trial_held) > len(held):
                chosen, held = trial, trial_held
                lift, distance = trial_lift, trial_distance
                break
    if not periodic and not chosen:
        return None, set()
    return Plan(f, periodic, lift, distance), held


def _ends(expr, f, k: int) -> set[float]:
    """The numbers at which `expr` evaluates field `f` in its `k`-th variable
    (in its arguments or through `Subs`)."""
    v = f.args[k]
    ends = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Subs):
            for var, at in zip(node.variables, node.point, strict=True):
                if var == v and at.is_number:
                    ends.add(float(at))
        elif (
            isinstance(node, FieldFunction)
            and node.func == f.func
            and node.args[k].is_number
        ):
            ends.add(float(node.args[k]))
    return ends


def plan(model: FieldModel, request) -> tuple[dict[str, Plan], tuple[int, ...]]:
    """Plans per field name and the indices of the conditions imposed.

    `request` is True (every condition the geometry allows) or a tuple of
    conditions or indices, each of which must be imposed."""
    n = len(model.conditions)
    if request is True:
        allowed = set(range(n))
    else:
        allowed = set()
        for c in request:
            if isinstance(c, sp.Equality):
                matches = [i for i, m in enumerate(model.conditions) if m == c]
                if not matches:
                    raise FitError(
                        f"`hard_conditions` lists `{c}`, which is no condition of "
                        "the model; list the model's conditions (or their indices)."
                    )
                allowed.update(matches)
            else:
                if not 0 <= int(c) < n:
                    raise FitError(
                        f"`hard_conditions` lists the index {c}, but the model has "
                        f"{n} condition(s), numbered from 0."
                    )
                allowed.add(int(c))
    plans, imposed = {}, set()
    for f in model.fields:
        p, held = plan_field(model, f, allowed)
        if p is not None:
            plans[f.func.__name__] = p
            imposed |= held
    if request is not True:
        missing = sorted(allowed - imposed)
        if missing:
            text = "; ".join(f"`{model.conditions[i]}`" for i in missing)
            raise FitError(
                f"`hard_conditions`: cannot impose {text} by construction. Exact "
                "imposition covers values on faces of the domain's box (Dirichlet "
                "data that agree where faces meet) and periodic pairs; leave these "
                "as penalties (drop them from `hard_conditions`)."
            )
    return plans, tuple(sorted(imposed))


def _compile_point_function(expr, variables, constants, dtype):
    compiler = Compiler(bound=variables, constants=constants)
    evaluate = compiler(sp.sympify(expr))

    def fn(x):
        value = evaluate(Env({v: x[i] for i, v in enumerate(variables)}, {}, {}))
        return jnp.broadcast_to(jnp.asarray(value, dtype), (1,))

    return fn


def build_network(model: FieldModel, p: Plan, key, dtype) -> Constrained:
    """The constrained network of one field, freshly initialised."""
    f = p.field
    spec = f.func.spec
    args = f.args
    periodic_idx = {k for k, _, _ in p.periodic}
    lower, upper = [], []
    for k, v in enumerate(args):
        if k in periodic_idx:
            continue
        lo, hi = model.domain.get(v, (-1.0, 1.0))
        lower.append(float(lo))
        upper.append(float(hi))
    lower += [-1.0, -1.0] * len(p.periodic)
    upper += [1.0, 1.0] * len(p.periodic)
    inner = make_network(
        len(args) + len(p.periodic),
        1,
        spec.hidden,
        spec.activation,
        key=key,
        dtype=dtype,
        in_range=(lower, upper),
        network=spec.network,
    )
    lift = distance = None
    if p.lift is not None:
        constants = model.fixed_parameters
        lift = _compile_point_function(p.lift, args, constants, dtype)
        distance = _compile_point_function(p.distance, args, constants, dtype)
    return Constrained(
        inner,
        tuple((int(k), float(lo), float(per)) for k, lo, per in p.periodic),
        lift,
        distance,
        len(args),
    )


def constrained_params(model: FieldModel, plans: dict, params, seed: int, dtype):
    """`params` with the networks of planned fields replaced by constrained
    ones (each seeded from the fit's seed and the field's position)."""
    networks = dict(params.networks)
    for i, f in enumerate(model.fields):
        name = f.func.__name__
        if name in plans:
            key = jr.fold_in(jr.PRNGKey(seed), 7919 + i)
            networks[name] = build_network(model, plans[name], key, dtype)
    return type(params)(params.values, networks)
