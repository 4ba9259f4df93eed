"""Observations of a model's states."""

from collections.abc import Mapping

import numpy as np
import sympy as sp

from .._errors import DataError


def state_key(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, sp.Basic):
        func = getattr(key, "func", None)
        if isinstance(key, sp.Derivative) and isinstance(
            key.expr, sp.core.function.AppliedUndef
        ):
            t = key.variables
            return key.expr.func.__name__ + "_" + "".join(map(str, t))
        if isinstance(key, sp.core.function.AppliedUndef):
            return func.__name__
        if isinstance(key, sp.Symbol):
            return key.name
    raise DataError(
        f"Observations must be keyed by state (e.g. `x` from `symml.states`) or by "
        f"state name; got {key!r}."
    )


def _real_array(values, what: str) -> np.ndarray:
    """`values` as a float array, or a `DataError` for ragged, non-numeric or
    complex input (numpy would drop an imaginary part silently)."""
    try:
        array = np.asarray(values)
    except ValueError:
        raise DataError(
            f"{what} are ragged (rows of different lengths); give a rectangular array."
        ) from None
    if array.dtype == object:
        raise DataError(
            f"{what} are ragged or hold non-numbers; give a rectangular array of "
            "real numbers."
        )
    if np.iscomplexobj(array):
        raise DataError(
            f"{what} are complex; symml fits real-valued models. Split real and "
            "imaginary parts into two states."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{what} hold values of type {array.dtype}; give real numbers.")
    return array.astype(float)


class Data:
    """Observations of some or all states of one trajectory.

    **Arguments:**

    - `t`: the observation times, strictly increasing, shape `(T,)`.
    - `values`: `{state: values}` with values of shape `(T,)` for a state of an
      ODE, or `(T, *grid)` for a field of a discretised PDE; keys are states
      (`x` from [`states`][symml.states]) or their names. States that were not
      observed are simply left out.

    Values must be finite: drop or interpolate missing observations before
    building `Data`.
    """

    def __init__(self, t, values: Mapping):
        t = _real_array(t, "`t`")
        if t.ndim != 1 or t.size < 2:
            raise DataError(
                f"`t` must be a 1-D array of at least two times; got shape {t.shape}."
            )
        if not np.all(np.isfinite(t)):
            raise DataError("`t` contains non-finite times; every time must be finite.")
        if not np.all(np.diff(t) > 0):
            i = int(np.argmin(np.diff(t) > 0))
            raise DataError(
                f"`t` must be strictly increasing; t[{i}] = {t[i]} is followed by "
                f"t[{i + 1}] = {t[i + 1]}. Sort the observations by time."
            )
        if not isinstance(values, Mapping) or not values:
            raise DataError(
                "`values` must be a non-empty mapping `{state: observations}`."
            )
        out = {}
        for key, v in values.items():
            name = state_key(key)
            if name in out:
                raise DataError(f"The state `{name}` is observed twice in `values`.")
            v = _real_array(v, f"The observations of `{name}`")
            if v.ndim == 0 or v.shape[0] != t.size:
                raise DataError(
                    f"The observations of `{name}` have shape {v.shape}; expected "
                    f"({t.size},) for a state of an ODE, or ({t.size}, *grid) for a "
                    "field on a grid: one entry per time in `t`."
                )
            bad = ~np.isfinite(v)
            if bad.any():
                first = np.argwhere(bad)[0][0]
                raise DataError(
                    f"The observations of `{name}` contain {int(bad.sum())} non-finite"
                    f" value(s) (first at t = {t[first]}); remove them."
                )
            out[name] = v
        self.t = t
        self.values = out

    @classmethod
    def from_array(cls, t, y, names) -> "Data":
        """Build `Data` from an array `y` of shape `(T, len(names))`."""
        y = _real_array(y, "`y`")
        names = [state_key(n) for n in names]
        if y.ndim != 2 or y.shape[1] != len(names):
            raise DataError(
                f"`y` has shape {y.shape}; expected (T, {len(names)}), one column "
                "per name."
            )
        return cls(t, {n: y[:, i] for i, n in enumerate(names)})

    @classmethod
    def points(cls, coordinates: Mapping, values: Mapping, *, sigma=None):
        """Observations at scattered points of a field model's domain (a
        point cloud): see [`PointData`][symml.PointData].

        `Data.points({t: ts, x: xs}, {u: us})` observes the field `u` at the
        points `(ts[i], xs[i])`.
        """
        return PointData(coordinates, values, sigma=sigma)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def __repr__(self) -> str:
        return (
            f"Data(t=[{self.t[0]:g}..{self.t[-1]:g}] ({self.t.size} times), "
            f"observed={list(self.values)})"
        )


def as_datasets(data) -> list[Data]:
    if isinstance(data, Data):
        return [data]
    if (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(d, Data) for d in data)
    ):
        return list(data)
    raise DataError(
        "`data` must be a `symml.Data` or a list of them (one per trajectory); got "
        f"{type(data).__name__}."
    )


# -- point clouds -------------------------------------------------------------


def _point_key(key, what: str):
    """A coordinate or observation key: a sympy expression, or a name."""
    if isinstance(key, str):
        if not key.isidentifier():
            raise DataError(
                f"{what} are keyed by sympy expressions or by names; got the string "
                f"{key!r}, which is no name. Use the symbol or field itself."
            )
        return key
    if isinstance(key, sp.Expr):
        return key
    raise DataError(
        f"{what} are keyed by sympy expressions (a variable `t`, a field `u`, an "
        f"expression such as `u + v` or `u.diff(x)`) or by names; got {key!r}."
    )


def _points_array(value, what: str) -> np.ndarray:
    array = _real_array(value, what)
    if array.ndim > 1:
        raise DataError(
            f"{what} have shape {array.shape}; expected a 1-D array (one entry per "
            "point) or a single number for every point."
        )
    if not np.all(np.isfinite(array)):
        bad = ~np.isfinite(np.atleast_1d(array))
        raise DataError(
            f"{what} contain {int(bad.sum())} non-finite value(s) (first at point "
            f"{int(np.argmax(bad))}); remove those points."
        )
    return array


class PointData:
    """Observations at scattered points of a field model's domain: values of
    fields, or of expressions of them (`u + v`, a flux `u.diff(x)` on a
    boundary), for a physics-informed fit (`symml.fit(field_model, data)`).
    Build it with `Data.points(...)` or directly.

    **Arguments:**

    - `coordinates`: `{variable: values}`, one entry per independent variable
      of the model (`{t: ts, x: xs}`); each a 1-D array with one entry per
      point, or a number shared by every point (`{t: ts, x: 1.0}` on the face
      `x = 1`).
    - `values`: `{field or expression: observations}`, each a 1-D array with
      one entry per point (or a number). Keys are fields (`u`), sympy
      expressions of fields, variables and parameters, or field names.
    - `sigma`: the observations' noise standard deviations: a number for all,
      or `{key: number or 1-D array}` per observed key. An observation's weight
      is `1/σ²` relative to the other observations of its key; without
      `sigma` every observation of a key weighs the same.

    Every array must be finite; arrays and numbers broadcast to one length.
    Which variables and fields the keys name is checked against the model when
    fitting.

    **Attributes:** `coordinates` (`{key: (n,) array}`), `values` (`{key: (n,)
    array}`), `sigma` (`{key: (n,) array}`, empty without noise levels), `n`
    (the number of points).
    """

    def __init__(self, coordinates: Mapping, values: Mapping, *, sigma=None):
        for what, mapping in (("coordinates", coordinates), ("values", values)):
            if not isinstance(mapping, Mapping) or not mapping:
                raise DataError(
                    f"`{what}` must be a non-empty mapping; got {mapping!r}. Write "
                    "e.g. `Data.points({t: ts, x: xs}, {u: us})`."
                )
        coords = {}
        for key, value in coordinates.items():
            key = _point_key(key, "The coordinates")
            if not isinstance(key, str | sp.Symbol):
                raise DataError(
                    f"The coordinates are keyed by independent variables (Symbols);"
                    f" got `{key}`."
                )
            name = str(key)
            if name in coords:
                raise DataError(
                    f"The variable `{name}` is given twice in `coordinates`."
                )
            coords[name] = _points_array(value, f"The coordinates of `{name}`")
        observed = {}
        for key, value in values.items():
            key = _point_key(key, "The observations")
            if key in observed:
                raise DataError(f"`{key}` is observed twice in `values`.")
            observed[key] = _points_array(value, f"The observations of `{key}`")
        noise = {}
        if sigma is not None:
            if not isinstance(sigma, Mapping):
                sigma = dict.fromkeys(observed, sigma)
            for key, value in sigma.items():
                key = _point_key(key, "`sigma`")
                if key not in observed:
                    raise DataError(
                        f"`sigma` gives a noise level for `{key}`, which is not "
                        f"observed; the observed keys are "
                        f"{', '.join(f'`{k}`' for k in observed)}."
                    )
                array = _points_array(value, f"`sigma` of `{key}`")
                if np.any(array <= 0):
                    raise DataError(
                        f"`sigma` of `{key}` must be positive (a standard "
                        f"deviation); its smallest value is {float(np.min(array))}."
                    )
                noise[key] = array
        arrays = [*coords.values(), *observed.values(), *noise.values()]
        lengths = {a.shape[0] for a in arrays if a.ndim == 1}
        if len(lengths) > 1:
            shapes = ", ".join(
                f"`{k}`: {a.shape}"
                for k, a in [*coords.items(), *observed.items()]
                if a.ndim == 1
            )
            raise DataError(
                f"The arrays of a point cloud must have one length (one entry per "
                f"point); got {shapes}."
            )
        n = lengths.pop() if lengths else 1
        if n < 1:
            raise DataError("A point cloud needs at least one point; got none.")
        self.coordinates = {
            k: np.broadcast_to(v, (n,)).copy() for k, v in coords.items()
        }
        self.values = {k: np.broadcast_to(v, (n,)).copy() for k, v in observed.items()}
        self.sigma = {k: np.broadcast_to(v, (n,)).copy() for k, v in noise.items()}
        self.n = n

    def __repr__(self) -> str:
        return (
            f"PointData({self.n} points in ({', '.join(self.coordinates)}), "
            f"observed={[str(k) for k in self.values]})"
        )
