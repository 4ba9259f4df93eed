"""Discovery from data: which regressions to run (one per state, or per
unknown output of a model with known terms), checked before any number is
computed."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import DiscoverError
from ..dsl import Data, Model, Trainable, UnknownOutput, states
from ._differentiation import AbstractDerivative, as_derivative
from ._weak import WeakForm


@dataclass(frozen=True)
class Problem:
    """One regression: a target and a term library, with how the result enters
    the model.

    `key` is what `Discovery.expressions` is keyed by (an unknown output, or
    the time derivative of a state); `terms` are the library terms in
    `placeholders` (which `to_user` maps to model expressions); each feature is
    `multiplier × term` and the target is `d(state)/dt − known`.
    """

    name: str
    key: sp.Expr
    table_key: object
    state: sp.Expr
    known: sp.Expr
    multiplier: sp.Expr
    placeholders: tuple
    terms: tuple
    to_user: dict


def _check_grid(grid, spatial_expected=None) -> tuple[list, list[np.ndarray]]:
    if grid is None:
        return [], []
    if not isinstance(grid, Mapping) or not grid:
        raise DiscoverError(
            f"`grid` must be a dict `{{x: coordinates}}` with one 1-D array per "
            f"spatial variable, in the order of the data's axes; got {grid!r}."
        )
    variables, coords = [], []
    for key, values in grid.items():
        var = sp.Symbol(key) if isinstance(key, str) else key
        if not isinstance(var, sp.Symbol):
            raise DiscoverError(
                f"The keys of `grid` must be sympy Symbols (the spatial variables) "
                f"or their names; got {key!r}."
            )
        c = np.asarray(values, dtype=float)
        if c.ndim != 1 or c.size < 5 or not np.all(np.isfinite(c)):
            raise DiscoverError(
                f"The coordinates of `{var}` in `grid` must be a finite 1-D array of "
                f"at least 5 points; got shape {c.shape}."
            )
        if not np.all(np.diff(c) > 0):
            raise DiscoverError(
                f"The coordinates of `{var}` in `grid` must be strictly increasing."
            )
        variables.append(var)
        coords.append(c)
    if spatial_expected is not None and {str(v) for v in variables} != {
        str(v) for v in spatial_expected
    }:
        raise DiscoverError(
            f"`grid` gives coordinates for {[str(v) for v in variables]}, but the "
            f"model's spatial variables are {[str(v) for v in spatial_expected]}; "
            "give one array per spatial variable."
        )
    return variables, coords


def _first_order_rhs(model: Model, t: sp.Symbol) -> dict:
    """`{state: rhs}` from equations of the form `d(state)/dt = rhs`."""
    out = {}
    for eq in model.equations:
        lhs = eq.lhs
        ok = (
            isinstance(lhs, sp.Derivative)
            and lhs.expr in model.states
            and lhs.variable_count == ((t, 1),)
        )
        if not ok:
            raise DiscoverError(
                f"Discovery from data needs each equation as `Eq(x.diff(t), rhs)`, "
                f"first order in time with the derivative alone on the left; got "
                f"`{eq.lhs} = {eq.rhs}`. Rewrite the model (introduce a state for "
                "each higher derivative)."
            )
        if lhs.expr in out:
            raise DiscoverError(
                f"The state `{lhs.expr}` has two equations; give each state one."
            )
        out[lhs.expr] = eq.rhs
    return out


def _model_problems(model: Model, library) -> tuple[list[Problem], sp.Symbol, list]:
    kind = getattr(model, "kind", None)
    if kind == "pinn" or not model.states:
        raise DiscoverError(
            "Discovery from data needs a model with states (`symml.states`); the "
            "model has fields, which are trained by a physics-informed fit. Fit it "
            "and pass the result, or declare states."
        )
    t = model.independent
    spatial = list(getattr(model, "spatial", ()) or ())
    trainable = [p for p, v in model.parameters.items() if isinstance(v, Trainable)]
    if trainable:
        raise DiscoverError(
            f"The model has trainable parameters {[str(p) for p in trainable]}; "
            "discovery from data fixes the known terms. Give them values, or leave "
            "their terms to the library."
        )
    values = {p: v for p, v in model.parameters.items()}
    rhs = {s: e.xreplace(values) for s, e in _first_order_rhs(model, t).items()}
    problems, seen = [], {}
    for s, e in rhs.items():
        outputs = [f for f in e.atoms(AppliedUndef) if isinstance(f, UnknownOutput)]
        for d in e.atoms(sp.Derivative):
            if any(isinstance(f, UnknownOutput) for f in d.atoms(AppliedUndef)):
                raise DiscoverError(
                    f"The equation of `{s}` differentiates the unknown term in `{d}`;"
                    " discovery from data needs unknown terms outside derivatives. "
                    "Fit the model and discover from the fit result instead."
                )
        if len(outputs) > 1:
            raise DiscoverError(
                f"The equation of `{s}` contains {len(outputs)} unknown terms "
                f"({', '.join(map(str, outputs))}); discovery from data needs at "
                "most one unknown output per equation."
            )
        if not outputs:
            continue
        (output,) = outputs
        if output.func in seen:
            raise DiscoverError(
                f"The unknown term `{output}` appears in the equations of both "
                f"`{seen[output.func]}` and `{s}`; discovery from data needs each "
                "unknown output in one equation."
            )
        seen[output.func] = s
        z = sp.Dummy("z")
        replaced = e.xreplace({output: z})
        multiplier = sp.simplify(replaced.diff(z))
        if z in multiplier.free_symbols or multiplier == 0:
            raise DiscoverError(
                f"The equation of `{s}` is not linear in the unknown term `{output}`"
                f" (`{e}`); discovery from data needs `known + c · {output}`."
            )
        known = replaced.subs(z, 0)
        unknown = output.func.unknown
        placeholders = tuple(sp.Dummy(f"z{i}") for i in range(len(unknown.inputs)))
        terms = tuple(library.terms(list(placeholders)))
        problems.append(
            Problem(
                name=str(output),
                key=output,
                table_key=output.func,
                state=s,
                known=known,
                multiplier=multiplier,
                placeholders=placeholders,
                terms=terms,
                to_user=dict(zip(placeholders, output.args, strict=True)),
            )
        )
    if not problems:
        raise DiscoverError(
            f"The model has no unknown terms, so there is nothing to discover: "
            f"{model!r}. Declare the missing physics with `symml.Unknown`, or "
            "leave out `model=` to discover every equation."
        )
    return problems, t, spatial


def _data_problems(names, library, spatial) -> tuple[list[Problem], sp.Symbol, list]:
    t = sp.Symbol("t")
    if any(str(v) == "t" for v in spatial):
        raise DiscoverError(
            "A spatial variable of `grid` is named `t`, which is the time variable; "
            "rename it."
        )
    fields = states(list(names), t, *spatial)
    terms = tuple(library.terms(list(fields)))
    problems = [
        Problem(
            name=f"d{s.func.__name__}/d{t}",
            key=s.diff(t),
            table_key=s,
            state=s,
            known=sp.Integer(0),
            multiplier=sp.Integer(1),
            placeholders=(),
            terms=terms,
            to_user={},
        )
        for s in fields
    ]
    return problems, t, spatial


def check_derivative(derivative) -> AbstractDerivative | WeakForm:
    if derivative is None:
        return WeakForm()
    if isinstance(derivative, WeakForm):
        return derivative
    return as_derivative(derivative)


def prepare(
    data,
    *,
    library,
    model: Model | None,
    grid,
    boundary,
):
    """Datasets, problems, variables and grid of a discovery from data."""
    if isinstance(data, Data):
        datasets = [data]
    elif (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(d, Data) for d in data)
    ):
        datasets = list(data)
    else:
        raise DiscoverError(
            f"Discovery from data takes a `symml.Data` or a list of them (one per "
            f"trajectory); got {type(data).__name__}. To discover from a fit, pass "
            "the fit result."
        )
    if model is not None:
        if not isinstance(model, Model):
            raise DiscoverError(
                f"`model` must be a `symml.Model` with the known terms and "
                f"`symml.Unknown` terms to discover; got {model!r} of type "
                f"{type(model).__name__}."
            )
        problems, t, spatial_model = _model_problems(model, library)
        spatial, coords = _check_grid(grid, spatial_model if spatial_model else None)
        if spatial_model and grid is None:
            raise DiscoverError(
                f"The model is a PDE in {', '.join(map(str, spatial_model))}; pass "
                "the coordinates of the data's grid as `grid={x: xs}`."
            )
        # The data's axes follow `grid`'s order; the model's variables must match.
        spatial = [next(v for v in spatial_model if str(v) == str(g)) for g in spatial]
        model_boundary = model.boundary or {}
        periodic = [model_boundary.get(v) == "periodic" for v in spatial]
    else:
        spatial, coords = _check_grid(grid)
        names = datasets[0].names
        for d in datasets[1:]:
            if d.names != names:
                raise DiscoverError(
                    f"All trajectories must observe the same states; the first "
                    f"observes {list(names)}, another {list(d.names)}."
                )
        problems, t, spatial = _data_problems(names, library, spatial)
        periodic = _periodic(boundary, spatial)
    for p in problems:
        if not p.terms:
            raise DiscoverError(f"The library {library!r} produced no candidate terms.")
    return datasets, problems, t, spatial, coords, periodic


def _periodic(boundary, spatial) -> list[bool]:
    if boundary is None:
        return [False] * len(spatial)
    if not spatial:
        raise DiscoverError(
            "`boundary` applies to data on a spatial grid; pass `grid=` as well, or "
            "leave `boundary` out for ODE data."
        )
    if isinstance(boundary, str):
        boundary = {v: boundary for v in spatial}
    if not isinstance(boundary, Mapping):
        raise DiscoverError(
            f"`boundary` must be 'periodic', 'dirichlet', 'neumann' or a dict per "
            f"spatial variable; got {boundary!r}."
        )
    out = []
    for v in spatial:
        kind = next((b for k, b in boundary.items() if str(k) == str(v)), None)
        if kind not in (None, "periodic", "dirichlet", "neumann"):
            raise DiscoverError(
                f"Boundary {kind!r} for `{v}` is not supported; use 'periodic', "
                "'dirichlet' or 'neumann'."
            )
        out.append(kind == "periodic")
    return out


def domain_of(spatial, coords, periodic) -> dict:
    out = {}
    for v, c, wrap in zip(spatial, coords, periodic, strict=True):
        upper = c[-1] + (c[-1] - c[-2]) if wrap else c[-1]
        out[v] = (float(c[0]), float(upper))
    return out
