"""Dependency sets of the elements of one array, and the operations rules use.

A [`DependencySets`][symml.sparsity.DependencySets] holds, for every element of
an intermediate array (flattened in row-major order), the set of input elements
it depends on to first order (`jac`, a boolean CSR matrix of shape
`(size, n)`), and, when Hessian patterns are wanted, the set of unordered input
pairs `{i, j}` with a non-zero second derivative (`hess`, a boolean CSR matrix
of shape `(size, n * n)`, the pair stored once as column `i * n + j` with
`i <= j`). Arrays that do not depend on the input at all are represented by
`None` rather than by empty sets, so that rules can skip them cheaply.

Internally the sets are one sorted array of integer keys per array (`_Sets`),
and every operation is a few numpy calls that cost time proportional to the
number of entries, never to the number of columns: scipy's sparse products
and sums allocate a workspace as wide as the matrix, which for pairs is `n²`
(a Hessian pattern at `n = 16384` spent 96 % of its time and 1.7 GB there).
All operations return new objects: sets are never modified in place.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as ssp

from .._errors import SparsityError

__all__ = [
    "DependencySets",
    "take",
    "left_multiply",
    "union",
    "with_self_pairs",
    "with_cross_pairs",
    "index_matrix",
]

_INT = np.int64


def _bits(n: int) -> int:
    """Bits for an index in `[0, n)`."""
    return max(int(n - 1).bit_length(), 1)


@functools.lru_cache(maxsize=64)
def _arange(size: int) -> np.ndarray:
    """`0, ..., size - 1`, shared (read-only): the row pointers of sets with one
    entry per row."""
    out = np.arange(size, dtype=_INT)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _row_keys(size: int, shift: int) -> np.ndarray:
    """`row << shift` for every row, shared (read-only)."""
    out = _arange(size) << shift
    out.flags.writeable = False
    return out


def _dedupe_sorted(keys: np.ndarray) -> np.ndarray:
    if len(keys) < 2:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys if keep.all() else keys[keep]


class _Sets:
    """One set of integers in `[0, 2**shift)` per row, as ONE sorted array of
    unique keys `row << shift | col`.

    A union is then a merge of sorted arrays and a copy of row `r` to row `s`
    adds `(s - r) << shift`: every operation is a few numpy calls over the
    entries, with shifts and masks instead of divisions.
    """

    __slots__ = ("keys", "size", "shift", "_indptr")

    def __init__(self, keys: np.ndarray, size: int, shift: int):
        self.keys = keys
        self.size = size
        self.shift = shift
        self._indptr = None

    @classmethod
    def empty(cls, size: int, shift: int) -> _Sets:
        return cls(np.zeros(0, _INT), size, shift)

    @classmethod
    def identity(cls, n: int) -> _Sets:
        shift = _bits(n)
        _check_room(n, shift)
        iota = np.arange(n, dtype=_INT)
        return cls((iota << shift) | iota, n, shift)

    @classmethod
    def from_pairs(cls, rows, cols, size: int, shift: int) -> _Sets:
        """From unsorted `(row, col)` entries, duplicates allowed."""
        rows = np.asarray(rows, dtype=_INT).ravel()
        cols = np.asarray(cols, dtype=_INT).ravel()
        return cls(_dedupe_sorted(np.sort((rows << shift) | cols)), size, shift)

    @property
    def nnz(self) -> int:
        return len(self.keys)

    @property
    def cols(self) -> np.ndarray:
        return self.keys & ((1 << self.shift) - 1)

    @property
    def rows(self) -> np.ndarray:
        return self.keys >> self.shift

    @property
    def indptr(self) -> np.ndarray:
        if self._indptr is None:
            bounds = np.arange(self.size + 1, dtype=_INT) << self.shift
            self._indptr = np.searchsorted(self.keys, bounds)
        return self._indptr

    def to_scipy(self, width: int, cols: np.ndarray | None = None) -> ssp.csr_matrix:
        cols = self.cols if cols is None else cols
        data = np.ones(self.nnz, dtype=bool)
        indptr = self.indptr
        if not indptr.flags.writeable:  # shared row pointers: the caller's own copy
            indptr = indptr.copy()
        return ssp.csr_matrix((data, cols, indptr), shape=(self.size, width))

    def gather(
        self, idx: np.ndarray, nonneg: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(counts, positions)`: how many entries rows `idx` have (none where
        `idx < 0`; `nonneg` says there is no such index), and where they are in
        `keys`, concatenated."""
        negative = not nonneg and len(idx) and idx.min() < 0
        if self.nnz == self.size:  # one entry per row: row `r` is entry `r`
            if negative:
                valid = idx >= 0
                return valid.astype(_INT), idx[valid]
            return np.ones(len(idx), _INT), idx
        indptr = self.indptr
        if negative:
            valid = idx >= 0
            safe = np.where(valid, idx, 0)
            starts = indptr[safe]
            counts = (indptr[safe + 1] - starts) * valid
        else:
            starts = indptr[idx]
            counts = indptr[idx + 1] - starts
        total = int(counts.sum())
        if total == len(idx) and (total == 0 or counts.min() == 1):
            return counts, starts  # one entry per row
        ends = np.cumsum(counts)
        offsets = np.repeat(starts - ends + counts, counts)
        return counts, np.arange(total, dtype=_INT) + offsets

    def take(self, idx, nonneg: bool = False) -> _Sets:
        """Row `k` of the result is row `idx[k]` (empty where `idx[k] < 0`;
        `nonneg` says there is no such index)."""
        idx = np.asarray(idx, dtype=_INT).ravel()
        _check_room(len(idx), self.shift)
        if nonneg and self.nnz == self.size:  # one entry per row, none dropped
            cols = self.keys[idx] & ((1 << self.shift) - 1)
            out = _Sets(cols + _row_keys(len(idx), self.shift), len(idx), self.shift)
            out._indptr = _arange(len(idx) + 1)
            return out
        counts, positions = self.gather(idx, nonneg)
        moves = (np.arange(len(idx), dtype=_INT) - idx) << self.shift
        if len(positions) == len(idx):  # one entry per row, none dropped
            out = _Sets(self.keys[positions] + moves, len(idx), self.shift)
            out._indptr = _arange(len(idx) + 1)
            return out
        out = _Sets(
            self.keys[positions] + np.repeat(moves, counts), len(idx), self.shift
        )
        indptr = np.zeros(len(idx) + 1, dtype=_INT)
        np.cumsum(counts, out=indptr[1:])
        out._indptr = indptr
        return out

    def take_range(self, lo: int, hi: int) -> _Sets:
        """Rows `lo, ..., hi - 1`: a contiguous run of keys, moved up."""
        shift = self.shift
        if self.nnz == self.size:  # one entry per row: row `r` is entry `r`
            out = _Sets(self.keys[lo:hi] - (lo << shift), hi - lo, shift)
            out._indptr = _arange(hi - lo + 1)
            return out
        indptr = self.indptr
        start = int(indptr[lo])
        out = _Sets(self.keys[start : indptr[hi]] - (lo << shift), hi - lo, shift)
        out._indptr = indptr[lo : hi + 1] - start
        return out

    def left_multiply(self, mat) -> _Sets:
        """Row `r` is the union of rows `c` with `mat[r, c]` true."""
        mat = ssp.csr_matrix(mat)
        _check_room(mat.shape[0], self.shift)
        r = np.repeat(np.arange(mat.shape[0], dtype=_INT), np.diff(mat.indptr))
        counts, positions = self.gather(mat.indices.astype(_INT))
        cols = self.keys[positions] & ((1 << self.shift) - 1)
        return _Sets.from_pairs(np.repeat(r, counts), cols, mat.shape[0], self.shift)

    def collapse(self) -> np.ndarray:
        """The union of all rows, sorted."""
        return np.unique(self.cols)

    def repeated(self, size: int) -> _Sets:
        """`size` rows, each the union of all rows."""
        every = self.collapse()
        _check_room(size, self.shift)
        rows = np.arange(size, dtype=_INT) << self.shift
        return _Sets((rows[:, None] | every[None, :]).ravel(), size, self.shift)


def _check_room(size: int, shift: int) -> None:
    if int(size).bit_length() + shift > 62:
        raise SparsityError(
            f"Dependency sets of {size} elements over 2**{shift} columns do not fit "
            "in 64-bit keys; the input is too large for this pattern (split `x`)."
        )


def _union_sets(items: Sequence[_Sets]) -> _Sets:
    present = [s for s in items if s.nnz]
    if not present:
        return items[0]
    first = present[0]
    if all(s is first for s in present[1:]):
        return first
    # Each input's keys are sorted: a stable sort merges the runs in linear time.
    keys = np.sort(np.concatenate([s.keys for s in present]), kind="stable")
    return _Sets(_dedupe_sorted(keys), first.size, first.shift)


def _vstack_sets(items: Sequence[_Sets]) -> _Sets:
    keys, offset = [], 0
    shift = items[0].shift
    for s in items:
        keys.append(s.keys + (offset << shift) if offset else s.keys)
        offset += s.size
    _check_room(offset, shift)
    return _Sets(np.concatenate(keys), offset, shift)


def _outer_pairs(
    a: _Sets,
    a_idx: np.ndarray,
    b: _Sets,
    b_idx: np.ndarray,
    out_idx: np.ndarray,
    size: int,
) -> _Sets:
    """For every term `t`, the pairs `{i, j}` with `i` in row `a_idx[t]` of `a`
    and `j` in row `b_idx[t]` of `b`, in row `out_idx[t]` of a result of `size`
    rows; a pair is the key `min(i, j) << s | max(i, j)` (`s = a.shift`)."""
    s = a.shift
    ca, pa = a.gather(a_idx)
    cb, pb = b.gather(b_idx)
    cnt = ca * cb
    total = int(cnt.sum())
    if total == 0:
        return _Sets.empty(size, 2 * s)
    term = np.repeat(np.arange(len(cnt), dtype=_INT), cnt)
    offsets = np.arange(total, dtype=_INT) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    cb_t = np.maximum(cb[term], 1)
    start_a = np.cumsum(ca) - ca
    start_b = np.cumsum(cb) - cb
    mask = (1 << s) - 1
    i = a.keys[pa[start_a[term] + offsets // cb_t]] & mask
    j = b.keys[pb[start_b[term] + offsets % cb_t]] & mask
    pairs = (np.minimum(i, j) << s) | np.maximum(i, j)
    _check_room(size, 2 * s)
    return _Sets.from_pairs(out_idx[term], pairs, size, 2 * s)


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

    - `jac`: boolean sparse matrix `(size, n)`; row `k` is the set of inputs
        that element `k` depends on.
    - `hess`: boolean sparse matrix `(size, n * n)` of input pairs with a
        non-zero second derivative (column `i * n + j`; either order is
        accepted, each pair is kept once with `i <= j`), or `None` when only
        Jacobian patterns are tracked.
    """

    __slots__ = ("_jac", "_hess", "n")

    def __init__(self, jac, hess=None, *, _n: int | None = None):
        if isinstance(jac, _Sets):
            self._jac, self.n = jac, _n
        else:
            jac = ssp.csr_matrix(jac, dtype=bool)
            jac.eliminate_zeros()
            self.n = jac.shape[1]
            rows = np.repeat(np.arange(jac.shape[0], dtype=_INT), np.diff(jac.indptr))
            self._jac = _Sets.from_pairs(rows, jac.indices, jac.shape[0], _bits(self.n))
        if hess is not None and not isinstance(hess, _Sets):
            hess = ssp.csr_matrix(hess, dtype=bool)
            hess.eliminate_zeros()
            n, s = self.n, self._jac.shift
            rows = np.repeat(np.arange(hess.shape[0], dtype=_INT), np.diff(hess.indptr))
            i, j = hess.indices.astype(_INT) // n, hess.indices.astype(_INT) % n
            pairs = (np.minimum(i, j) << s) | np.maximum(i, j)
            hess = _Sets.from_pairs(rows, pairs, hess.shape[0], 2 * s)
        self._hess = hess

    def _new(self, jac: _Sets, hess: _Sets | None) -> DependencySets:
        return DependencySets(jac, hess, _n=self.n)

    @property
    def jac(self) -> ssp.csr_matrix:
        return self._jac.to_scipy(self.n)

    @property
    def hess(self) -> ssp.csr_matrix | None:
        if self._hess is None:
            return None
        pairs, s = self._hess.cols, self._jac.shift
        cols = (pairs >> s) * self.n + (pairs & ((1 << s) - 1))
        return self._hess.to_scipy(self.n * self.n, cols)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All second-order pairs `(i, j)`, `i <= j`, over every element."""
        s = self._jac.shift
        keys = np.unique(self._hess.cols)
        return keys >> s, keys & ((1 << s) - 1)

    @property
    def size(self) -> int:
        return self._jac.size

    def __repr__(self) -> str:
        hess = "" if self._hess is None else f", hess_nnz={self._hess.nnz}"
        return (
            f"DependencySets(size={self.size}, n={self.n}, nnz={self._jac.nnz}{hess})"
        )


def take(
    deps: DependencySets | None, idx: np.ndarray, *, nonneg: bool = False
) -> DependencySets | None:
    """Element `k` of the result has the sets of element `idx[k]` of `deps`
    (none when `idx[k] < 0`; `nonneg=True` promises there is no such index)."""
    if deps is None:
        return None
    idx = np.asarray(idx, dtype=_INT).ravel()
    hess = None if deps._hess is None else deps._hess.take(idx, nonneg)
    return deps._new(deps._jac.take(idx, nonneg), hess)


def _take_range(deps: DependencySets | None, lo: int, hi: int) -> DependencySets | None:
    """`take(deps, np.arange(lo, hi))`, without the index array."""
    if deps is None:
        return None
    if lo == 0 and hi == deps.size:
        return deps
    hess = None if deps._hess is None else deps._hess.take_range(lo, hi)
    return deps._new(deps._jac.take_range(lo, hi), hess)


def left_multiply(mat, deps: DependencySets | None) -> DependencySets | None:
    """Element `r` of the result has the union of the sets of every element `c`
    of `deps` with `mat[r, c]` true: the sets of a linear map with pattern
    `mat` (a scipy sparse matrix or numpy array)."""
    if deps is None:
        return None
    mat = ssp.csr_matrix(mat, dtype=bool)
    hess = None if deps._hess is None else deps._hess.left_multiply(mat)
    return deps._new(deps._jac.left_multiply(mat), hess)


def union(items: Sequence[DependencySets | None]) -> DependencySets | None:
    """Elementwise union of dependency sets of arrays of the same size."""
    present = [d for d in items if d is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    jac = _union_sets([d._jac for d in present])
    hess = None
    if present[0]._hess is not None:
        hess = _union_sets([d._hess for d in present])
    return present[0]._new(jac, hess)


def _with_pairs(deps: DependencySets, pairs: _Sets) -> DependencySets:
    if not pairs.nnz:
        return deps
    return deps._new(deps._jac, _union_sets([deps._hess, pairs]))


def with_self_pairs(deps: DependencySets | None) -> DependencySets | None:
    """The sets of a nonlinear elementwise function of `deps`: every pair of
    inputs an element depends on interacts."""
    if deps is None or deps._hess is None:
        return deps
    iota = np.arange(deps.size, dtype=_INT)
    return _with_pairs(
        deps, _outer_pairs(deps._jac, iota, deps._jac, iota, iota, deps.size)
    )


def with_cross_pairs(
    out: DependencySets | None,
    a: DependencySets | None,
    b: DependencySets | None,
) -> DependencySets | None:
    """Add to `out` the pairs of a product `a * b` (elementwise, same size):
    every input of `a` interacts with every input of `b`."""
    if out is None or out._hess is None or a is None or b is None:
        return out
    iota = np.arange(out.size, dtype=_INT)
    return _with_pairs(out, _outer_pairs(a._jac, iota, b._jac, iota, iota, out.size))
