"""Unknown terms: network outputs usable as sympy expressions."""

import math

import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction

from .._errors import ModelError
from ._symbols import check_activation, check_hidden, check_network


def _check_range(input_range, n: int, owner: str):
    if input_range is None:
        return None
    message = (
        f"`input_range` of {owner} must be `(lower, upper)` with one finite lower "
        f"and one larger upper bound per input ({n}), e.g. "
        f"`(({', '.join(['0'] * n)}), ({', '.join(['1'] * n)}))`; got "
        f"{input_range!r}."
    )
    try:
        lo, hi = input_range
        lo, hi = tuple(map(float, lo)), tuple(map(float, hi))
    except (TypeError, ValueError):
        raise ModelError(message) from None
    if len(lo) != n or len(hi) != n:
        raise ModelError(message)
    for a, b in zip(lo, hi, strict=True):
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ModelError(message)
    return lo, hi


def _input(value, name: str) -> sp.Expr:
    """One input of an unknown as a sympy expression. Strings are refused:
    sympy would parse them, and a typo would become a new symbol."""
    expr = None
    if not isinstance(value, str):
        try:
            expr = sp.sympify(value, strict=True)
        except (sp.SympifyError, TypeError, ValueError):
            expr = None
    if not isinstance(expr, sp.Expr):
        raise ModelError(
            f"Each of the `inputs` of `Unknown` {name!r} must be a sympy expression "
            f"of the states, independent variables and parameters, e.g. `x` or "
            f"`x * y`; got {value!r} of type {type(value).__name__}."
        )
    return expr


class UnknownOutput(AppliedUndef):
    """Base class of the sympy functions that stand for one network output.

    The class carries `unknown` (the [`Unknown`][symml.Unknown]) and `index`
    (which output); they take part in equality, so two unknowns that share a
    name never compare equal.
    """


class Unknown:
    """A term of a model left unknown and represented by a network.

    **Arguments:**

    - `name`: the name of the term (`"U"`), used in printing and in `params`.
    - `inputs`: sympy expressions of the states, independent variables and
      parameters that the network sees, e.g. `[x, y]`.
    - `outputs`: the number of outputs; they share one network.
    - `hidden`: hidden layer widths.
    - `activation`: activation name (see `symml.nets.ACTIVATIONS`).
    - `input_range`: optional `(lower, upper)` per input, the range the inputs
      are expected to cover; the network rescales them to about [-1, 1].
    - `network`: the architecture, e.g. `symml.nets.ModifiedMLP()` (default: a
      plain MLP).

    `U[i]` is the sympy expression for output `i`, `U_i(x, y)`, usable anywhere
    in an equation, including inside derivatives.
    """

    def __init__(
        self,
        name: str,
        inputs,
        outputs: int = 1,
        *,
        hidden=(32, 32),
        activation: str = "tanh",
        input_range=None,
        network=None,
    ):
        if not isinstance(name, str) or not name.isidentifier():
            raise ModelError(
                f"The name of an `Unknown` must be an identifier such as 'U'; got "
                f"{name!r}."
            )
        if isinstance(inputs, sp.Basic):
            inputs = [inputs]
        if isinstance(inputs, str) or not hasattr(inputs, "__iter__"):
            raise ModelError(
                f"`inputs` of `Unknown` {name!r} must be a list of sympy expressions "
                f"of the states, e.g. `[x, y]`; got {inputs!r}."
            )
        inputs = tuple(_input(i, name) for i in inputs)
        if not inputs:
            raise ModelError(f"`Unknown` {name!r} needs at least one input.")
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            raise ModelError(
                f"`outputs` of `Unknown` {name!r} must be a positive integer; got "
                f"{outputs!r}."
            )
        owner = f"`Unknown` {name!r}"
        self.name = name
        self.inputs = inputs
        self.n_outputs = outputs
        self.hidden = check_hidden(hidden, owner)
        self.activation = check_activation(activation, owner)
        self.input_range = _check_range(input_range, len(inputs), owner)
        self.network = check_network(network, owner)
        self.functions = tuple(
            UndefinedFunction(
                f"{name}_{i}", bases=(UnknownOutput,), unknown=self, index=i
            )
            for i in range(outputs)
        )
        self.outputs = tuple(f(*inputs) for f in self.functions)

    def __reduce_ex__(self, protocol):
        raise ModelError(
            f"The `Unknown` {self.name!r} cannot be pickled: its outputs are sympy "
            "classes made at declaration time. Save the model holding it with "
            "`symml.save(path, model)` and read it back with `symml.load(path)`."
        )

    def __getitem__(self, i: int) -> sp.Expr:
        try:
            return self.outputs[i]
        except (IndexError, TypeError):
            raise ModelError(
                f"`Unknown` {self.name!r} has {self.n_outputs} output(s); index "
                f"{i!r} is out of range."
            ) from None

    def __len__(self) -> int:
        return self.n_outputs

    def __iter__(self):
        return iter(self.outputs)

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        return f"Unknown({self.name!r}, inputs=[{ins}], outputs={self.n_outputs})"
