"""Networks for unknown terms and fields.

Guarantees: every network is an `equinox.Module` whose `__call__` maps a single
input point `Float[Array, "in"]` to `Float[Array, "out"]`, is pure, and works
under `jit`, `vmap` and `grad` in float32 and float64. Activations are looked
up by name in a registry, so a model can name them in its declaration.
"""

from ._activations import (
    ACTIVATIONS as ACTIVATIONS,
    Activation as Activation,
    activations as activations,
    get_activation as get_activation,
    register_activation as register_activation,
)
from ._mlp import MLP as MLP, make_network as make_network
