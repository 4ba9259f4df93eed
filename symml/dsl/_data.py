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
        y = np.asarray(y, dtype=float)
        names = [state_key(n) for n in names]
        if y.ndim != 2 or y.shape[1] != len(names):
            raise DataError(
                f"`y` has shape {y.shape}; expected (T, {len(names)}), one column "
                "per name."
            )
        return cls(t, {n: y[:, i] for i, n in enumerate(names)})

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
