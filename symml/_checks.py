"""Checks of numeric options shared by the stages. Plain Python (no jax), so
every stage may use them; each raises the `SymmlError` subclass its caller
passes as `error=`, with a sentence naming the option and its owner."""

import math

import numpy as np

from ._errors import SymmlError


def real_number(value) -> float:
    """`value` as a float, or nan when it is not a real number (a boolean is
    not one)."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def positive_number(
    value,
    name: str,
    owner: str,
    *,
    error: type[SymmlError],
    what: str = "a finite positive number",
) -> float:
    """`value` as a float if it is finite and > 0; `what` names the
    expectation in the error."""
    number = real_number(value)
    if not 0 < number < math.inf:
        raise error(f"`{name}` of `{owner}` must be {what}; got {value!r}.")
    return number


def non_negative_number(
    value, name: str, owner: str, *, error: type[SymmlError]
) -> float:
    """`value` as a float if it is finite and >= 0."""
    number = real_number(value)
    if not 0 <= number < math.inf:
        raise error(
            f"`{name}` of `{owner}` must be a finite number >= 0; got {value!r}."
        )
    return number


def positive_integer(value, name: str, owner: str, *, error: type[SymmlError]) -> int:
    """`value` as an int if it is an integer >= 1 (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise error(f"`{name}` of `{owner}` must be a positive integer; got {value!r}.")
    return int(value)


def integer_at_least(
    value, name: str, owner: str, minimum: int = 1, *, error: type[SymmlError]
) -> int:
    """`value` as an int if it is an integer >= `minimum` (not a boolean)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < minimum
    ):
        raise error(
            f"`{name}` of `{owner}` must be an integer >= {minimum}; got {value!r}."
        )
    return int(value)
