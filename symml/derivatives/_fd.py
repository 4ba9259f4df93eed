import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._errors import DerivativeError
from ._scheme import (
    AbstractScheme,
    check_indices,
    check_multi_indices,
    check_point,
)


def fd_step(order: int, dtype, scale: float = 1.0) -> float:
    """The finite-difference step for a derivative of order `order`.

    `h = eps(dtype) ** (1 / (2 + order)) * scale` balances the `O(h²)`
    truncation error of a second-order central stencil against the
    `O(eps / h^order)` rounding error; `scale` is the input's range (2 for
    x ∈ [-1, 1]), so the step is relative to how fast the function varies.
    A fixed step like 1e-6 is far too small in float32 beyond order one.

    **Arguments:**

    - `order`: the total derivative order `k ≥ 1`.
    - `dtype`: the floating dtype of the computation.
    - `scale`: the input's range.

    **Returns:**

    The step `h` as a Python float.
    """
    if order < 1:
        raise DerivativeError(
            f"`order` must be a positive integer for a finite-difference step; got "
            f"{order!r}."
        )
    eps = float(jnp.finfo(dtype).eps)
    return eps ** (1.0 / (2 + order)) * float(scale)


def stencil_half_width(derivative: int, accuracy: int = 2) -> int:
    """Points on each side of a central stencil of accuracy `accuracy` for
    the `derivative`-th derivative (0 for no derivative)."""
    if derivative == 0:
        return 0
    return (derivative + 1) // 2 - 1 + accuracy // 2


@functools.cache
def central_weights(
    derivative: int, accuracy: int = 2
) -> tuple[tuple[int, float], ...]:
    """`((offset, weight), ...)` of the central stencil of accuracy
    `accuracy` for the `derivative`-th derivative at unit spacing, with zero
    weights (the centre of an odd derivative) left out. Exact rational weights
    from sympy, rounded once to floats. The one source of stencil weights in
    symml: derivative schemes and method-of-lines discretisations use it."""
    r = stencil_half_width(derivative, accuracy)
    offsets = list(range(-r, r + 1))
    weights = sp.finite_diff_weights(derivative, offsets, 0)[derivative][-1]
    return tuple((k, float(w)) for k, w in zip(offsets, weights, strict=True) if w)


def central_stencil(order: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The minimal-width, second-order accurate central stencil for `order`.

    **Returns:**

    `(offsets, weights)` with `f^(k)(x) ≈ h^-k Σ w_i f(x + o_i h)`, zero
    weights dropped: `k + 1` points (`k` odd: the centre has weight zero).
    """
    pairs = central_weights(order, 2)
    return tuple(o for o, _ in pairs), tuple(w for _, w in pairs)


def _per_input(value, d: int, name: str) -> tuple[float, ...]:
    if np.ndim(value) == 0:
        return (float(value),) * d
    value = tuple(float(v) for v in value)
    if len(value) != d:
        raise DerivativeError(
            f"`{name}` must be one number or one per input ({d} inputs); got "
            f"{len(value)} values. Pass e.g. `{name}=({', '.join(['1.0'] * d)})`."
        )
    return value


class FiniteDifference(AbstractScheme):
    """Central finite differences, second-order accurate.

    A pure derivative of order `k` uses the minimal central stencil (`k + 1`
    evaluations of `fn`); a mixed partial is the tensor product of the 1D
    stencils. Evaluation points shared between the requested derivatives (the
    centre, say) are evaluated once, all in one batched call of `fn`.

    The error is `O(h²)` truncation plus `O(eps / h^k)` rounding: with the
    default step `h_i = fd_step(|α|, dtype, scale_i)` both are about
    `eps^(2/(2+k))` relative to the derivative's size, times constants set by
    the function's higher derivatives: for a 4×64 tanh network in float32 about
    3e-4 at order 1, 2e-3 at order 2 and 4e-2 at order 4, in float64 about
    4e-10, 1e-7 and 5e-5 (see `benchmarks/derivatives.py`). Use `Taylor` where
    this matters.

    **Arguments:**

    - `step`: an explicit step `h` (one number, or one per input) that
      overrides the rule.
    - `scale`: each input's range (one number, or one per input), e.g.
      `scale=(1.0, 2.0)` for t ∈ [0, 1], x ∈ [-1, 1].
    """

    step: float | tuple[float, ...] | None = eqx.field(default=None, static=True)
    scale: float | tuple[float, ...] = eqx.field(default=1.0, static=True)

    def _steps(self, order: int, d: int, dtype) -> tuple[float, ...]:
        if self.step is not None:
            return _per_input(self.step, d, "step")
        return tuple(
            fd_step(order, dtype, s) for s in _per_input(self.scale, d, "scale")
        )

    def derivatives(self, fn, x, multi_indices):
        x = check_point(x)
        d = x.shape[0]
        alphas = check_multi_indices(multi_indices, d)
        points: dict[tuple[float, ...], int] = {}
        combos: list[list[tuple[int, float]]] = []
        for alpha in alphas:
            k = sum(alpha)
            h = self._steps(max(k, 1), d, x.dtype)
            terms = [((0.0,) * d, 1.0)]
            for i, a in enumerate(alpha):
                if a == 0:
                    continue
                offs, ws = central_stencil(a)
                terms = [
                    (
                        tuple(
                            p + (o * h[i] if j == i else 0.0) for j, p in enumerate(pt)
                        ),
                        w * wi / h[i] ** a,
                    )
                    for pt, w in terms
                    for o, wi in zip(offs, ws, strict=True)
                ]
            combos.append([(points.setdefault(pt, len(points)), w) for pt, w in terms])
        shifts = jnp.asarray(np.array(list(points), dtype=np.float64), x.dtype)
        values = jax.vmap(fn)(x + shifts)
        return tuple(sum(values[j] * w for j, w in combo) for combo in combos)

    def laplacian(self, fn, x, indices=None):
        x = check_point(x)
        d = x.shape[0]
        idx = check_indices(indices, d)
        h = self._steps(2, d, x.dtype)
        shifts = np.zeros((1 + 2 * len(idx), d))
        for n, i in enumerate(idx):
            shifts[1 + 2 * n, i] = h[i]
            shifts[2 + 2 * n, i] = -h[i]
        values = jax.vmap(fn)(x + jnp.asarray(shifts, x.dtype))
        inv_h2 = jnp.asarray([1.0 / h[i] ** 2 for i in idx], x.dtype)
        pairs = values[1:].reshape(len(idx), 2, *values.shape[1:])
        second = pairs.sum(axis=1) - 2 * values[0]
        inv_h2 = inv_h2.reshape((len(idx),) + (1,) * (second.ndim - 1))
        return jnp.sum(second * inv_h2, axis=0)
