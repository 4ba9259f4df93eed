"""Networks for unknown terms and fields.

Guarantees: every network is an `equinox.Module` whose `__call__` maps a single
input point `Float[Array, "in"]` to `Float[Array, "out"]`, is pure, and works
under `jit`, `vmap` and `grad` in float32 and float64, and under every
derivative scheme (the Taylor scheme included: only primitives with Taylor
rules are used). Activations are looked up by name in a registry, so a model
can name them in its declaration; architectures
([`StandardMLP`][symml.nets.StandardMLP], [`ModifiedMLP`][symml.nets.ModifiedMLP],
with optional [`FourierFeatures`][symml.nets.FourierFeatures]) are declared
with `network=` on a field or unknown and built at fit time.
"""

from ._activations import (
    ACTIVATIONS as ACTIVATIONS,
    Activation as Activation,
    activations as activations,
    get_activation as get_activation,
    register_activation as register_activation,
)
from ._architecture import (
    AbstractArchitecture as AbstractArchitecture,
    EmbeddedNetwork as EmbeddedNetwork,
    FourierEmbedding as FourierEmbedding,
    FourierFeatures as FourierFeatures,
    GatedMLP as GatedMLP,
    ModifiedMLP as ModifiedMLP,
    StandardMLP as StandardMLP,
    get_architecture as get_architecture,
    make_network as make_network,
)
from ._constrained import Constrained as Constrained
from ._mlp import MLP as MLP
