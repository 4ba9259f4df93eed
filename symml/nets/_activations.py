from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .._errors import ModelError


@dataclass(frozen=True)
class Activation:
    """A named activation function.

    **Arguments:**

    - `name`: the name used in declarations (`activation="tanh"`).
    - `fn`: the elementwise function.
    - `smooth_orders`: the highest derivative order that is not identically zero
      or undefined (`None` for infinitely differentiable). relu has `1`: its
      second derivative is zero almost everywhere, so a physics loss with u_tt
      cannot train it.
    """

    name: str
    fn: Callable
    smooth_orders: int | None = None

    def __call__(self, x):
        return self.fn(x)


ACTIVATIONS: dict[str, Activation] = {}


def register_activation(activation: Activation) -> Activation:
    """Make `activation` available by name in `Unknown(..., activation=name)`."""
    ACTIVATIONS[activation.name] = activation
    return activation


def _identity(x):
    return x


for _act in [
    Activation("tanh", jnp.tanh),
    Activation("sigmoid", jax.nn.sigmoid),
    Activation("softplus", jax.nn.softplus),
    Activation("sin", jnp.sin),
    Activation("gelu", lambda x: jax.nn.gelu(x, approximate=True)),
    Activation("swish", jax.nn.swish),
    Activation("identity", _identity),
    Activation("relu", jax.nn.relu, smooth_orders=1),
    Activation("elu", jax.nn.elu, smooth_orders=1),
]:
    register_activation(_act)


def get_activation(activation: str | Activation) -> Activation:
    """Look an activation up by name (or pass an `Activation` through)."""
    if isinstance(activation, Activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ACTIVATIONS))
        raise ModelError(
            f"Unknown activation {activation!r}. Use one of {known}, or register "
            "your own with `symml.nets.register_activation(Activation(name, fn))`."
        ) from None
