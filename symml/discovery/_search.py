"""Searches for the best support of each size: exhaustive and stepwise.

Every search works on a normalised problem (unit-RMS columns `theta` and a
unit-RMS target `y`) and returns one boolean support per model size `0, 1,
..., max_terms`, the best it found of that size. The searches are numpy only
and deterministic.
"""

import contextlib
import math

import numpy as np

# A column whose component orthogonal to the columns already in a support is
# below this fraction of its norm adds no direction (as with `lstsq`).
_RANK_TOL = 1e-10
# Work arrays are processed in chunks of about this many floats.
_CHUNK = 4_000_000


def reduce(theta: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """`theta = Q R` (reduced QR) turns every subset regression into a p-row
    one: min |y - theta_S b|^2 = |y - Q Q^T y|^2 + min |Q^T y - R_S b|^2.

    **Returns:**

    `(R, Q^T y, |y - Q Q^T y|^2)`, which the functions below take as
    `reduced`.
    """
    q, r = np.linalg.qr(theta)
    z = q.T @ y
    outside = float(np.sum((y - q @ z) ** 2))
    return r, z, outside


def _mask(p: int, indices) -> np.ndarray:
    keep = np.zeros(p, dtype=bool)
    keep[list(indices)] = True
    return keep


def coefficients(reduced, support: np.ndarray) -> np.ndarray:
    """Least-squares coefficients on `support` (zero elsewhere)."""
    r, z, _ = reduced
    out = np.zeros(r.shape[1])
    if support.any():
        out[support] = np.linalg.lstsq(r[:, support], z, rcond=None)[0]
    return out


def sse(reduced, support: np.ndarray) -> float:
    """The residual sum of squares of the least-squares fit on `support`."""
    r, z, outside = reduced
    residual = z - r @ coefficients(reduced, support)
    return outside + float(residual @ residual)


class _Level:
    """All supports of one size in a search tree: their column indices, an
    orthonormal basis of their columns (in the reduced space) and the residual
    of `z` outside it."""

    def __init__(self, indices, basis, residual):
        self.indices = indices  # (m, d)
        self.basis = basis  # (m, p, d)
        self.residual = residual  # (m, p)

    @classmethod
    def root(cls, p: int, z: np.ndarray) -> "_Level":
        return cls(np.zeros((1, 0), dtype=int), np.zeros((1, p, 0)), z[None, :].copy())

    def sse(self, outside: float) -> np.ndarray:
        return outside + np.sum(self.residual**2, axis=1)

    def children(self, r: np.ndarray, allowed: np.ndarray) -> "_Level":
        """Every support extended by one column `j` with `allowed[i, j]`,
        orthogonalised by classical Gram-Schmidt applied twice, vectorised over
        all parents and columns."""
        m, p, d = self.basis.shape
        step = max(1, _CHUNK // max(1, p * p))
        parts = []
        for start in range(0, m, step):
            part = slice(start, start + step)
            q = self.basis[part]
            v = np.broadcast_to(r, (q.shape[0], p, p)).copy()
            for _ in range(2):
                v -= q @ (q.transpose(0, 2, 1) @ v)
            rows, cols = np.nonzero(allowed[part])
            new = v[rows, :, cols]  # (m', p)
            norm = np.linalg.norm(new, axis=1)
            fresh = norm > _RANK_TOL * np.linalg.norm(r[:, cols], axis=0)
            new = np.where(fresh[:, None], new / np.where(fresh, norm, 1.0)[:, None], 0)
            parent = self.residual[part][rows]
            residual = parent - new * np.sum(new * parent, axis=1)[:, None]
            rows = rows + start
            parts.append(
                (
                    np.concatenate([self.indices[rows], cols[:, None]], axis=1),
                    np.concatenate([self.basis[rows], new[:, :, None]], axis=2),
                    residual,
                )
            )
        return _Level(*(np.concatenate(a) for a in zip(*parts, strict=True)))


def _forward(reduced, max_terms: int) -> list[np.ndarray]:
    """Forward selection: add the term that lowers the residual most."""
    r, z, outside = reduced
    p = r.shape[1]
    level = _Level.root(p, z)
    path = [_mask(p, [])]
    for _ in range(max_terms):
        allowed = np.ones((1, p), dtype=bool)
        allowed[0, level.indices[0]] = False
        if not allowed.any():
            break
        children = level.children(r, allowed)
        best = int(np.argmin(children.sse(outside)))
        level = _Level(
            children.indices[best : best + 1],
            children.basis[best : best + 1],
            children.residual[best : best + 1],
        )
        path.append(_mask(p, level.indices[0]))
    return path


def _backward(reduced) -> list[np.ndarray]:
    """Backward elimination: drop the term whose removal raises the residual
    least. Removing column j of a full-rank fit raises the residual sum of
    squares by b_j² / [(X^T X)^-1]_jj, read from one QR per step (pysindy's SSR
    drops the smallest coefficient instead, which is not the same on
    correlated columns)."""
    r, z, _ = reduced
    p = r.shape[1]
    current = list(range(p))
    path = [_mask(p, current)]
    while current:
        q, rs = np.linalg.qr(r[:, current])
        diagonal = np.abs(np.diag(rs))
        if diagonal.min() <= _RANK_TOL * max(diagonal.max(), 1e-300):
            # A column dependent on the others costs nothing to drop.
            drop = current[int(np.argmin(diagonal))]
        else:
            b = np.linalg.solve(rs, q.T @ z)
            inverse = np.linalg.inv(rs)
            cost = b**2 / np.sum(inverse**2, axis=1)
            drop = current[int(np.argmin(cost))]
        current = [j for j in current if j != drop]
        path.append(_mask(p, current))
    return path[::-1]


def stepwise_path(
    theta: np.ndarray, y: np.ndarray, max_terms: int | None = None
) -> list[np.ndarray]:
    """The better (lower residual) of forward selection and backward
    elimination at each size."""
    p = theta.shape[1]
    max_terms = p if max_terms is None else min(max_terms, p)
    reduced = reduce(theta, y)
    return _stepwise(reduced, max_terms)


def _stepwise(reduced, max_terms: int) -> list[np.ndarray]:
    forward = _forward(reduced, max_terms)
    backward = _backward(reduced)
    path = []
    for k in range(max_terms + 1):
        candidates = [c[k] for c in (forward, backward) if k < len(c)]
        path.append(min(candidates, key=lambda s: sse(reduced, s)))
    return path


def best_subset_path(
    theta: np.ndarray,
    y: np.ndarray,
    max_subsets: int,
    max_terms: int | None = None,
) -> list[np.ndarray]:
    """The exact best subset of each size while a size has at most
    `max_subsets` subsets; the stepwise path's support beyond that.

    Subsets are enumerated level by level in lexicographic order, each child
    reusing its parent's orthonormal basis, so a subset of size k costs one
    projection rather than a k-column least-squares solve.
    """
    p = theta.shape[1]
    max_terms = p if max_terms is None else min(max_terms, p)
    reduced = reduce(theta, y)
    r, z, outside = reduced
    level = _Level.root(p, z)
    path = [_mask(p, [])]
    fallback = None
    for k in range(1, max_terms + 1):
        if level is not None and math.comb(p, k) <= max_subsets:
            last = level.indices[:, -1] if k > 1 else np.full(1, -1)
            allowed = np.arange(p)[None, :] > last[:, None]
            level = level.children(r, allowed)
            best = int(np.argmin(level.sse(outside)))
            path.append(_mask(p, level.indices[best]))
        else:
            level = None
            if fallback is None:
                fallback = _stepwise(reduced, max_terms)
            path.append(fallback[k])
    return path


@contextlib.contextmanager
def single_threaded():
    """Limit BLAS to one thread: discovery solves many small least-squares
    problems, for which thread start-up and, on a loaded machine, waiting for
    busy cores cost more than the arithmetic (a 1000 x 20 QR: 2 ms on one
    thread, 26-80 ms with OpenBLAS's threads on a busy 2-core machine).
    threadpoolctl comes with scikit-learn, which pysindy needs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - always present with pysindy
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
