import abc
from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._errors import DerivativeError

MultiIndex = tuple[int, ...]


class AbstractScheme(eqx.Module):
    """A way of computing derivatives of a function with respect to its inputs.

    Every scheme is pure: it works under `jax.jit`, under `jax.vmap` over points
    and under an outer `jax.grad` with respect to whatever `fn` closes over (the
    weights of a network), in float32 and float64.
    """

    @abc.abstractmethod
    def derivatives(
        self,
        fn: Callable[[Float[Array, " d"]], Float[Array, " m"]],
        x: Float[Array, " d"],
        multi_indices: Sequence[Sequence[int]],
    ) -> tuple[Float[Array, " m"], ...]:
        """Partial derivatives of `fn` at one point `x`.

        **Arguments:**

        - `fn`: maps one point `(d,)` to `(m,)`.
        - `x`: the point, shape `(d,)`.
        - `multi_indices`: one tuple of `d` non-negative orders per requested
          derivative; `((0, 0), (1, 0), (0, 2), (1, 1))` asks for u, u_t, u_xx
          and u_tx of `u(t, x)`. Work is shared between them.

        **Returns:**

        A tuple with one `(m,)` array per multi-index, in the same order.
        """

    @abc.abstractmethod
    def laplacian(
        self,
        fn: Callable[[Float[Array, " d"]], Float[Array, " m"]],
        x: Float[Array, " d"],
        indices: Sequence[int] | None = None,
    ) -> Float[Array, " m"]:
        """The sum of the pure second derivatives of `fn` at `x`.

        **Arguments:**

        - `fn`: maps one point `(d,)` to `(m,)`.
        - `x`: the point, shape `(d,)`.
        - `indices`: the inputs to sum over (default: all of them).

        **Returns:**

        `Σ_i ∂²fn/∂x_i²`, shape `(m,)`.
        """


def check_point(x: Array) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise DerivativeError(
            f"`x` must be one point, a float array of shape (d,); got a "
            f"{x.dtype} array of shape {x.shape}. Call the scheme on a single point "
            "and `jax.vmap` it over many."
        )
    return x


def check_multi_indices(
    multi_indices: Sequence[Sequence[int]], d: int
) -> list[MultiIndex]:
    """Validate `multi_indices` against `d` inputs and normalise to int tuples."""
    if isinstance(multi_indices, (str, bytes)) or not isinstance(
        multi_indices, Sequence
    ):
        raise DerivativeError(
            f"`multi_indices` must be a tuple of tuples of orders; got "
            f"{multi_indices!r}. Write e.g. `((0, 0), (0, 2))` for u and u_xx."
        )
    out = []
    for alpha in multi_indices:
        if isinstance(alpha, (int, str)) or len(alpha) != d:
            raise DerivativeError(
                f"Each multi-index in `multi_indices` must hold one order per input "
                f"({d} inputs); got {alpha!r}. Write e.g. `(0,) * {d}` for the value."
            )
        alpha = tuple(int(a) for a in alpha)
        if any(a < 0 for a in alpha):
            raise DerivativeError(
                f"The multi-index {alpha} in `multi_indices` has a negative order. "
                "Orders must be non-negative integers."
            )
        out.append(alpha)
    return out


def check_indices(indices: Sequence[int] | None, d: int) -> list[int]:
    if indices is None:
        return list(range(d))
    out = [int(i) for i in indices]
    if not out or any(not 0 <= i < d for i in out) or len(set(out)) != len(out):
        raise DerivativeError(
            f"`indices` must list distinct input positions in [0, {d}); got "
            f"{indices!r}. Pass `None` to sum over all inputs."
        )
    return out


def check_output(y: Array) -> None:
    if not hasattr(y, "shape"):
        raise DerivativeError(
            "`fn` must return a single array of shape (m,); got "
            f"{type(y).__name__}. Stack the outputs with `jnp.stack`."
        )
