"""Observations in a physics-informed loss: point clouds checked against the
model and laid out as arrays."""

from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import DataError
from ..dsl import Data, FieldFunction, FieldModel, UnknownOutput
from ..dsl._data import PointData


@dataclass(frozen=True)
class Observations:
    """One data set laid out for the loss.

    - `keys`: the observed expressions (sympy), `labels` their names in terms.
    - `points`: `(n, d)`, one column per variable of the model, in order.
    - `targets`: `(k, n)`, one row per key.
    - `weights`: `(k, n)`: `w_i / Σ w / scale` per key, so a key's term is the
      weighted mean squared error over the scale of its values.
    """

    index: int
    keys: tuple
    labels: tuple[str, ...]
    points: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def term_names(self) -> list[str]:
        return [f"data {self.index}: {label}" for label in self.labels]


def as_point_clouds(data, model: FieldModel) -> list[PointData]:
    """`data` as a list of point clouds; grid `Data` of a model of one variable
    is a point cloud in that variable."""
    items = list(data) if isinstance(data, list | tuple) else [data]
    if not items:
        raise DataError(
            "`data` is an empty list; give `symml.Data.points(...)` (or a list of "
            "them), or leave `data` out to train on the residuals alone."
        )
    out = []
    for i, d in enumerate(items):
        if isinstance(d, PointData):
            out.append(d)
        elif isinstance(d, Data):
            if len(model.variables) != 1:
                names = ", ".join(map(str, model.variables))
                raise DataError(
                    f"Data set {i} is a `symml.Data` on times only, but the fields "
                    f"depend on {names}; give scattered observations with "
                    f"`symml.Data.points({{{names.split(', ')[0]}: ..., ...}}, "
                    "{u: values})`."
                )
            for name, v in d.values.items():
                if v.ndim != 1:
                    raise DataError(
                        f"Data set {i} observes `{name}` with shape {v.shape}; a "
                        f"field of one variable takes one value per time, shape "
                        f"({d.t.size},)."
                    )
            out.append(PointData({model.variables[0]: d.t}, dict(d.values)))
        else:
            raise DataError(
                f"`data` of a physics-informed fit must be `symml.Data.points(...)` "
                f"(observations at scattered points), a `symml.Data` for fields of "
                f"one variable, or a list of them; item {i} is "
                f"{type(d).__name__}."
            )
    return out


def _resolve(key, model: FieldModel, where: str) -> sp.Expr:
    fields = {f.func.__name__: f for f in model.fields}
    names = ", ".join(f"`{n}`" for n in fields)
    if isinstance(key, str):
        if key in fields:
            return fields[key]
        raise DataError(
            f"{where} observes `{key}`, which is not a field of the model; its "
            f"fields are {names}."
        )
    expr = sp.sympify(key)
    seen = False
    for a in expr.atoms(AppliedUndef):
        if isinstance(a, FieldFunction):
            f = fields.get(a.func.__name__)
            if f is None or f.func != a.func:
                raise DataError(
                    f"{where} observes `{key}`, which contains `{a}`, not a field of "
                    f"the model; its fields are {names}."
                )
            seen = True
        elif isinstance(a, UnknownOutput):
            if not any(a.unknown is u for u in model.unknowns):
                raise DataError(
                    f"{where} observes `{key}`, which contains `{a}`, an unknown "
                    "term that the model does not have."
                )
            seen = True
        else:
            raise DataError(
                f"{where} observes `{key}`, which contains `{a}`, not a field of the "
                f"model; its fields are {names}."
            )
    if not seen:
        raise DataError(
            f"{where} observes `{key}`, which contains no field; observe fields "
            "or expressions of them, e.g. `u`, `u + v` or `u.diff(x)`."
        )
    known = set(model.variables) | set(model.parameters)
    loose = expr.free_symbols - known
    if loose:
        raise DataError(
            f"{where} observes `{key}`, which contains "
            f"{', '.join(f'`{s}`' for s in sorted(loose, key=str))}: neither a "
            "variable nor a parameter of the model."
        )
    return expr.doit(deep=True)


def _label(key) -> str:
    """A field observed at the points is named by its name, anything else
    by its expression."""
    if isinstance(key, FieldFunction) and all(
        isinstance(a, sp.Symbol) for a in key.args
    ):
        return key.func.__name__
    return str(key)


def _scale(y: np.ndarray) -> float:
    # Each key's squared error is divided by the variance of its values, so
    # observables of different magnitudes weigh the same; a constant
    # observable (a zero flux) is measured in its own units.
    var = float(np.var(y))
    floor = 1e-3 * float(np.mean(y**2))
    scale = max(var, floor)
    return scale if scale > 1e-300 else 1.0


def layout(datasets: list[PointData], model: FieldModel) -> list[Observations]:
    """Check every data set against the model and lay it out."""
    variables = [str(v) for v in model.variables]
    out = []
    for i, d in enumerate(datasets):
        where = f"Data set {i}"
        extra = [k for k in d.coordinates if k not in variables]
        if extra:
            raise DataError(
                f"{where} has coordinates for {', '.join(f'`{k}`' for k in extra)},"
                f" which are not variables of the model; its variables are "
                f"{', '.join(variables)}."
            )
        missing = [v for v in variables if v not in d.coordinates]
        if missing:
            listed = ", ".join(f"`{k}`" for k in missing)
            raise DataError(
                f"{where} gives no coordinates for {listed};"
                " every observation needs a value of every variable of the model "
                "(a number for points on a face, e.g. `{x: 1.0}`)."
            )
        for v in model.variables:
            c = d.coordinates[str(v)]
            if v not in model.domain:
                raise DataError(
                    f"{where} is observed over `{v}`, which has no range: add it to "
                    f"the model's `domain=`."
                )
            lo, hi = model.domain[v]
            slack = 1e-9 * (hi - lo)
            outside = (c < lo - slack) | (c > hi + slack)
            if outside.any():
                j = int(np.argmax(outside))
                raise DataError(
                    f"{where} has {int(outside.sum())} point(s) outside the domain: "
                    f"`{v}` = {c[j]:g} at point {j}, but the domain of `{v}` is "
                    f"[{lo:g}, {hi:g}]. Drop those points or widen the `domain=`."
                )
        keys = tuple(_resolve(k, model, where) for k in d.values)
        labels = tuple(_label(k) for k in d.values)
        points = np.stack([d.coordinates[v] for v in variables], axis=1)
        targets = np.stack([d.values[k] for k in d.values])
        weights = np.empty_like(targets)
        for j, k in enumerate(d.values):
            w = 1.0 / d.sigma[k] ** 2 if k in d.sigma else np.ones(d.n)
            weights[j] = w / w.sum() / _scale(targets[j])
        out.append(Observations(i, keys, labels, points, targets, weights))
    return out
