"""Compressed (coloured) Jacobians: one JVP per colour, decompressed to the
non-zeros of the pattern."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.experimental.sparse as jsparse
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import scipy.sparse as ssp
from jaxtyping import Array, ArrayLike, Float, Int

from .._errors import SparsityError
from ._coloring import _as_pattern

__all__ = ["SparseJacobian", "compressed_jacobian", "StaticIndices"]


class StaticIndices:
    """A read-only integer numpy array that can be a static field of an
    equinox module (hashable, compared by value)."""

    __slots__ = ("array", "_hash")

    def __init__(self, array: ArrayLike):
        array = np.array(array, dtype=np.int64)
        array.setflags(write=False)
        self.array = array
        self._hash = hash((array.shape, array.tobytes()))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StaticIndices)
            and self._hash == other._hash
            and np.array_equal(self.array, other.array)
        )

    def __repr__(self) -> str:
        return f"StaticIndices(len={self.array.size})"


class SparseJacobian(eqx.Module):
    """A sparse matrix with a static pattern and traced values (COO, sorted by
    row then column).

    **Attributes:**

    - `data`: the non-zero values, one per entry of the pattern.
    - `rows`, `cols`: the static row and column indices (numpy arrays).
    - `shape`: the static `(m, n)` shape.
    """

    data: Float[Array, " nnz"]
    _rows: StaticIndices = eqx.field(static=True)
    _cols: StaticIndices = eqx.field(static=True)
    shape: tuple[int, int] = eqx.field(static=True)

    @property
    def rows(self) -> Int[np.ndarray, " nnz"]:
        return self._rows.array

    @property
    def cols(self) -> Int[np.ndarray, " nnz"]:
        return self._cols.array

    def todense(self) -> Float[Array, "m n"]:
        """The dense `(m, n)` matrix."""
        out = jnp.zeros(self.shape, self.data.dtype)
        return out.at[self.rows, self.cols].set(self.data)

    def to_scipy(self) -> ssp.csr_matrix:
        """A `scipy.sparse.csr_matrix` (host only: not under `jit`)."""
        return ssp.csr_matrix(
            (np.asarray(self.data), (self.rows, self.cols)), shape=self.shape
        )

    def to_bcoo(self) -> jsparse.BCOO:
        """A `jax.experimental.sparse.BCOO` matrix."""
        indices = jnp.asarray(np.stack([self.rows, self.cols], axis=1))
        return jsparse.BCOO(
            (self.data, indices),
            shape=self.shape,
            indices_sorted=True,
            unique_indices=True,
        )

    def matvec(self, v: Float[Array, " n"]) -> Float[Array, " m"]:
        """The product `J @ v`."""
        return jax.ops.segment_sum(
            self.data * v[self.cols],
            jnp.asarray(self.rows),
            num_segments=self.shape[0],
            indices_are_sorted=True,
        )

    def rmatvec(self, w: Float[Array, " m"]) -> Float[Array, " n"]:
        """The product `J.T @ w`."""
        return jax.ops.segment_sum(
            self.data * w[self.rows], jnp.asarray(self.cols), num_segments=self.shape[1]
        )


def seed_matrix(colors: Int[np.ndarray, " n"], dtype: Any) -> np.ndarray:
    """The `(ncolors, n)` seeds: row `c` is the sum of the unit vectors of the
    columns of colour `c`."""
    ncolors = int(colors.max()) + 1 if colors.size else 0
    seeds = np.zeros((ncolors, colors.size), dtype=dtype)
    seeds[colors, np.arange(colors.size)] = 1
    return seeds


def _check_colors(colors: Any, n: int) -> np.ndarray:
    colors = np.asarray(colors)
    if colors.shape != (n,) or not np.issubdtype(colors.dtype, np.integer):
        raise SparsityError(
            f"`colors` must be an integer array of length {n} (one colour per "
            f"column of `pattern`), got shape {colors.shape} and dtype "
            f"{colors.dtype}; use `color_columns(pattern)`."
        )
    if colors.size and colors.min() < 0:
        raise SparsityError("`colors` must be non-negative; use `color_columns`.")
    return colors.astype(np.int64)


def compressed_jacobian(
    fn: Callable,
    x: Float[ArrayLike, "..."],
    pattern: Any,
    colors: Int[np.ndarray, " n"],
    *args: Any,
) -> SparseJacobian:
    """The Jacobian of `fn` at `x` by one JVP per colour.

    The JVPs are batched with `vmap` over the seed matrix and the compressed
    result is decompressed to the non-zeros of `pattern`. The function is
    jit-able (with `pattern` and `colors` closed over) and differentiable.

    **Arguments:**

    - `fn`: a function `fn(x, *args)` returning an array or a pytree of arrays
        (flattened and concatenated, as in `jacobian_sparsity`).
    - `x`: the point (a floating array; flattened in row-major order).
    - `pattern`: the `(m, x.size)` pattern, e.g. from `jacobian_sparsity`; it
        must contain every non-zero of the Jacobian.
    - `colors`: a valid column colouring of `pattern`, from `color_columns`.
    - `*args`: extra arguments to `fn`.

    **Returns:**

    A [`SparseJacobian`][symml.sparsity.SparseJacobian] with one value per
    entry of `pattern`.
    """
    pattern = _as_pattern(pattern, "pattern")
    x = jnp.asarray(x)
    out_struct = jax.eval_shape(fn, x, *args)
    m = sum(math.prod(leaf.shape) for leaf in jtu.tree_leaves(out_struct))
    if pattern.shape != (m, x.size):
        raise SparsityError(
            f"`pattern` has shape {pattern.shape} but `fn` maps {x.size} inputs to "
            f"{m} outputs, so it must have shape {(m, x.size)}; recompute it with "
            "`jacobian_sparsity(fn, x, *args)`."
        )
    colors = _check_colors(colors, x.size)
    coo = pattern.tocoo()
    # Two columns of one colour sharing a row would be summed into one entry:
    # a silently wrong Jacobian, so an invalid colouring is an error.
    keys = coo.row.astype(np.int64) * (int(colors.max(initial=0)) + 1) + colors[coo.col]
    if len(np.unique(keys)) != len(keys):
        raise SparsityError(
            "`colors` is not a valid column colouring of `pattern`: two columns of "
            "one colour have non-zeros in the same row, so their derivatives would "
            "be summed. Colour the pattern with `color_columns(pattern)`."
        )
    order = np.lexsort((coo.col, coo.row))
    rows, cols = coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)

    def flat_fn(xf):
        out = fn(xf.reshape(x.shape), *args)
        return jnp.concatenate([jnp.ravel(leaf) for leaf in jtu.tree_leaves(out)])

    seeds = jnp.asarray(seed_matrix(colors, x.dtype))
    xf = x.ravel()
    compressed = jax.vmap(lambda s: jax.jvp(flat_fn, (xf,), (s,))[1])(seeds)
    data = compressed[colors[cols], rows]
    return SparseJacobian(
        data, StaticIndices(rows), StaticIndices(cols), (m, int(x.size))
    )
