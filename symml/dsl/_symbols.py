"""States, fields, independent variables and trainable parameter values."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction

from .._errors import ModelError


class StateFunction(AppliedUndef):
    """Base class of declared states: `x(t)` is integrated by an ODE solver (or,
    with several independent variables, discretised by the method of lines)."""


class FieldFunction(AppliedUndef):
    """Base class of declared fields: `u(t, x)` is represented by a network and
    trained against the model's residual (a physics-informed network)."""


def _as_variables(variables, what: str) -> tuple[sp.Symbol, ...]:
    if isinstance(variables, sp.Symbol):
        variables = (variables,)
    variables = tuple(variables)
    if not variables:
        raise ModelError(f"`{what}` needs at least one independent variable.")
    for v in variables:
        if not isinstance(v, sp.Symbol):
            raise ModelError(
                f"The independent variables of `{what}` must be sympy Symbols; "
                f"got {v!r} of type {type(v).__name__}. Declare them with "
                '`t = sympy.Symbol("t")`.'
            )
    if len(set(variables)) != len(variables):
        raise ModelError(f"`{what}` lists an independent variable twice: {variables}.")
    return variables


def _split_names(names) -> list[str]:
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    elif not isinstance(names, list | tuple):
        raise ModelError(
            f"State names must be a string such as `'x y'` or a list of names; got "
            f"{names!r} of type {type(names).__name__}."
        )
    names = list(names)
    if not names:
        raise ModelError("`states` needs at least one name, e.g. `states('x y', t)`.")
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ModelError(
                f"State name {n!r} is not a valid identifier; use names like "
                "'x', 'rho' or 'u1'."
            )
    return names


def states(names, *variables) -> tuple[sp.Expr, ...]:
    """Declare states: functions of the independent variable(s).

    **Arguments:**

    - `names`: a string of space- or comma-separated names (`"x y"`) or a list.
    - `variables`: the independent variables, e.g. `t` for an ODE, or
      `t, x, y` for a PDE to be discretised by the method of lines.

    **Returns:**

    A tuple of applied functions, `x(t), y(t)`, usable anywhere in sympy.
    """
    variables = _as_variables(variables, "states")
    return tuple(
        UndefinedFunction(n, bases=(StateFunction,))(*variables)
        for n in _split_names(names)
    )


@dataclass(frozen=True)
class FieldSpec:
    """How a field's network is built."""

    name: str
    hidden: tuple[int, ...]
    activation: Any
    network: Any = None  # an architecture from `symml.nets`, or None


def check_hidden(hidden, owner: str) -> tuple[int, ...]:
    """`hidden` as a tuple of positive layer widths, or a `ModelError`."""
    if isinstance(hidden, str | bytes) or not hasattr(hidden, "__iter__"):
        raise ModelError(
            f"`hidden` of {owner} must be a list of layer widths such as `[32, 32]`;"
            f" got {hidden!r}."
        )
    widths = tuple(hidden)
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1:
            raise ModelError(
                f"`hidden` of {owner} must hold positive integer widths; got "
                f"{hidden!r}. Use e.g. `hidden=[32, 32]` (or `[]` for a linear "
                "map)."
            )
    return tuple(int(w) for w in widths)


def check_network(network, owner: str):
    """`network` if it is an architecture (anything with `build`, such as
    `symml.nets.ModifiedMLP()`; `dsl` never imports the networks) or None."""
    if network is None or callable(getattr(network, "build", None)):
        return network
    raise ModelError(
        f"`network` of {owner} must be a network architecture such as "
        f"`symml.nets.ModifiedMLP()` or `symml.nets.StandardMLP(fourier="
        f"symml.nets.FourierFeatures())`; got {network!r}."
    )


def check_activation(activation, owner: str):
    """A name (checked against the registry when the network is built) or an
    activation object with a `name`."""
    if isinstance(activation, str):
        if not activation:
            raise ModelError(f"`activation` of {owner} is an empty string.")
        return activation
    if callable(activation) and isinstance(getattr(activation, "name", None), str):
        return activation
    raise ModelError(
        f"`activation` of {owner} must be an activation name such as 'tanh' or a "
        f"`symml.nets.Activation`; got {activation!r}."
    )


def Field(
    name: str,
    variables,
    *,
    hidden=(64, 64, 64),
    activation: str = "tanh",
    network=None,
) -> sp.Expr:
    """Declare a field: the solution of a PDE (or ODE) represented by a network.

    **Arguments:**

    - `name`: the field's name.
    - `variables`: its independent variables, e.g. `[t, x]`.
    - `hidden`: the hidden layer widths of its network.
    - `activation`: the activation name (`"tanh"` by default; `"relu"` has a
      zero second derivative and cannot learn a model with u_xx).
    - `network`: the architecture, e.g. `symml.nets.ModifiedMLP(fourier=
      symml.nets.FourierFeatures(scale=2.0))` (default: a plain MLP).

    **Returns:**

    The applied function `u(t, x)`, usable in equations, derivatives and
    conditions (`u.subs(t, 0)`).
    """
    (name,) = _split_names([name])
    variables = _as_variables(variables, "Field")
    owner = f"`Field` {name!r}"
    spec = FieldSpec(
        name,
        check_hidden(hidden, owner),
        check_activation(activation, owner),
        check_network(network, owner),
    )
    return UndefinedFunction(name, bases=(FieldFunction,), spec=spec)(*variables)


@dataclass(frozen=True)
class Trainable:
    """A parameter value to be learned, starting from `initial`."""

    initial: float

    def __post_init__(self):
        if not math.isfinite(float(self.initial)):
            raise ModelError(
                f"The initial value of a trainable parameter must be finite; got "
                f"{self.initial!r}."
            )


def trainable(initial: float) -> Trainable:
    """Mark a parameter as trainable, starting from `initial`.

    `parameters={D: trainable(0.05)}` learns `D`; `parameters={alpha: 1.3}`
    keeps `alpha` fixed.
    """
    try:
        initial = float(initial)
    except (TypeError, ValueError):
        raise ModelError(f"`trainable` needs a real number; got {initial!r}.") from None
    return Trainable(initial)
