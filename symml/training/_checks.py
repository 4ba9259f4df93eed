"""Checks of numeric options shared by the loop, the checkpoints and the fit
methods: each raises a `FitError` naming the option and its owner."""

import math

import numpy as np

from .._errors import FitError


def positive_number(value, name: str, owner: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise FitError(
            f"`{name}` of `{owner}` must be a finite positive number; got {value!r}."
        )
    return number


def non_negative_number(value, name: str, owner: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise FitError(
            f"`{name}` of `{owner}` must be a finite number >= 0; got {value!r}."
        )
    return number


def positive_integer(value, name: str, owner: str, *, allow_none=False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FitError(
            f"`{name}` of `{owner}` must be a positive integer; got {value!r}."
        )
    return int(value)
