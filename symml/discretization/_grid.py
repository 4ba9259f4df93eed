"""Grid axes and the validation of a model and a grid for the method of lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .._errors import DiscretizeError
from ..dsl import Model, PDEModel
from ._stencil import KINDS


@dataclass(frozen=True)
class Axis:
    var: sp.Symbol
    kind: str
    lo: float
    hi: float
    n: int
    h: float
    coords: np.ndarray


def make_axis(var: sp.Symbol, kind: str, lo: float, hi: float, n: int) -> Axis:
    if kind == "periodic":
        h = (hi - lo) / n
        coords = lo + h * np.arange(n)
    elif kind == "dirichlet":
        h = (hi - lo) / (n + 1)
        coords = lo + h * np.arange(1, n + 1)
    else:
        h = (hi - lo) / (n - 1)
        coords = lo + h * np.arange(n)
    return Axis(var, kind, lo, hi, n, h, coords)


def as_symbol_map(mapping, what: str, allowed: tuple[sp.Symbol, ...]) -> dict:
    if not isinstance(mapping, Mapping):
        raise DiscretizeError(
            f"`{what}` must be a dict `{{variable: value}}`; got "
            f"{type(mapping).__name__}."
        )
    by_name = {str(v): v for v in allowed}
    out = {}
    for key, value in mapping.items():
        var = by_name.get(str(key)) if isinstance(key, str | sp.Symbol) else None
        if var is None or (isinstance(key, sp.Symbol) and key != var):
            raise DiscretizeError(
                f"`{what}` names `{key}`, which is not a spatial variable of the "
                f"model; the spatial variables are "
                f"{', '.join(f'`{v}`' for v in allowed)}."
            )
        out[var] = value
    return out


def check_model(model) -> None:
    if not isinstance(model, Model):
        raise DiscretizeError(
            f"`discretize` needs a symml `Model`; got {type(model).__name__}."
        )
    if not isinstance(model, PDEModel):
        raise DiscretizeError(
            f"`discretize` needs a PDE model with states (declared with "
            f"`symml.states(names, t, x, ...)` and `domain=`); this is "
            f"{model._kind}. "
            + (
                "Lower an ODE model with `symml.lower`."
                if model.states
                else "Fields are fitted by physics-informed networks, not "
                "discretised: declare states instead."
            )
        )


def check_boundary(model: Model, spatial) -> dict[sp.Symbol, str]:
    boundary = model.boundary or {}
    extra = [v for v in boundary if v not in spatial]
    if extra:
        raise DiscretizeError(
            f"`boundary=` names `{extra[0]}`, which is not a spatial variable of "
            f"the model ({', '.join(f'`{v}`' for v in spatial)})."
        )
    missing = [v for v in spatial if v not in boundary]
    if missing:
        raise DiscretizeError(
            f"The model gives no boundary kind for "
            f"{', '.join(f'`{v}`' for v in missing)}; pass `boundary=` to `Model` "
            f"({', '.join(map(repr, KINDS))}, or a dict per spatial variable)."
        )
    return dict(boundary)


def grid_sizes(grid, spatial, boundary) -> dict[sp.Symbol, int]:
    """`{spatial variable: number of unknowns}`, validated."""
    sizes = as_symbol_map(grid, "grid", spatial)
    missing = [v for v in spatial if v not in sizes]
    if missing:
        raise DiscretizeError(
            f"`grid` has no size for the spatial variable(s) "
            f"{', '.join(f'`{v}`' for v in missing)}; give one, e.g. "
            f"`grid={{{missing[0]}: 64}}`."
        )
    for v, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise DiscretizeError(
                f"`grid[{v}]` must be an integer number of grid points; got {size!r}."
            )
        least = 2 if boundary[v] == "neumann" else 1
        if size < least:
            raise DiscretizeError(
                f"`grid[{v}] = {size}` is too small; use at least {least} "
                "points (more for the stencils)."
            )
    return {v: int(n) for v, n in sizes.items()}
