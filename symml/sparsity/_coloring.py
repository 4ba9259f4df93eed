"""Colourings of sparsity patterns, for compressed Jacobians and Hessians.

- Column colouring (`color_columns`, forward mode): columns sharing a row get
  different colours; one JVP per colour.
- Row colouring (`color_rows`, reverse mode): rows sharing a column get
  different colours; one VJP per colour.
- Star colouring (`color_star`, symmetric Hessians): a distance-1 colouring in
  which every path on four vertices uses at least three colours (Gebremedhin,
  Manne & Pothen, *SIAM Review* 2005); every non-zero of a symmetric matrix is
  then read directly from one Hessian-vector product per colour, usually with
  far fewer colours than a column colouring.

Each has a validator (`check_coloring`, `check_row_coloring`,
`check_star_coloring`) that checks the property the decompression needs.

The greedy column colouring never forms the column intersection graph. It
runs in scipy's compiled grouping of columns (Curtis, Powell & Reid: colour
class by colour class, each column in order joining the class if none of its
rows is taken yet, which gives exactly the colouring of the vertex-by-vertex
greedy in the same order) when the colours are known to be few enough for its
cost, `colours × (columns + non-zeros)`, to stay small; otherwise, or without
it, it walks the bipartite graph (column → rows → the colours already used
there) in Python with one integer per row as a bit set of the colours in that
row, a few operations per non-zero.
"""

from __future__ import annotations

import heapq
from functools import reduce
from operator import or_

import numpy as np
import scipy.sparse as ssp
from jaxtyping import Int

from .._errors import SparsityError

try:  # scipy's compiled column grouping (what `least_squares` uses)
    from scipy.optimize._group_columns import group_sparse as _group_sparse
except ImportError:  # a private module: the Python loop does the same
    _group_sparse = None

__all__ = [
    "check_coloring",
    "check_row_coloring",
    "check_star_coloring",
    "color_columns",
    "color_rows",
    "color_star",
]

_ORDERINGS = ("largest_first", "smallest_last", "natural", "dsatur")


def _as_pattern(pattern, name: str) -> ssp.csr_matrix:
    # scipy would read a 1-D array as one row: a pattern is always 2-D.
    if isinstance(pattern, np.ndarray) and pattern.ndim != 2:
        raise SparsityError(
            f"`{name}` must be a 2D boolean array of shape (outputs, inputs); got an "
            f"array of shape {pattern.shape}. Pass the result of `jacobian_sparsity`."
        )
    if isinstance(pattern, np.ndarray) or ssp.issparse(pattern):
        mat = ssp.csr_matrix(pattern, dtype=bool)
        if mat.ndim == 2:
            mat.eliminate_zeros()
            return mat
    raise SparsityError(
        f"`{name}` must be a 2D boolean array or scipy sparse matrix, got "
        f"{type(pattern).__name__}; pass the result of `jacobian_sparsity`."
    )


def _check_ordering(ordering: str, allowed: tuple[str, ...]) -> None:
    if ordering not in allowed:
        raise SparsityError(f"`ordering` must be one of {allowed}, got {ordering!r}.")


# ------------------------------------------------------------- column colouring


def _conflict_graph(pattern: ssp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency (CSR `indptr`, `indices`) of the column intersection graph:
    columns `i != j` are adjacent when some row has non-zeros in both."""
    csc = pattern.tocsc().astype(np.int32)
    gram = (csc.T @ csc).tocsr()
    gram.setdiag(0)
    gram.eliminate_zeros()
    return gram.indptr, gram.indices


def _smallest_last(indptr: np.ndarray, indices: np.ndarray) -> list[int]:
    n = len(indptr) - 1
    degree = np.diff(indptr).tolist()
    buckets: list[set[int]] = [set() for _ in range(max(degree, default=0) + 1)]
    for v, d in enumerate(degree):
        buckets[d].add(v)
    removed = [False] * n
    order = []
    low = 0
    for _ in range(n):
        low = max(low - 1, 0)
        while not buckets[low]:
            low += 1
        v = buckets[low].pop()
        removed[v] = True
        order.append(v)
        for u in indices[indptr[v] : indptr[v + 1]].tolist():
            if not removed[u]:
                buckets[degree[u]].discard(u)
                degree[u] -= 1
                buckets[degree[u]].add(u)
    return order[::-1]


def _dsatur(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    n = len(indptr) - 1
    neighbours = [a.tolist() for a in np.split(indices, indptr[1:-1])]
    degree = np.diff(indptr).tolist()
    colors = [-1] * n
    seen: list[set[int]] = [set() for _ in range(n)]
    heap = [(0, -degree[v], v) for v in range(n)]
    heapq.heapify(heap)
    while heap:
        neg_sat, _, v = heapq.heappop(heap)
        if colors[v] >= 0 or -neg_sat != len(seen[v]):
            continue
        c = 0
        while c in seen[v]:
            c += 1
        colors[v] = c
        for u in neighbours[v]:
            if colors[u] < 0 and c not in seen[u]:
                seen[u].add(c)
                heapq.heappush(heap, (-len(seen[u]), -degree[u], u))
    return np.asarray(colors, dtype=np.int64)


def _greedy_columns(csc: ssp.csc_matrix, order, paths=None) -> np.ndarray:
    """Greedy colouring of the columns of `csc` in `order`: each column takes
    the smallest colour not yet used in any of its rows. `paths`: `_paths(csc)`
    if known."""
    n = csc.shape[1]
    if _group_sparse is not None and n:
        paths = _paths(csc) if paths is None else paths
        # At most `1 + max paths` colours; compiled work per colour is about
        # 1/50 of the Python loop's work per non-zero (Brusselator N = 32:
        # 0.11 ms against 1.3 ms).
        colours = 1 + int(paths.max())
        if colours * (n + csc.nnz) <= 50 * csc.nnz + 10**6:
            order = np.asarray(order, dtype=np.intp)
            permuted = csc[:, order]
            groups = _group_sparse(
                csc.shape[0],
                n,
                permuted.indices.astype(np.int32, copy=False),
                permuted.indptr.astype(np.int32, copy=False),
            )
            out = np.empty(n, dtype=np.int64)
            out[order] = groups
            return out
    order = order.tolist() if isinstance(order, np.ndarray) else order
    indptr, rows = csc.indptr.tolist(), csc.indices.tolist()
    used = [0] * csc.shape[0]  # bit set of the colours in each row
    bits = [0] * csc.shape[1]
    for v in order:
        mine = rows[indptr[v] : indptr[v + 1]]
        taken = 0
        for r in mine:
            taken |= used[r]
        bit = ~taken & (taken + 1)  # the lowest colour not taken
        bits[v] = bit
        for r in mine:
            used[r] |= bit
    return np.fromiter((b.bit_length() - 1 for b in bits), np.int64, len(bits))


def _paths(csc: ssp.csc_matrix) -> np.ndarray:
    """Per column, its number of (column, row, other column) paths: a cheap
    upper bound of its degree in the column intersection graph."""
    row_len = np.bincount(csc.indices, minlength=csc.shape[0])
    paths = np.zeros(csc.shape[1], dtype=np.int64)
    nonempty = np.diff(csc.indptr) > 0
    if csc.nnz:
        sums = np.add.reduceat(row_len[csc.indices] - 1, csc.indptr[:-1][nonempty])
        paths[nonempty] = sums
    return paths


def _largest_first(paths: np.ndarray) -> np.ndarray:
    """Columns by decreasing number of paths (`_paths`); ties by index."""
    return np.argsort(-paths, kind="stable")


def color_columns(pattern, *, ordering: str = "largest_first") -> Int[np.ndarray, " n"]:
    """Colour the columns of a sparsity pattern for compressed forward mode.

    Two columns share a colour only if no row has a non-zero in both, so one
    Jacobian-vector product per colour (seeded with the sum of that colour's
    unit vectors) recovers every non-zero. Colouring is greedy.

    **Arguments:**

    - `pattern`: an `(m, n)` boolean scipy sparse matrix or numpy array, e.g.
        from [`jacobian_sparsity`][symml.sparsity.jacobian_sparsity].
    - `ordering`: the vertex order of the greedy colouring:
        `"largest_first"` (the default, as in SparseMatrixColorings.jl and
        asdex), `"smallest_last"`, `"natural"`, `"dsatur"` (often one or two
        colours fewer, but much slower), or `"best"` (run the first three and
        keep the colouring with fewest colours).

    **Returns:**

    An integer numpy array of length `n`, colours numbered from 0.
    """
    pattern = _as_pattern(pattern, "pattern")
    _check_ordering(ordering, ("best", *_ORDERINGS))
    n = pattern.shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    csc = pattern.tocsc()
    csc.sort_indices()
    candidates = _ORDERINGS[:3] if ordering == "best" else (ordering,)
    best = None
    for name in candidates:
        if name == "largest_first":
            paths = _paths(csc)
            colors = _greedy_columns(csc, _largest_first(paths), paths)
        elif name == "natural":
            colors = _greedy_columns(csc, range(n))
        elif name == "smallest_last":
            order = _smallest_last(*_conflict_graph(pattern))
            colors = _greedy_columns(csc, order)
        else:
            colors = _dsatur(*_conflict_graph(pattern))
        if best is None or colors.max() < best.max():
            best = colors
    return best


def color_rows(pattern, *, ordering: str = "largest_first") -> Int[np.ndarray, " m"]:
    """Colour the rows of a sparsity pattern for compressed reverse mode.

    Two rows share a colour only if no column has a non-zero in both, so one
    vector-Jacobian product per colour (seeded with the sum of that colour's
    unit vectors) recovers every non-zero. Cheaper than a column colouring
    when the Jacobian has a few dense columns and many rows.

    **Arguments:**

    - `pattern`: an `(m, n)` boolean scipy sparse matrix or numpy array.
    - `ordering`: as in [`color_columns`][symml.sparsity.color_columns].

    **Returns:**

    An integer numpy array of length `m`, colours numbered from 0.
    """
    pattern = _as_pattern(pattern, "pattern")
    return color_columns(pattern.T.tocsr(), ordering=ordering)


# --------------------------------------------------------------- star colouring


def _symmetric_graph(pattern: ssp.csr_matrix, name: str):
    """CSR `indptr`, `indices` of the graph of a square pattern, symmetrised
    and without self-loops."""
    if pattern.shape[0] != pattern.shape[1]:
        raise SparsityError(
            f"`{name}` must be square for a symmetric (star) colouring, got shape "
            f"{pattern.shape}; pass the result of `hessian_sparsity`."
        )
    sym = (pattern + pattern.T).tocsr()
    sym.setdiag(False)
    sym.eliminate_zeros()
    sym.sort_indices()
    return sym.indptr, sym.indices


def color_star(pattern, *, ordering: str = "largest_first") -> Int[np.ndarray, " n"]:
    """Star-colour a symmetric pattern for compressed Hessians.

    A star colouring is a distance-1 colouring (adjacent vertices differ) in
    which every path on four vertices uses at least three colours. Every
    non-zero `H[i, j]` is then the only entry of its colour in row `i` or in
    row `j`, so it is read directly from `H @ S`, one Hessian-vector product
    per colour (`S` the seed matrix). Greedy algorithm with two-coloured stars
    and their hubs (Gebremedhin, Tarafdar, Manne & Pothen, *INFORMS J.
    Computing* 2007, algorithm 4.1).

    **Arguments:**

    - `pattern`: an `(n, n)` boolean pattern (symmetrised if it is not), e.g.
        from [`hessian_sparsity`][symml.sparsity.hessian_sparsity].
    - `ordering`: `"largest_first"` (the default: by degree) or `"natural"`.

    **Returns:**

    An integer numpy array of length `n`, colours numbered from 0.
    """
    pattern = _as_pattern(pattern, "pattern")
    _check_ordering(ordering, ("largest_first", "natural"))
    indptr, indices = _symmetric_graph(pattern, "pattern")
    n = len(indptr) - 1
    degree = np.diff(indptr)
    order = (
        np.argsort(-degree, kind="stable")
        if ordering == "largest_first"
        else np.arange(n)
    )
    # Each vertex's neighbours coloured before it: the only ones it looks at.
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    row = np.repeat(np.arange(n), degree)
    before = rank[indices] < rank[row]
    earlier_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[before], minlength=n), out=earlier_ptr[1:])
    ep, en = earlier_ptr.tolist(), indices[before].tolist()
    ip, nb = indptr.tolist(), indices.tolist()
    # Colour sets are Python integers used as bit sets (bit c: colour c).
    cbit = [0] * n  # 1 << colour, 0 while uncoloured
    around = [0] * n  # the colours of a coloured vertex's coloured neighbours
    hubs = [0] * n  # the colours of the neighbours x of w that are the hub of
    # the two-coloured star holding the edge (w, x)
    for v in order.tolist():
        mine = en[ep[v] : ep[v + 1]]
        bits = list(map(cbit.__getitem__, mine))
        taken = reduce(or_, bits, 0)
        # v next to a hub x (through its leaf w) may not take x's colour: the
        # path v, w, x, other leaf would have two colours.
        forbidden = taken | reduce(or_, map(hubs.__getitem__, mine), 0)
        dup = 0
        if taken.bit_count() < len(bits):
            # Two neighbours of one colour: v becomes the hub of their star, so
            # no colour next to them may be reused.
            seen = 0
            for bw in bits:
                dup |= seen & bw
                seen |= bw
            for w, bw in zip(mine, bits, strict=True):
                if bw & dup:
                    forbidden |= around[w]
        b = ~forbidden & (forbidden + 1)  # the lowest colour not forbidden
        around[v] = taken
        for w in mine:
            a = around[w]
            if a & b:
                # w already has a neighbour x of colour b: the new edge joins
                # the star of (w, x), whose hub is w.
                bw = cbit[w]
                near = nb[ip[w] : ip[w + 1]]
                hubs[near[list(map(cbit.__getitem__, near)).index(b)]] |= bw
                hubs[v] |= bw
            elif cbit[w] & dup:
                hubs[w] |= b  # v is the hub of the star of w's colour
            around[w] = a | b
        cbit[v] = b
    return np.fromiter((b.bit_length() - 1 for b in cbit), np.int64, n)


# ------------------------------------------------------------------ validators


def _check_colors(colors, length: int) -> np.ndarray | None:
    colors = np.asarray(colors)
    if (
        colors.shape != (length,)
        or not np.issubdtype(colors.dtype, np.integer)
        or (colors < 0).any()
    ):
        return None
    return colors.astype(np.int64)


def check_coloring(pattern, colors) -> bool:
    """Whether `colors` is a valid column colouring of `pattern`.

    **Arguments:**

    - `pattern`: an `(m, n)` boolean sparse matrix or array.
    - `colors`: an integer array of length `n`.

    **Returns:**

    `True` if no row has non-zeros in two columns of the same colour (every
    non-zero is then recoverable from the compressed Jacobian).
    """
    pattern = _as_pattern(pattern, "pattern")
    colors = _check_colors(colors, pattern.shape[1])
    if colors is None:
        return False
    coo = pattern.tocoo()
    keys = coo.row.astype(np.int64) * (int(colors.max(initial=0)) + 1) + colors[coo.col]
    return len(np.unique(keys)) == len(keys)


def check_row_coloring(pattern, colors) -> bool:
    """Whether `colors` is a valid row colouring of `pattern`.

    **Arguments:**

    - `pattern`: an `(m, n)` boolean sparse matrix or array.
    - `colors`: an integer array of length `m`.

    **Returns:**

    `True` if no column has non-zeros in two rows of the same colour (every
    non-zero is then recoverable from the compressed reverse-mode Jacobian).
    """
    pattern = _as_pattern(pattern, "pattern")
    return check_coloring(pattern.T.tocsr(), colors)


def check_star_coloring(pattern, colors) -> bool:
    """Whether `colors` is a valid star colouring of the symmetric `pattern`.

    **Arguments:**

    - `pattern`: an `(n, n)` boolean sparse matrix or array (symmetrised).
    - `colors`: an integer array of length `n`.

    **Returns:**

    `True` if adjacent vertices have different colours and every non-zero
    `(i, j)` is the only one of colour `colors[j]` in row `i` or the only one
    of colour `colors[i]` in row `j` (the diagonal counted as non-zero): the
    condition for reading every entry of a symmetric matrix with this pattern
    directly from its product with the seed matrix, equivalent to the star
    property for distance-1 colourings (Coleman & Moré 1984).
    """
    pattern = _as_pattern(pattern, "pattern")
    if pattern.shape[0] != pattern.shape[1]:
        raise SparsityError(
            f"`pattern` must be square for a star colouring, got shape {pattern.shape}."
        )
    n = pattern.shape[0]
    colors = _check_colors(colors, n)
    if colors is None:
        return False
    sym = (pattern + pattern.T + ssp.identity(n, dtype=bool, format="csr")).tocoo()
    i, j = sym.row.astype(np.int64), sym.col.astype(np.int64)
    off = i != j
    if (colors[i[off]] == colors[j[off]]).any():
        return False
    width = int(colors.max(initial=0)) + 1
    # How many entries of each colour each row has.
    keys, counts = np.unique(i * width + colors[j], return_counts=True)

    def alone(row, col_color):
        return counts[np.searchsorted(keys, row * width + col_color)] == 1

    return bool(np.all(alone(i, colors[j]) | alone(j, colors[i])))
