"""Global Jacobian and Hessian sparsity patterns of JAX functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import scipy.sparse as ssp
from jaxtyping import ArrayLike

from .._errors import SparsityError
from . import _rules  # noqa: F401  (registers the built-in rules)
from ._deps import DependencySets, _bits, _Sets, _vstack_sets
from ._interpreter import propagate

__all__ = ["jacobian_sparsity", "hessian_sparsity"]


# Leaves that `jax.make_jaxpr` traces; anything else goes through equinox,
# which treats it as static.
_TRACEABLE = (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)


def _abstract_floats(leaf: Any) -> Any:
    # Python floats would be baked into the jaxpr as constants; trace them so
    # that the pattern holds for every value of the extra arguments.
    if isinstance(leaf, float | complex) and not isinstance(leaf, bool):
        return jax.ShapeDtypeStruct((), jnp.result_type(leaf), weak_type=True)
    return leaf


def _trace(fn: Callable, x: ArrayLike, args: tuple, name: str):
    if not callable(fn):
        raise SparsityError(
            f"`fn` passed to `{name}` must be a callable `fn(x, *args)`, such as a "
            f"lowered system; got {fn!r} of type {type(fn).__name__}."
        )
    if not eqx.is_array_like(x) or isinstance(x, bool):
        raise SparsityError(
            f"`x` passed to `{name}` must be an array, got {type(x).__name__}; "
            "pass the state as one flat (or n-dimensional) array."
        )
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise SparsityError(
            f"`x` passed to `{name}` must have a floating dtype, got {x.dtype}; "
            "convert it with `x.astype(float)`."
        )
    args = jtu.tree_map(_abstract_floats, args)
    if all(isinstance(leaf, _TRACEABLE) for leaf in jtu.tree_leaves(args)):
        # `jax.make_jaxpr` reuses the trace of an earlier call with the same
        # function and shapes; tracing is most of the cost of a detection
        # (Brusselator, N = 32: about 3 ms of 5).
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(x, *args)
    else:
        closed, out_shape, *_ = eqx.filter_make_jaxpr(fn)(x, *args)
    out_leaves = jtu.tree_leaves(out_shape)
    if not out_leaves or not all(
        isinstance(o, jax.ShapeDtypeStruct) for o in out_leaves
    ):
        raise SparsityError(
            f"`fn` passed to `{name}` must return an array or a pytree of arrays, "
            f"got {out_shape}."
        )
    return x, closed, out_leaves


def _run(closed, x, hessian: bool, rules) -> list[DependencySets | None]:
    n = x.size
    eye = _Sets.identity(n)
    x_hess = _Sets.empty(n, 2 * eye.shift) if hessian else None
    in_deps: list[DependencySets | None] = [None] * len(closed.jaxpr.invars)
    # `x` is one array, so it is the first invar of the flattened arguments.
    in_deps[0] = DependencySets(eye, x_hess, _n=n)
    return propagate(closed, in_deps, n=n, hessian=hessian, rules=rules)


def jacobian_sparsity(
    fn: Callable,
    x: ArrayLike | None = None,
    *args: Any,
    rules: Mapping[Any, Callable] | None = None,
) -> ssp.csr_matrix:
    """The global sparsity pattern of the Jacobian of `fn` with respect to `x`.

    For a lowered system (a [`CompiledRHS`][symml.CompiledRHS] or a
    [`DiscretizedModel`][symml.DiscretizedModel]) called without `x`, the
    pattern is exact from the symbolic structure: which states each
    right-hand side uses, network terms depending on their declared inputs.
    Otherwise:

    Index sets are propagated through the jaxpr of `fn` (no derivative is
    evaluated). The pattern is *global*: it does not depend on the values of
    `x` or of `args`; where control flow depends on them (`lax.cond`,
    `jnp.where`, `while_loop`), every branch is counted. Values computed from
    constants alone (stencil weights, index arrays, masks) are used, so a
    constant zero weight removes a dependency.

    **Arguments:**

    - `fn`: a JAX-traceable function `fn(x, *args)` returning an array or a
        pytree of arrays.
    - `x`: the input (one floating array, of any shape; it is flattened in
        row-major order).
    - `*args`: extra arguments to `fn` (arrays, pytrees, equinox modules);
        they are treated as unknown.
    - `rules`: extra sparsity rules `{primitive: rule}` for this call, looked
        up before the registered ones (see
        [`register_sparsity_rule`][symml.sparsity.register_sparsity_rule]).

    **Returns:**

    A boolean `scipy.sparse.csr_matrix` of shape `(m, x.size)`, where `m` is the
    total size of the outputs (leaves flattened and concatenated in pytree
    order); entry `(i, j)` is true if output `i` may depend on input `j`.
    """
    if x is None:
        symbolic = getattr(fn, "jacobian_sparsity", None)
        if symbolic is None:
            raise SparsityError(
                "`jacobian_sparsity` needs a point `x` to trace `fn` at (any value "
                "of the right shape and dtype); only lowered systems (`symml.lower`,"
                " `symml.discretize`) know their pattern without one."
            )
        return symbolic()
    x, closed, out_leaves = _trace(fn, x, args, "jacobian_sparsity")
    outs = _run(closed, x, hessian=False, rules=rules)
    shift = _bits(x.size)
    blocks = [
        d._jac if d is not None else _Sets.empty(math.prod(leaf.shape), shift)
        for d, leaf in zip(outs, out_leaves, strict=True)
    ]
    stacked = blocks[0] if len(blocks) == 1 else _vstack_sets(blocks)
    return stacked.to_scipy(x.size)


def hessian_sparsity(
    fn: Callable,
    x: ArrayLike,
    *args: Any,
    rules: Mapping[Any, Callable] | None = None,
) -> ssp.csr_matrix:
    """The global sparsity pattern of the Hessian of a scalar `fn` w.r.t. `x`.

    Each intermediate carries its first-order dependency set and the set of
    input pairs with a non-zero second derivative; linear operations pass both
    on, nonlinear ones (`mul`, `div`, `integer_pow`, `exp`, `dot_general`, ...)
    create pairs. Piecewise-linear operations (`abs`, `max`, `relu`) create
    none, as their second derivative is zero almost everywhere.

    **Arguments:**

    - `fn`: a JAX-traceable function `fn(x, *args)` returning a scalar.
    - `x`: the input (one floating array; flattened in row-major order).
    - `*args`: extra arguments to `fn`, treated as unknown.
    - `rules`: extra sparsity rules `{primitive: rule}` for this call.

    **Returns:**

    A symmetric boolean `scipy.sparse.csr_matrix` of shape `(x.size, x.size)`.
    """
    x, closed, out_leaves = _trace(fn, x, args, "hessian_sparsity")
    if len(out_leaves) != 1 or math.prod(out_leaves[0].shape) != 1:
        shapes = [tuple(o.shape) for o in out_leaves]
        raise SparsityError(
            "`fn` passed to `hessian_sparsity` must return a scalar, got outputs "
            f"of shapes {shapes}; reduce the output (e.g. `jnp.sum`) or use "
            "`jacobian_sparsity` for vector outputs."
        )
    (d,) = _run(closed, x, hessian=True, rules=rules)
    n = x.size
    if d is None:
        return ssp.csr_matrix((n, n), dtype=bool)
    i, j = d.pairs()
    shift = d._jac.shift
    both = _Sets.from_pairs(np.concatenate([i, j]), np.concatenate([j, i]), n, shift)
    return both.to_scipy(n)
