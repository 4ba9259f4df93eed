"""Checks of numeric options shared by the loop, the checkpoints and the fit
methods: symml's shared checks (`symml/_checks.py`) raising `FitError`."""

from .. import _checks
from .._errors import FitError


def positive_number(value, name: str, owner: str) -> float:
    return _checks.positive_number(value, name, owner, error=FitError)


def non_negative_number(value, name: str, owner: str) -> float:
    return _checks.non_negative_number(value, name, owner, error=FitError)


def positive_integer(value, name: str, owner: str, *, allow_none=False) -> int | None:
    if value is None and allow_none:
        return None
    return _checks.positive_integer(value, name, owner, error=FitError)
