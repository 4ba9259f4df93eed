from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .._errors import ModelError
from .._registry import Registry


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


_ACTIVATIONS: Registry[str, Activation] = Registry(
    "activation",
    error=ModelError,
    is_key=lambda key: isinstance(key, str) and key.isidentifier(),
    key_hint='a name (a Python identifier such as `"softsign"`)',
    register_name="symml.nets.register_activation",
    key_name="name",
    rule_name="activation",
)

# A read-only view of the table: extend it with `register_activation`.
ACTIVATIONS: Mapping[str, Activation] = _ACTIVATIONS.view


def activations() -> Mapping[str, Activation]:
    """A read-only view of the registered activations `{name: Activation}`."""
    return _ACTIVATIONS.view


def register_activation(
    name: str | Activation,
    activation: Callable | Activation | None = None,
    *,
    smooth_orders: int | None = None,
):
    """Make an activation available by name in `Unknown(..., activation=name)`.

    **Arguments:**

    - `name`: the name used in declarations. An `Activation` is registered
        under its own name (`register_activation(Activation("softsign", fn))`).
    - `activation`: an elementwise function or an `Activation`. Omit it to use
        `@register_activation(name)` as a decorator on the function.
    - `smooth_orders`: for a plain function, the highest derivative order that
        is not identically zero (see [`Activation`][symml.nets.Activation]).

    **Returns:**

    The registered `Activation` (or, without `activation`, a decorator that
    registers a function and returns it).
    """
    if isinstance(name, Activation) and activation is None:
        name, activation = name.name, name
    _ACTIVATIONS.check_key(name)
    if activation is None:

        def decorator(fn: Callable) -> Callable:
            register_activation(name, fn, smooth_orders=smooth_orders)
            return fn

        return decorator
    if not isinstance(activation, Activation):
        _ACTIVATIONS.check_rule(name, activation)
        activation = Activation(name, activation, smooth_orders)
    elif activation.name != name:
        raise ModelError(
            f"The `Activation` named {activation.name!r} cannot be registered as "
            f"{name!r}; register it under its own name or rename it."
        )
    return _ACTIVATIONS.register(name, activation)


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
