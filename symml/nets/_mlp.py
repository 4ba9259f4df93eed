import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._activations import Activation


class MLP(eqx.Module):
    """A fully connected network mapping one point to one output vector.

    Kept as plain weight and bias lists (not `eqx.nn.MLP`) so that derivative
    schemes can propagate Taylor coefficients through it layer by layer.

    **Arguments:**

    - `weights`, `biases`: per layer; `weights[i]` has shape `(out, in)`.
    - `activation`: applied after every layer but the last.
    - `in_scale`, `in_shift`: if given, inputs are mapped to
      `(x - in_shift) / in_scale` before the first layer, so a network declared
      on t ∈ [0, 100] sees inputs of order one.
    """

    weights: list[Float[Array, "out in"]]
    biases: list[Float[Array, " out"]]
    activation: Activation = eqx.field(static=True)
    # Static (not leaves): fixed by the declaration, never seen by optimisers.
    in_shift: tuple[float, ...] | None = eqx.field(static=True, default=None)
    in_scale: tuple[float, ...] | None = eqx.field(static=True, default=None)

    @property
    def in_size(self) -> int:
        return self.weights[0].shape[1]

    @property
    def out_size(self) -> int:
        return self.weights[-1].shape[0]

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        h = rescale(x, self.in_shift, self.in_scale, self.weights[0].dtype)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = self.activation(w @ h + b)
        return self.weights[-1] @ h + self.biases[-1]


def rescale(x, shift, scale, dtype):
    """`(x - shift) / scale`, or `x` when there is no rescaling."""
    if shift is None:
        return x
    return (x - jnp.asarray(shift, dtype)) / jnp.asarray(scale, dtype)


def glorot_layers(
    sizes: list[int], key: PRNGKeyArray, dtype, final_scale: float = 1.0
) -> tuple[list[Array], list[Array]]:
    """Glorot-normal weights and zero biases for layers of `sizes`; the last
    layer's weights multiplied by `final_scale`."""
    keys = jr.split(key, len(sizes) - 1)
    weights, biases = [], []
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        std = math.sqrt(2.0 / (n_in + n_out))
        w = std * jr.normal(k, (n_out, n_in), dtype)
        if i == len(sizes) - 2:
            w = final_scale * w
        weights.append(w)
        biases.append(jnp.zeros((n_out,), dtype))
    return weights, biases


def input_scaling(in_size: int, in_range: tuple | None):
    """`(shift, scale)` tuples mapping `in_range` to about [-1, 1], or
    `(None, None)` without a range."""
    if in_range is None:
        return None, None
    lo = np.broadcast_to(np.asarray(in_range[0], float), (in_size,))
    hi = np.broadcast_to(np.asarray(in_range[1], float), (in_size,))
    shift = tuple(float(v) for v in (lo + hi) / 2)
    scale = tuple(float(v) for v in np.where(hi > lo, (hi - lo) / 2, 1.0))
    return shift, scale
