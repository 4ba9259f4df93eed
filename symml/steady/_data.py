"""`SteadyData`: steady states observed in several experiments that differ in
known inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from .._errors import DataError

__all__ = ["SteadyData"]


def _key_name(key: Any, what: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, sp.core.function.AppliedUndef):
        return key.func.__name__
    if isinstance(key, sp.Symbol):
        return key.name
    raise DataError(
        f"`{what}` must be keyed by {'state' if what == 'values' else 'parameter'} "
        f"(a sympy object) or by name; got {key!r}."
    )


def _finite(name: str, array: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), array.shape)[0]
        raise DataError(
            f"The {what} of `{name}` contain {int(bad.sum())} non-finite value(s) "
            f"(first in experiment {first}); remove them or the experiment."
        )


def _numeric(values, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(
            f"{what} must be an array of real numbers with one row per experiment "
            "(a rectangular array, not ragged rows); got values that are not."
        ) from None


class SteadyData:
    """Steady states observed in `K` experiments, each with its own values of
    some known inputs (a source amplitude, a boundary value, a parameter).

    **Arguments:**

    - `values`: `{state: observations}` with shape `(K,)` for a state of an
      ODE system, or `(K, *grid)` for a field of a discretised PDE (on the
      discretisation grid); keys are states (`u` from
      [`states`][symml.states]) or their names. Unobserved states are left out.
    - `inputs`: `{parameter: values}` with shape `(K,)`: in experiment `k`,
      each of these parameters of the model takes `values[k]`. They must be
      declared in the model's `parameters=` with a number (their value there
      is ignored), not as trainable. `None` when every experiment is the same
      system.

    Values must be finite.
    """

    def __init__(self, values: Mapping, inputs: Mapping | None = None):
        if not isinstance(values, Mapping) or not values:
            raise DataError(
                "`values` must be a non-empty mapping `{state: observations}`, with "
                "one row per experiment."
            )
        observed: dict[str, np.ndarray] = {}
        for key, v in values.items():
            name = _key_name(key, "values")
            if name in observed:
                raise DataError(f"The state `{name}` is observed twice in `values`.")
            v = _numeric(v, f"The observations of `{name}`")
            if v.ndim == 0:
                raise DataError(
                    f"The observations of `{name}` are a scalar; expected an array "
                    "with one row per experiment, shape (K,) or (K, *grid)."
                )
            _finite(name, v, "observations")
            observed[name] = v
        counts = {name: v.shape[0] for name, v in observed.items()}
        given: dict[str, np.ndarray] = {}
        for key, v in (inputs or {}).items():
            name = _key_name(key, "inputs")
            if name in given:
                raise DataError(f"The input `{name}` is given twice in `inputs`.")
            v = _numeric(v, f"The values of the input `{name}`")
            if v.ndim != 1:
                raise DataError(
                    f"The values of the input `{name}` have shape {v.shape}; expected "
                    "(K,), one value per experiment."
                )
            _finite(name, v, "values")
            given[name] = v
            counts[f"input {name}"] = v.shape[0]
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"`{k}`: {c}" for k, c in counts.items())
            raise DataError(
                "Every observation and input needs one row per experiment; the "
                f"numbers of experiments differ ({listed})."
            )
        self.values = observed
        self.inputs = given
        self.n_experiments = next(iter(counts.values()))

    @property
    def names(self) -> tuple[str, ...]:
        """The observed states."""
        return tuple(self.values)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs, in the column order of `input_array()`."""
        return tuple(self.inputs)

    def input_array(self) -> np.ndarray:
        """The inputs as a `(K, n_inputs)` array (`(K, 0)` if there are none)."""
        if not self.inputs:
            return np.zeros((self.n_experiments, 0))
        return np.stack([self.inputs[n] for n in self.input_names], axis=1)

    def __repr__(self) -> str:
        return (
            f"SteadyData({self.n_experiments} experiments, observed="
            f"{list(self.values)}, inputs={list(self.inputs)})"
        )
