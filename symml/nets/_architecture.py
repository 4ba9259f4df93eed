"""Network architectures: declared on a field or unknown, built at fit time.

An architecture is a frozen description (no arrays, no key) carried by the
declaration (`Field(..., network=ModifiedMLP(fourier=FourierFeatures()))`);
`build(...)` makes the equinox module once the input size, the output size and
a key are known. Every module built here uses only primitives the Taylor
scheme has rules for (`dot_general`, `add`, `mul`, `sin`, `cos`, `tanh`, ...),
so derivatives of any order propagate through it in one pass.
"""

import abc
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import positive_integer, positive_number
from .._errors import ModelError
from ._activations import Activation, get_activation
from ._mlp import MLP, glorot_layers, input_scaling, rescale


class FourierEmbedding(eqx.Module):
    """Random Fourier features `[cos(B z), sin(B z)]` of the (rescaled) input
    `z` (Tancik et al. 2020; Wang, Wang & Perdikaris 2021).

    **Fields:**

    - `frequencies`: `B`, shape `(features, in)`, drawn from `N(0, scale²)`.
    - `trainable`: whether `B` is trained; if not, its gradient is stopped, so
      optimisers leave it where it was drawn.
    """

    frequencies: Float[Array, "features in"]
    trainable: bool = eqx.field(static=True, default=False)

    @property
    def out_size(self) -> int:
        return 2 * self.frequencies.shape[0]

    def __call__(self, z: Float[Array, " in"]) -> Float[Array, " out"]:
        b = self.frequencies
        if not self.trainable:
            b = jax.lax.stop_gradient(b)
        phase = b @ z
        return jnp.concatenate([jnp.cos(phase), jnp.sin(phase)])


class GatedMLP(eqx.Module):
    """The modified MLP of Wang, Teng & Perdikaris (2021): two encoders
    `U = σ(W_u z + b_u)`, `V = σ(W_v z + b_v)` of the input gate every hidden
    layer, `h ← σ(W h + b) ⊙ U + (1 − σ(W h + b)) ⊙ V`, which eases the
    gradient pathologies of plain MLPs in physics-informed losses.

    **Fields:**

    - `encoders`: `((W_u, b_u), (W_v, b_v))`.
    - `weights`, `biases`: per layer, `weights[i]` of shape `(out, in)`.
    - `activation`: applied in the encoders and every hidden layer.
    - `in_shift`, `in_scale`: inputs are mapped to `(x − in_shift) / in_scale`
      first (as in [`MLP`][symml.nets.MLP]).
    """

    encoders: tuple
    weights: list[Float[Array, "out in"]]
    biases: list[Float[Array, " out"]]
    activation: Activation = eqx.field(static=True)
    in_shift: tuple[float, ...] | None = eqx.field(static=True, default=None)
    in_scale: tuple[float, ...] | None = eqx.field(static=True, default=None)

    @property
    def in_size(self) -> int:
        return self.encoders[0][0].shape[1]

    @property
    def out_size(self) -> int:
        return self.weights[-1].shape[0]

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        h = rescale(x, self.in_shift, self.in_scale, self.weights[0].dtype)
        (wu, bu), (wv, bv) = self.encoders
        u = self.activation(wu @ h + bu)
        v = self.activation(wv @ h + bv)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            gate = self.activation(w @ h + b)
            h = gate * u + (1 - gate) * v
        return self.weights[-1] @ h + self.biases[-1]


class EmbeddedNetwork(eqx.Module):
    """A network applied to an embedding of its (rescaled) input.

    **Fields:**

    - `embedding`: e.g. a [`FourierEmbedding`][symml.nets.FourierEmbedding].
    - `body`: the network on the embedding's output.
    - `in_shift`, `in_scale`: the input rescaling applied before the embedding.
    """

    embedding: eqx.Module
    body: eqx.Module
    in_shift: tuple[float, ...] | None = eqx.field(static=True, default=None)
    in_scale: tuple[float, ...] | None = eqx.field(static=True, default=None)

    @property
    def in_size(self) -> int:
        return self.embedding.frequencies.shape[1]

    @property
    def out_size(self) -> int:
        return self.body.out_size

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        dtype = jax.tree.leaves(self.body)[0].dtype
        return self.body(
            self.embedding(rescale(x, self.in_shift, self.in_scale, dtype))
        )


# -- declarations ---------------------------------------------------------------


@dataclass(frozen=True)
class FourierFeatures:
    """Random Fourier features as the first layer of a network: the input,
    rescaled to about [−1, 1] by the declared range, is mapped to
    `[cos(B z), sin(B z)]` with `B ~ N(0, scale²)` (Tancik et al. 2020). Higher
    `scale` lets the network represent finer structure sooner (and noise too):
    1–2 suits solutions with a few oscillations per unit of the rescaled
    input, 5–10 sharp fronts.

    **Arguments:**

    - `features`: the number of frequencies (the embedding has twice as many
      outputs).
    - `scale`: the standard deviation of the frequencies.
    - `trainable`: train `B` too (by default it stays as drawn).
    """

    features: int = 64
    scale: float = 1.0
    trainable: bool = False

    def __post_init__(self):
        positive_integer(self.features, "features", "FourierFeatures", error=ModelError)
        scale = positive_number(
            self.scale, "scale", "FourierFeatures", error=ModelError
        )
        object.__setattr__(self, "scale", scale)
        if not isinstance(self.trainable, bool):
            raise ModelError(
                f"`trainable` of `FourierFeatures` must be True or False; got "
                f"{self.trainable!r}."
            )

    def build(self, in_size: int, *, key: PRNGKeyArray, dtype) -> FourierEmbedding:
        b = self.scale * jr.normal(key, (self.features, in_size), dtype)
        return FourierEmbedding(b, self.trainable)


class AbstractArchitecture(abc.ABC):
    """How a network is built from its declaration. Pass one as `network=` to
    [`Field`][symml.Field] or [`Unknown`][symml.Unknown]."""

    @abc.abstractmethod
    def build(
        self,
        in_size: int,
        out_size: int,
        hidden: tuple[int, ...],
        activation: str | Activation,
        *,
        key: PRNGKeyArray,
        dtype,
        in_range: tuple | None = None,
        final_scale: float = 1.0,
    ) -> eqx.Module:
        """The network: an equinox module mapping `(in_size,)` to
        `(out_size,)`, inputs rescaled from `in_range` to about [−1, 1]."""


def _check_fourier(fourier, owner: str):
    if fourier is not None and not isinstance(fourier, FourierFeatures):
        raise ModelError(
            f"`fourier` of `{owner}` must be `symml.nets.FourierFeatures(...)` or "
            f"None; got {fourier!r}."
        )


def _embedded(fourier, in_size, in_range, key, dtype, build_body):
    """`build_body(body_in_size, key, in_range)` with Fourier features in front."""
    if fourier is None:
        return build_body(in_size, key, in_range)
    k_embed, k_body = jr.split(key)
    embedding = fourier.build(in_size, key=k_embed, dtype=dtype)
    shift, scale = input_scaling(in_size, in_range)
    return EmbeddedNetwork(
        embedding, build_body(embedding.out_size, k_body, None), shift, scale
    )


@dataclass(frozen=True)
class StandardMLP(AbstractArchitecture):
    """A fully connected network ([`MLP`][symml.nets.MLP]), optionally on
    random Fourier features of its input (the default architecture).

    **Arguments:**

    - `fourier`: [`FourierFeatures`][symml.nets.FourierFeatures] as the first
      layer, or `None`.
    """

    fourier: FourierFeatures | None = None

    def __post_init__(self):
        _check_fourier(self.fourier, "StandardMLP")

    def build(
        self,
        in_size,
        out_size,
        hidden,
        activation,
        *,
        key,
        dtype,
        in_range=None,
        final_scale=1.0,
    ):
        def body(n_in, k, rng):
            weights, biases = glorot_layers(
                [n_in, *hidden, out_size], k, dtype, final_scale
            )
            shift, scale = input_scaling(n_in, rng)
            return MLP(weights, biases, get_activation(activation), shift, scale)

        return _embedded(self.fourier, in_size, in_range, key, dtype, body)


@dataclass(frozen=True)
class ModifiedMLP(AbstractArchitecture):
    """The modified MLP of Wang, Teng & Perdikaris (2021)
    ([`GatedMLP`][symml.nets.GatedMLP]): two encoders of the input gate every
    hidden layer. Its hidden layers must all have the same width. Often
    trains physics-informed losses with sharp features (Allen–Cahn, stiff
    reactions) where a plain MLP stalls.

    **Arguments:**

    - `fourier`: [`FourierFeatures`][symml.nets.FourierFeatures] as the first
      layer, or `None`.
    """

    fourier: FourierFeatures | None = None

    def __post_init__(self):
        _check_fourier(self.fourier, "ModifiedMLP")

    def build(
        self,
        in_size,
        out_size,
        hidden,
        activation,
        *,
        key,
        dtype,
        in_range=None,
        final_scale=1.0,
    ):
        hidden = tuple(hidden)
        if not hidden or len(set(hidden)) != 1:
            raise ModelError(
                f"`ModifiedMLP` needs hidden layers of one width, e.g. `hidden=[64,"
                f" 64, 64]`; got `hidden={list(hidden)}`."
            )

        def body(n_in, k, rng):
            k_u, k_v, k_layers = jr.split(k, 3)
            width = hidden[0]
            encoders = tuple(
                (w[0], b[0])
                for w, b in (
                    glorot_layers([n_in, width], kk, dtype, 1.0) for kk in (k_u, k_v)
                )
            )
            weights, biases = glorot_layers(
                [n_in, *hidden, out_size], k_layers, dtype, final_scale
            )
            shift, scale = input_scaling(n_in, rng)
            return GatedMLP(
                encoders, weights, biases, get_activation(activation), shift, scale
            )

        return _embedded(self.fourier, in_size, in_range, key, dtype, body)


def get_architecture(network) -> AbstractArchitecture:
    """`network` if it is an architecture, `StandardMLP()` for `None`."""
    if network is None:
        return StandardMLP()
    if isinstance(network, AbstractArchitecture):
        return network
    raise ModelError(
        f"`network` must be a network architecture such as "
        f"`symml.nets.ModifiedMLP()` or `symml.nets.StandardMLP(fourier="
        f"symml.nets.FourierFeatures())`; got {network!r}."
    )


def make_network(
    in_size: int,
    out_size: int,
    hidden: tuple[int, ...] | list[int] = (32, 32),
    activation: str | Activation = "tanh",
    *,
    key: PRNGKeyArray,
    dtype=None,
    in_range: tuple | None = None,
    final_scale: float = 1.0,
    network=None,
) -> eqx.Module:
    """Build a network: by default an [`MLP`][symml.nets.MLP] with
    Glorot-normal weights, zero biases.

    **Arguments:**

    - `in_size`, `out_size`, `hidden`: layer sizes.
    - `activation`: a registered activation name or an `Activation`.
    - `key`: a JAX PRNG key.
    - `dtype`: the parameter dtype (default: JAX's default float).
    - `in_range`: optional `(lower, upper)` arrays of the inputs' expected range;
      inputs are rescaled to about [-1, 1].
    - `final_scale`: multiplies the last layer's initial weights; a small value
      starts an unknown term near zero, which keeps early ODE solves stable.
    - `network`: the architecture, e.g.
      [`ModifiedMLP`][symml.nets.ModifiedMLP] (default:
      [`StandardMLP()`][symml.nets.StandardMLP], a plain `MLP`).
    """
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    return get_architecture(network).build(
        in_size,
        out_size,
        tuple(hidden),
        activation,
        key=key,
        dtype=dtype,
        in_range=in_range,
        final_scale=final_scale,
    )
