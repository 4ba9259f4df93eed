from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._scheme import (
    AbstractScheme,
    MultiIndex,
    check_indices,
    check_multi_indices,
    check_point,
)


def _chains(alphas: list[MultiIndex]) -> list[list[int]]:
    """Paths of input indices whose prefixes cover every multi-index in `alphas`.

    Differentiating along a path `i_1, ..., i_k` yields, for free, every
    derivative along a prefix of it; each new path is ordered greedily so that
    its prefixes pass through as many other requested multi-indices as possible.
    """
    wanted = set(alphas)
    covered: set[MultiIndex] = set()
    paths = []
    for alpha in sorted(wanted, key=sum, reverse=True):
        if alpha in covered:
            continue
        beta, path = [0] * len(alpha), []
        covered.add(tuple(beta))
        for _ in range(sum(alpha)):
            options = [i for i in range(len(alpha)) if beta[i] < alpha[i]]
            best = options[0]
            for i in options:
                nxt = tuple(b + (j == i) for j, b in enumerate(beta))
                if nxt in wanted and nxt not in covered:
                    best = i
                    break
            beta[best] += 1
            path.append(best)
            covered.add(tuple(beta))
        paths.append(path)
    return paths


def _along_path(fn: Callable, x: Array, path: list[int], jac: Callable) -> list[Array]:
    """Derivatives of `fn` at `x` along every prefix of `path`, shortest first.

    Each step differentiates with respect to a scalar shift `s` of one input,
    `∂_i g(x) = d/ds g(x + s e_i)`, with `jac` (`jax.jacfwd` or `jax.jacrev`);
    lower orders ride along as auxiliary outputs, so they are not recomputed.
    """

    def base(y):
        return fn(y), ()

    g = base
    for i in path:
        g = _step(g, i, jac)
    top, lower = g(x)
    return [*reversed(lower), top]


def _step(g: Callable, i: int, jac: Callable) -> Callable:
    def shifted(s, y):
        top, lower = g(y + s * jnp.zeros_like(y).at[i].set(1))
        return top, (top, *lower)

    def dg(y):
        return jac(shifted, has_aux=True)(jnp.zeros((), y.dtype), y)

    return dg


def _nested_derivatives(fn, x, multi_indices, jac):
    x = check_point(x)
    alphas = check_multi_indices(multi_indices, x.shape[0])
    found: dict[MultiIndex, Array] = {}
    for path in _chains(alphas):
        beta = [0] * x.shape[0]
        values = _along_path(fn, x, path, jac)
        found.setdefault(tuple(beta), values[0])
        for i, v in zip(path, values[1:], strict=True):
            beta[i] += 1
            found.setdefault(tuple(beta), v)
    return tuple(found[a] for a in alphas)


class Reverse(AbstractScheme):
    """Nested reverse mode: `jax.jacrev` once per differentiation.

    Exact to rounding and works for any JAX-traceable `fn`, but the cost grows
    roughly like `3^k` primal passes for order `k` (times the output size): the
    reference, not the fast choice. `laplacian` is the trace of the nested
    reverse-mode Hessian.
    """

    def derivatives(self, fn, x, multi_indices):
        return _nested_derivatives(fn, x, multi_indices, jax.jacrev)

    def laplacian(self, fn, x, indices=None):
        x = check_point(x)
        idx = jnp.asarray(check_indices(indices, x.shape[0]))

        def restricted(z):
            return fn(x.at[idx].set(z))

        hess = jax.jacrev(jax.jacrev(restricted))(x[idx])
        return jnp.trace(hess, axis1=-2, axis2=-1)


class Forward(AbstractScheme):
    """Nested forward mode: one `jax.jvp` per differentiation.

    Exact to rounding; order `k` costs about `2^k` primal passes (nested
    forward mode recomputes lower orders that Taylor mode shares).
    `laplacian` sums the second directional derivatives `jvp(jvp)` along each
    input, batched with `vmap`.
    """

    def derivatives(self, fn, x, multi_indices):
        return _nested_derivatives(fn, x, multi_indices, jax.jacfwd)

    def laplacian(self, fn, x, indices=None):
        x = check_point(x)
        idx = check_indices(indices, x.shape[0])
        basis = jnp.eye(x.shape[0], dtype=x.dtype)[jnp.asarray(idx)]

        def second(v: Float[Array, " d"]) -> Array:
            def first(y):
                return jax.jvp(fn, (y,), (v,))[1]

            return jax.jvp(first, (x,), (v,))[1]

        return jnp.sum(jax.vmap(second)(basis), axis=0)
