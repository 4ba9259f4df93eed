from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Constrained(eqx.Module):
    """A network whose output satisfies conditions by construction.

    `y(x) = lift(x) + distance(x) · network(embed(x))`, where `embed` replaces
    each periodic input `x_i` of period `L` by `cos(2π(x_i − a)/L)` and
    `sin(2π(x_i − a)/L)`: every derivative of `y` in `x_i` is then periodic
    too, and `y = lift` wherever `distance` vanishes (Dirichlet data on faces
    of a box, Lagaris, Likas & Fotiadis 1998). Both maps are plain `jax.numpy`
    functions of one point, so derivative schemes see one smooth function.

    **Fields:**

    - `network`: the free network, taking the embedded input.
    - `periodic`: `((input index, lower end a, period L), ...)`.
    - `lift`, `distance`: functions of one point `(in,)` to arrays broadcasting
      against the output, or `None` for no output transform.
    """

    network: eqx.Module
    periodic: tuple[tuple[int, float, float], ...] = eqx.field(static=True, default=())
    lift: Callable | None = eqx.field(static=True, default=None)
    distance: Callable | None = eqx.field(static=True, default=None)
    in_size: int = eqx.field(static=True, default=0)

    @property
    def out_size(self) -> int:
        return self.network.out_size

    def embed(self, x: Float[Array, " in"]) -> Float[Array, " embedded"]:
        """The input the free network sees: periodic inputs as points on a
        circle, the others as they are."""
        if not self.periodic:
            return x
        periodic = {i for i, _, _ in self.periodic}
        keep = np.array([i for i in range(x.shape[0]) if i not in periodic], int)
        parts = [x[keep]] if keep.size else []
        for i, lower, period in self.periodic:
            angle = (2 * np.pi / period) * (x[i] - lower)
            parts.append(jnp.stack([jnp.cos(angle), jnp.sin(angle)]))
        return jnp.concatenate(parts)

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        y = self.network(self.embed(x))
        if self.lift is not None:
            y = self.lift(x) + self.distance(x) * y
        return y
