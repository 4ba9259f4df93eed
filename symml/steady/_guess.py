"""`SkipGuess`: a network of an experiment's inputs that predicts its steady
state, so that the root finder starts close (the "Skip DEQ" idea)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._errors import SteadyStateInputError
from ..lowering._params import check_key
from ..nets import MLP, make_network

__all__ = ["SkipGuess"]


class SkipGuess(eqx.Module):
    """An explicit network `g(inputs) ≈ u*(inputs)` used as the initial guess of
    a steady-state solve.

    Trained jointly with the model (a steady fit adds the term
    `‖g(inputs) - stop_gradient(u*)‖²` to its loss), it moves Newton's start
    close to the root, so that training and prediction need fewer iterations.
    The root itself does not depend on the guess, so the fitted model does not
    either.

    **Arguments:**

    - `n_inputs`: the number of known inputs per experiment.
    - `n`: the number of unknowns of the system (`system.n`, or the length of
      the flat state).
    - `hidden`: the hidden layer sizes.
    - `activation`: a registered activation name.
    - `key`: a JAX PRNG key for the initial weights.
    - `in_range`: optional `(lower, upper)` of the inputs, rescaled to about
      [-1, 1].
    - `offset`: a flat state added to the network's output (e.g. the mean of
      the observed steady states), so that an untrained guess is already a
      sensible one; it is trained along with the network.
    - `dtype`: the parameter dtype (default: JAX's default float).
    """

    network: MLP
    offset: Float[Array, " n"]

    def __init__(
        self,
        n_inputs: int,
        n: int,
        *,
        hidden: tuple[int, ...] = (32, 32),
        activation: str = "tanh",
        key: PRNGKeyArray,
        in_range: tuple | None = None,
        offset: Float[ArrayLike, " n"] | None = None,
        dtype=None,
    ):
        for name, value in (("n_inputs", n_inputs), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SteadyStateInputError(
                    f"`{name}` of `SkipGuess` must be a positive integer; got "
                    f"{value!r}."
                )
        check_key(key, "SkipGuess", SteadyStateInputError)
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        # A small last layer: the untrained guess is `offset` plus a little.
        self.network = make_network(
            n_inputs,
            n,
            tuple(hidden),
            activation,
            key=key,
            dtype=dtype,
            in_range=in_range,
            final_scale=0.1,
        )
        if offset is None:
            offset = jnp.zeros((n,), dtype)
        offset = jnp.asarray(offset, dtype)
        if offset.shape != (n,):
            raise SteadyStateInputError(
                f"`offset` of `SkipGuess` has shape {offset.shape}; expected ({n},), "
                "one value per unknown."
            )
        self.offset = offset

    @property
    def n_inputs(self) -> int:
        return self.network.in_size

    @property
    def n(self) -> int:
        return self.network.out_size

    def __call__(self, inputs: Float[Array, " k"]) -> Float[Array, " n"]:
        return self.offset + self.network(inputs)
