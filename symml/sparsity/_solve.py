"""A sparse direct linear solver for lineax, and stiff solves with diffrax.

diffrax's implicit solvers (`Kvaerno5`, ...) find each stage with a root
finder (`diffrax.VeryChord` by default) that hands a
`lineax.JacobianLinearOperator` of the stage equation `z - h γ f(t, y + z)` to
its `linear_solver`; the default `lineax.AutoLinearSolver` materialises it
densely (one JVP per state) and LU-factorises it. `SparseLU` instead
evaluates one JVP per colour of `pattern ∪ I`, decompresses the non-zeros and
factorises them with SuperLU (`scipy.sparse.linalg.splu`) on the host through
`jax.pure_callback`.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import scipy.sparse as ssp
import scipy.sparse.linalg as sla
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._diffrax import (
    ATOL,
    RTOL,
    SolveOptions,
    diffeqsolve,
    is_tracer,
    raise_if_failed,
)
from .._errors import SparsityError
from ._coloring import _as_pattern, color_columns
from ._compressed import StaticIndices, seed_matrix
from ._detect import jacobian_sparsity

__all__ = ["SparseLU", "solve_stiff"]


class _FactorCache:
    """Host-side memo of SuperLU factorisations, keyed by the matrix values.

    A Newton/chord iteration solves several times with one matrix; the memo
    makes the later solves cost a triangular solve only. Results do not depend
    on the memo, so callers stay pure.
    """

    def __init__(self, size: int = 4):
        self._size = size
        self._store: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def factor(self, data: np.ndarray, rows, cols, shape) -> Any:
        key = data.tobytes()
        with self._lock:
            lu = self._store.get(key)
            if lu is not None:
                self._store.move_to_end(key)
                return lu
        mat = ssp.csc_matrix((data, (rows, cols)), shape=shape)
        lu = sla.splu(mat)
        with self._lock:
            self._store[key] = lu
            while len(self._store) > self._size:
                self._store.popitem(last=False)
        return lu


class SparseLU(lx.AbstractLinearSolver):
    """A lineax solver for square operators with a known sparsity pattern.

    `init` evaluates the operator on one seed vector per colour of
    `pattern ∪ I` (vmapped `operator.mv`), so its cost does not grow with the
    number of states; `compute` solves with SuperLU on the host. The identity
    is added to the pattern because diffrax's stage equations have Jacobian
    `I - h γ J`.

    **Arguments:**

    - `pattern`: the `(n, n)` Jacobian pattern of the vector field, e.g. from
        `jacobian_sparsity`.
    """

    _rows: StaticIndices = eqx.field(static=True)
    _cols: StaticIndices = eqx.field(static=True)
    _colors: StaticIndices = eqx.field(static=True)
    n: int = eqx.field(static=True)
    _cache: _FactorCache = eqx.field(static=True)

    def __init__(self, pattern: Any):
        pattern = _as_pattern(pattern, "pattern")
        if pattern.shape[0] != pattern.shape[1]:
            raise SparsityError(
                f"`pattern` passed to `SparseLU` must be square, got shape "
                f"{pattern.shape}; a linear solve needs as many equations as "
                "unknowns."
            )
        n = pattern.shape[0]
        full = (pattern + ssp.identity(n, dtype=bool, format="csr")).tocsr()
        full.sort_indices()
        coo = full.tocoo()
        self._rows = StaticIndices(coo.row)
        self._cols = StaticIndices(coo.col)
        self._colors = StaticIndices(color_columns(full))
        self.n = n
        self._cache = _FactorCache()

    @property
    def num_colors(self) -> int:
        return int(self._colors.array.max()) + 1

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if operator.in_size() != self.n or operator.out_size() != self.n:
            raise SparsityError(
                f"`SparseLU` was built for {self.n} states but the operator maps "
                f"{operator.in_size()} to {operator.out_size()}; build it from the "
                "pattern of this vector field."
            )
        in_struct = operator.in_structure()
        leaves, treedef = jtu.tree_flatten(in_struct)
        dtype = jnp.result_type(*[leaf.dtype for leaf in leaves])
        seeds = jnp.asarray(seed_matrix(self._colors.array, dtype))

        def unravel(flat):
            parts, start = [], 0
            for leaf in leaves:
                size = math.prod(leaf.shape)
                parts.append(flat[start : start + size].reshape(leaf.shape))
                start += size
            return jtu.tree_unflatten(treedef, parts)

        def ravel(tree):
            return jnp.concatenate([jnp.ravel(x) for x in jtu.tree_leaves(tree)])

        compressed = jax.vmap(lambda s: ravel(operator.mv(unravel(s))))(seeds)
        data = compressed[self._colors.array[self._cols.array], self._rows.array]
        return (
            data,
            eqx.internal.Static(False),
            eqx.internal.Static((tuple(leaves), treedef)),
        )

    def compute(self, state, vector: PyTree[Array], options: dict[str, Any]):
        del options
        data, transpose, structures = state
        leaves, treedef = structures.value
        flat = jnp.concatenate([jnp.ravel(x) for x in jtu.tree_leaves(vector)])
        trans = "T" if transpose.value else "N"
        rows, cols, shape, cache = (
            self._rows.array,
            self._cols.array,
            (self.n,) * 2,
            self._cache,
        )

        def host_solve(data, b):
            try:
                lu = cache.factor(np.asarray(data), rows, cols, shape)
            except RuntimeError:
                # SuperLU raises on an exactly singular matrix; NaNs make lineax
                # report `singular`, so callers see a solver result, not a
                # traceback from inside a host callback.
                return np.full(np.shape(b), np.nan, dtype=b.dtype)
            return lu.solve(np.asarray(b), trans=trans).astype(b.dtype)

        out = jax.pure_callback(
            host_solve,
            jax.ShapeDtypeStruct(flat.shape, flat.dtype),
            data,
            flat,
            vmap_method="sequential",
        )
        parts, start = [], 0
        for leaf in leaves:
            size = math.prod(leaf.shape)
            parts.append(out[start : start + size].reshape(leaf.shape))
            start += size
        solution = jtu.tree_unflatten(treedef, parts)
        finite = jnp.all(jnp.isfinite(out))
        result = lx.RESULTS.where(finite, lx.RESULTS.successful, lx.RESULTS.singular)
        return solution, result, {}

    def transpose(self, state, options: dict[str, Any]):
        data, transpose, structures = state
        return (data, eqx.internal.Static(not transpose.value), structures), {}

    def conj(self, state, options: dict[str, Any]):
        data, transpose, structures = state
        return (jnp.conj(data), transpose, structures), {}

    def assume_full_rank(self) -> bool:
        return True


def solve_stiff(
    rhs: Callable[[Any, Float[Array, "..."], Any], Float[Array, "..."]],
    y0: Float[ArrayLike, "..."],
    t_span: tuple[float, float],
    pattern: Any = None,
    *,
    args: Any = None,
    solver: dfx.AbstractImplicitSolver | None = None,
    saveat: dfx.SaveAt | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    dt0: float | None = None,
    max_steps: int = 100_000,
) -> dfx.Solution:
    """Integrate a stiff ODE with diffrax, solving the stage equations with the
    sparse Jacobian machinery.

    **Arguments:**

    - `rhs`: the vector field `rhs(t, y, args)` (diffrax's convention).
    - `y0`: the initial state (one floating array).
    - `t_span`: `(t0, t1)`.
    - `pattern`: the Jacobian pattern of `rhs` w.r.t. `y`; detected with
        `jacobian_sparsity` at `(t0, y0, args)` when `None`.
    - `args`: passed to `rhs`.
    - `solver`: an implicit diffrax solver whose `root_finder` has the
        `linear_solver` field (default `diffrax.Kvaerno5()`); its linear solver
        is replaced by [`SparseLU`][symml.sparsity.SparseLU].
    - `saveat`: a `diffrax.SaveAt` (default: the final time only).
    - `rtol`, `atol`: tolerances of the PID step-size controller (and, through
        it, of the root finder).
    - `dt0`: the initial step (default: chosen by diffrax).
    - `max_steps`: as in `diffrax.diffeqsolve`.

    **Returns:**

    The `diffrax.Solution`. A failed solve raises a
    [`SparsityError`][symml.SparsityError] with diffrax's reason.
    """
    t0, t1 = t_span
    y0 = jnp.asarray(y0)
    if pattern is None:
        pattern = jacobian_sparsity(lambda y, t, a: rhs(t, y, a), y0, t0, args)
    if solver is None:
        solver = dfx.Kvaerno5()
    if not hasattr(solver, "root_finder") or not hasattr(
        solver.root_finder, "linear_solver"
    ):
        raise SparsityError(
            f"`solver` must be an implicit diffrax solver whose `root_finder` has a "
            f"`linear_solver`, got {type(solver).__name__}; use e.g. "
            "`diffrax.Kvaerno5()`."
        )
    options = SolveOptions(
        solver,
        rtol,
        atol,
        max_steps,
        dfx.RecursiveCheckpointAdjoint(),
        SparseLU(pattern),
    )
    solution = diffeqsolve(rhs, options, y0, args, t0=t0, t1=t1, dt0=dt0, saveat=saveat)
    if is_tracer(solution.ys):
        # Under `jit` the failure is known only at run time: raise it there.
        ys = eqx.error_if(
            solution.ys,
            solution.result != dfx.RESULTS.successful,
            "The stiff solve failed; call `solve_stiff` outside `jit` for diffrax's "
            "reason, the state that failed and what to try.",
        )
        return eqx.tree_at(lambda s: s.ys, solution, ys)
    raise_if_failed(
        solution,
        names=tuple(str(i) for i in range(y0.size)),
        slices=None,
        options=options,
        error=SparsityError,
        what="The stiff solve",
    )
    return solution
