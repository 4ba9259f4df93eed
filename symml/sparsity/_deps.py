"""Dependency sets of the elements of one array, and the operations rules use.

A [`DependencySets`][symml.sparsity.DependencySets] holds, for every element of
an intermediate array (flattened in row-major order), the set of input elements
it depends on to first order (`jac`, a boolean CSR matrix of shape
`(size, n)`), and, when Hessian patterns are wanted, the set of input pairs
`(i, j)` with a non-zero second derivative (`hess`, a boolean CSR matrix of
shape `(size, n * n)`, column `i * n + j`). Arrays that do not depend on the
input at all are represented by `None` rather than by empty sets, so that rules
can skip them cheaply.

All operations return new objects: sets are never modified in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as ssp

__all__ = [
    "DependencySets",
    "take",
    "left_multiply",
    "union",
    "with_self_pairs",
    "with_cross_pairs",
    "index_matrix",
]


def _csr(indptr, indices, shape) -> ssp.csr_matrix:
    data = np.ones(len(indices), dtype=bool)
    out = ssp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    return out


def _take_rows(mat: ssp.csr_matrix, idx: np.ndarray) -> ssp.csr_matrix:
    """Rows `mat[idx]`, with an empty row wherever `idx < 0`."""
    idx = np.asarray(idx, dtype=np.int64).ravel()
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    counts = np.diff(mat.indptr)[safe] * valid
    indptr = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    total = int(indptr[-1])
    starts = mat.indptr[safe]
    positions = np.repeat(starts - indptr[:-1], counts) + np.arange(total)
    return _csr(indptr, mat.indices[positions], (len(idx), mat.shape[1]))


def index_matrix(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> ssp.csr_matrix:
    """A boolean CSR matrix with `True` at `(rows[k], cols[k])`.

    **Arguments:**

    - `rows`, `cols`: integer arrays of equal length.
    - `shape`: the matrix shape.

    **Returns:**

    The matrix, with duplicates merged.
    """
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    mat = ssp.csr_matrix(
        (np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape, dtype=bool
    )
    mat.sum_duplicates()
    return mat


class DependencySets:
    """First- (and optionally second-) order dependency sets of an array.

    **Arguments:**

    - `jac`: boolean CSR matrix `(size, n)`; row `k` is the set of inputs that
        element `k` depends on.
    - `hess`: boolean CSR matrix `(size, n * n)` of input pairs with a non-zero
        second derivative, or `None` when only Jacobian patterns are tracked.
    """

    __slots__ = ("jac", "hess")

    def __init__(self, jac: ssp.csr_matrix, hess: ssp.csr_matrix | None = None):
        self.jac = jac
        self.hess = hess

    @property
    def size(self) -> int:
        return self.jac.shape[0]

    @property
    def n(self) -> int:
        return self.jac.shape[1]

    def __repr__(self) -> str:
        hess = "" if self.hess is None else f", hess_nnz={self.hess.nnz}"
        return f"DependencySets(size={self.size}, n={self.n}, nnz={self.jac.nnz}{hess})"


def take(deps: DependencySets | None, idx: np.ndarray) -> DependencySets | None:
    """Element `k` of the result has the sets of element `idx[k]` of `deps`
    (none when `idx[k] < 0`)."""
    if deps is None:
        return None
    hess = None if deps.hess is None else _take_rows(deps.hess, idx)
    return DependencySets(_take_rows(deps.jac, idx), hess)


def left_multiply(
    mat: ssp.csr_matrix, deps: DependencySets | None
) -> DependencySets | None:
    """Element `r` of the result has the union of the sets of every element `c`
    of `deps` with `mat[r, c]` true: the sets of a linear map with pattern
    `mat`."""
    if deps is None:
        return None
    jac = (mat @ deps.jac).tocsr()
    hess = None if deps.hess is None else (mat @ deps.hess).tocsr()
    return DependencySets(jac, hess)


def _or(a: ssp.csr_matrix | None, b: ssp.csr_matrix | None) -> ssp.csr_matrix | None:
    if a is None:
        return b
    if b is None or b.nnz == 0:
        return a
    if a.nnz == 0:
        return b
    return (a + b).tocsr()


def union(items: Sequence[DependencySets | None]) -> DependencySets | None:
    """Elementwise union of dependency sets of arrays of the same size."""
    present = [d for d in items if d is not None]
    if not present:
        return None
    jac, hess = present[0].jac, present[0].hess
    for d in present[1:]:
        jac = _or(jac, d.jac)
        hess = _or(hess, d.hess)
    return DependencySets(jac, hess)


def _outer_rows(a: ssp.csr_matrix, b: ssp.csr_matrix) -> ssp.csr_matrix:
    """Row `r` holds every pair `(i, j)` (as `i * n + j`, both orders) with `i`
    in row `r` of `a` and `j` in row `r` of `b`."""
    n = a.shape[1]
    ca = np.diff(a.indptr)
    cb = np.diff(b.indptr)
    cnt = ca * cb
    total = int(cnt.sum())
    rows = np.repeat(np.arange(a.shape[0]), cnt)
    offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    cb_rep = np.repeat(cb, cnt)
    ia = a.indices[np.repeat(a.indptr[:-1], cnt) + offsets // np.maximum(cb_rep, 1)]
    ib = b.indices[np.repeat(b.indptr[:-1], cnt) + offsets % np.maximum(cb_rep, 1)]
    ia = ia.astype(np.int64)
    ib = ib.astype(np.int64)
    return index_matrix(
        np.concatenate([rows, rows]),
        np.concatenate([ia * n + ib, ib * n + ia]),
        (a.shape[0], n * n),
    )


def with_self_pairs(deps: DependencySets | None) -> DependencySets | None:
    """The sets of a nonlinear elementwise function of `deps`: every pair of
    inputs an element depends on interacts."""
    if deps is None or deps.hess is None:
        return deps
    return DependencySets(deps.jac, _or(deps.hess, _outer_rows(deps.jac, deps.jac)))


def with_cross_pairs(
    out: DependencySets | None,
    a: DependencySets | None,
    b: DependencySets | None,
) -> DependencySets | None:
    """Add to `out` the pairs of a product `a * b` (elementwise, same size):
    every input of `a` interacts with every input of `b`."""
    if out is None or out.hess is None or a is None or b is None:
        return out
    return DependencySets(out.jac, _or(out.hess, _outer_rows(a.jac, b.jac)))
