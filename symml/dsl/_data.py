"""Observations of a model's states."""

from collections.abc import Mapping

import numpy as np
import sympy as sp

from .._errors import DataError


def _name(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, sp.Basic):
        func = getattr(key, "func", None)
        if isinstance(key, sp.core.function.AppliedUndef):
            return func.__name__
        if isinstance(key, sp.Symbol):
            return key.name
    raise DataError(
        f"Observations must be keyed by state (e.g. `x` from `symml.states`) or by "
        f"state name; got {key!r}."
    )


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
        t = np.asarray(t, dtype=float)
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
            name = _name(key)
            if name in out:
                raise DataError(f"The state `{name}` is observed twice in `values`.")
            v = np.asarray(v, dtype=float)
            if v.ndim == 0 or v.shape[0] != t.size:
                raise DataError(
                    f"The observations of `{name}` have shape {v.shape}; expected "
                    f"({t.size},) for a state of an ODE, or ({t.size}, *grid) for a "
                    "field on a grid: one entry per time in `t`."
                )
            bad = ~np.isfinite(v)
            if bad.any():
                raise DataError(
                    f"The observations of `{name}` contain {int(bad.sum())} non-finite"
                    f" value(s) (first at t = {t[np.argmax(bad)]}); remove them."
                )
            out[name] = v
        self.t = t
        self.values = out

    @classmethod
    def from_array(cls, t, y, names) -> "Data":
        """Build `Data` from an array `y` of shape `(T, len(names))`."""
        y = np.asarray(y, dtype=float)
        names = [_name(n) for n in names]
        if y.ndim != 2 or y.shape[1] != len(names):
            raise DataError(
                f"`y` has shape {y.shape}; expected (T, {len(names)}), one column "
                "per name."
            )
        return cls(t, {n: y[:, i] for i, n in enumerate(names)})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def check_against(self, state_names, shapes: dict | None = None) -> None:
        """Raise [`DataError`][symml.DataError] if a name is not a state, or an
        observation does not have the state's shape (`shapes[name]`, `()` for
        an ODE state, the grid shape for a discretised field)."""
        for name, v in self.values.items():
            if name not in state_names:
                raise DataError(
                    f"The data observe `{name}`, which is not a state of the model; "
                    f"its states are {', '.join(state_names)}."
                )
            if shapes is not None and v.shape[1:] != tuple(shapes[name]):
                raise DataError(
                    f"Each observation of `{name}` has shape {v.shape[1:]}; the "
                    f"model's `{name}` has shape {tuple(shapes[name])}. Observe "
                    "fields on the discretisation grid."
                )

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
