"""Central finite-difference stencils, ghost points and their 1D operators.

Everything here works along one axis of a whole array: a stencil is a sum of
shifted slices, a boundary is a few ghost slices concatenated to each end. The
same ghost weights build the numeric operator matrices that give the exact
Jacobian pattern, so the pattern and the right-hand side cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, Float

from ..derivatives._fd import central_weights

ORDERS = (2, 4, 6)
KINDS = ("periodic", "dirichlet", "neumann")


def _lagrange(nodes: list[int], x: int) -> list[Fraction]:
    out = []
    for j, nj in enumerate(nodes):
        w = Fraction(1)
        for i, ni in enumerate(nodes):
            if i != j:
                w *= Fraction(x - ni, nj - ni)
        out.append(w)
    return out


def _hermite(q: int, x: int) -> list[Fraction]:
    """Weights of `[u_0, ..., u_{q-1}, u'(0)]` giving `p(x)`, where `p` is the
    degree-`q` polynomial through the values with the given slope at 0."""
    rows = [[Fraction(j) ** p for p in range(q + 1)] for j in range(q)]
    rows.append([Fraction(p == 1) for p in range(q + 1)])
    # Solve V^T w = (x^p)_p exactly.
    a = sp.Matrix(rows).T
    b = sp.Matrix([sp.Integer(x) ** p for p in range(q + 1)])
    w = a.LUsolve(b)
    return [Fraction(int(sp.fraction(c)[0]), int(sp.fraction(c)[1])) for c in w]


@dataclass(frozen=True)
class Closure:
    """How one state is padded along one axis.

    Ghost `k` (1 ≤ k ≤ `width`) lies `k` steps outside the first unknown on the
    low side: `sum_j weights[k-1, j] u_j + boundary[k-1] g_lo`; the high side
    mirrors it with `u_{n-1-j}` and `boundary_high` for `g_hi`. Periodic axes
    wrap and have no weights.
    """

    kind: str
    width: int
    weights: np.ndarray  # (width, nodes)
    boundary: np.ndarray  # (width,)
    boundary_high: np.ndarray  # (width,)

    @property
    def nodes(self) -> int:
        return self.weights.shape[1]


def closure(kind: str, width: int, nodes: int, h: float) -> Closure:
    """The ghost rule of a boundary `kind` for `width` ghosts from `nodes`
    unknowns (the polynomial has degree `nodes`).

    - Dirichlet (unknowns at interior points; the boundary lies one step
      outside the first unknown): the polynomial through the boundary value and
      the first `nodes` unknowns.
    - Neumann (the first unknown lies on the boundary): the polynomial through
      the first `nodes` unknowns with slope `g` (du/dx) at the boundary.
    """
    if kind == "periodic" or width == 0:
        empty = np.zeros((width, 0))
        return Closure(kind, width, empty, np.zeros(width), np.zeros(width))
    weights = np.zeros((width, nodes))
    boundary = np.zeros(width)
    for k in range(1, width + 1):
        if kind == "dirichlet":
            w = _lagrange([-1, *range(nodes)], -k)
            boundary[k - 1], weights[k - 1] = float(w[0]), [float(c) for c in w[1:]]
        else:
            w = _hermite(nodes, -k)
            weights[k - 1] = [float(c) for c in w[:-1]]
            boundary[k - 1] = float(w[-1]) * h  # slope in index units is h g
    high = boundary if kind == "dirichlet" else -boundary
    return Closure(kind, width, weights, boundary, high)


def pad(
    u: Float[Array, "..."], axis: int, c: Closure, g_lo=None, g_hi=None
) -> Float[Array, "..."]:
    """Pad `u` along `axis` with `c.width` ghosts on each side (whole-array
    slices; `g_lo`, `g_hi` are the boundary values, `None` meaning zero)."""
    r = c.width
    if r == 0:
        return u
    n = u.shape[axis]

    def take(i: int):
        return jax.lax.slice_in_dim(u, i, i + 1, axis=axis)

    if c.kind == "periodic":
        low = [jax.lax.slice_in_dim(u, n - r, n, axis=axis)]
        high = [jax.lax.slice_in_dim(u, 0, r, axis=axis)]
    else:

        def ghost(k: int, side: int):
            w, b, g = (
                (c.weights[k - 1], c.boundary[k - 1], g_lo)
                if side == 0
                else (c.weights[k - 1], c.boundary_high[k - 1], g_hi)
            )
            terms = [
                float(wj) * take(j if side == 0 else n - 1 - j)
                for j, wj in enumerate(w)
                if wj != 0
            ]
            if g is not None and b != 0:
                terms.append(float(b) * g)
            shape = take(0).shape
            if not terms:
                return jnp.zeros(shape, u.dtype)
            out = sum(terms[1:], terms[0])
            return jnp.broadcast_to(out, shape).astype(u.dtype)

        low = jnp.concatenate([ghost(k, 0) for k in range(r, 0, -1)], axis=axis)
        high = jnp.concatenate([ghost(k, 1) for k in range(1, r + 1)], axis=axis)

        # The ghosts and `u` padded with zeros to the padded length and
        # added (exact): on a grid split over devices
        # (`DiscretizedModel.decompose`) XLA pads each piece by exchanging
        # its edges, where a concatenation made it gather the whole state.
        def widen(a, before: int, after: int):
            config = [(0, 0, 0)] * u.ndim
            config[axis] = (before, after, 0)
            return jax.lax.pad(a, jnp.zeros((), u.dtype), config)

        return widen(u, r, r) + widen(low, 0, n + r) + widen(high, n + r, 0)
    return jnp.concatenate([*low, u, *high], axis=axis)


def apply(
    padded: Float[Array, "..."],
    axis: int,
    width: int,
    n: int,
    derivative: int,
    h,
    order,
) -> Float[Array, "..."]:
    """The `derivative`-th derivative along `axis` of an array padded there by
    `width`, on the `n` unknowns (a crop when `derivative == 0`)."""
    if derivative == 0:
        return jax.lax.slice_in_dim(padded, width, width + n, axis=axis)
    scale = 1.0 / float(h) ** derivative
    terms = [
        (w * scale) * jax.lax.slice_in_dim(padded, width + k, width + k + n, axis=axis)
        for k, w in central_weights(derivative, order)
    ]
    return sum(terms[1:], terms[0])


def operator_pattern(derivative: int, order: int, c: Closure, n: int) -> ssp.csr_matrix:
    """The `(n, n)` boolean pattern of `apply(pad(u))` along one axis: which
    unknowns each stencil reads, directly or through ghost points."""
    if derivative == 0:
        return ssp.identity(n, dtype=bool, format="csr")
    r = c.width
    ghost = ssp.lil_matrix((n + 2 * r, n))
    for i in range(n):
        ghost[r + i, i] = 1.0
    for k in range(1, r + 1):
        if c.kind == "periodic":
            ghost[r - k, (n - k) % n] = 1.0
            ghost[r + n - 1 + k, (k - 1) % n] = 1.0
            continue
        for j, w in enumerate(c.weights[k - 1]):
            if w:
                ghost[r - k, j] += w
                ghost[r + n - 1 + k, n - 1 - j] += w
    stencil = ssp.lil_matrix((n, n + 2 * r))
    for i in range(n):
        for k, w in central_weights(derivative, order):
            stencil[i, r + i + k] += w
    # The structure, not the values: where ghost and stencil weights cancel
    # exactly, floating point leaves round-off, and the evaluated right-hand
    # side still depends on the entry.
    stencil = (stencil.tocsr() != 0).astype(np.int64)
    ghost = (ghost.tocsr() != 0).astype(np.int64)
    return ((stencil @ ghost) != 0).tocsr()
